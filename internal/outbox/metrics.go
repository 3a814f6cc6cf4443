package outbox

import "github.com/prometheus/client_golang/prometheus"

// metrics are the outbox's SPEC 7 metrics. The gauges are read from the
// index at scrape time, so they can never drift from it.
type metrics struct {
	o             *Outbox
	notifications *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	pending       *prometheus.Desc
	dead          *prometheus.Desc
}

func newMetrics(o *Outbox) *metrics {
	return &metrics{
		o: o,
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_notifications_total",
			Help: "Notification outcomes by destination: delivered and failed (to be retried) count attempts, dead counts notifications dead-lettered.",
		}, []string{"destination", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nocbridge_notification_duration_seconds",
			Help:    "Duration of one delivery attempt, by destination.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"destination"}),
		pending: prometheus.NewDesc("nocbridge_outbox_pending",
			"Notifications stored and not yet delivered or dead-lettered, by destination.", []string{"destination"}, nil),
		dead: prometheus.NewDesc("nocbridge_deadletters",
			"Dead letters waiting for a replay, by destination.", []string{"destination"}, nil),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.notifications, m.duration, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe and Collect make the gauges a collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.pending
	ch <- m.dead
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	o := m.o
	o.mu.Lock()
	defer o.mu.Unlock()
	dead := make(map[string]int, len(o.dests)+len(o.deadCount))
	for name, st := range o.dests {
		if st.cfg != nil || st.pending > 0 {
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(st.pending), name)
		}
		if st.cfg != nil {
			dead[name] = 0
		}
	}
	for name, n := range o.deadCount {
		dead[name] = n
	}
	for name, n := range dead {
		ch <- prometheus.MustNewConstMetric(m.dead, prometheus.GaugeValue, float64(n), name)
	}
}
