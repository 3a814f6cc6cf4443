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

	digestMessages      *prometheus.CounterVec
	digestNotifications *prometheus.CounterVec
	parked              *prometheus.Desc

	up     *prometheus.Desc
	probes *prometheus.CounterVec
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
		digestMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_digest_messages_total",
			Help: "Digests delivered, by destination: messages that carried the notifications past a chat destination's budget.",
		}, []string{"destination"}),
		digestNotifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_digest_notifications_total",
			Help: "Notifications delivered in digests rather than one by one, by destination.",
		}, []string{"destination"}),
		parked: prometheus.NewDesc("nocbridge_digest_parked",
			"Notifications waiting for a digest (the window's end, or the digest's delivery), by destination.", []string{"destination"}, nil),
		up: prometheus.NewDesc("nocbridge_destination_up",
			"1 while a destination takes notifications, 0 while it fails as a whole and only its oldest notification is tried (a probe).", []string{"destination"}, nil),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_destination_probes_total",
			Help: "Probes of failing destinations (each one request, of the oldest pending notification), by destination and result: delivered, failed (still down), dead (refused for good: the destination answers again).",
		}, []string{"destination", "result"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.notifications, m.duration, m.digestMessages, m.digestNotifications, m.probes, m} {
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
	ch <- m.parked
	ch <- m.up
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
			up := 1.0
			if st.health.failing {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, name)
		}
		if st.cfg != nil && st.cfg.Digest != nil || len(st.digests) > 0 {
			ch <- prometheus.MustNewConstMetric(m.parked, prometheus.GaugeValue, float64(st.parkedLocked()), name)
		}
	}
	for name, n := range o.deadCount {
		dead[name] = n
	}
	for name, n := range dead {
		ch <- prometheus.MustNewConstMetric(m.dead, prometheus.GaugeValue, float64(n), name)
	}
}
