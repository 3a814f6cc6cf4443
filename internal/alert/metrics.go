package alert

import "github.com/prometheus/client_golang/prometheus"

// activeCollector counts firing instances (and unsent transitions) at scrape time, so the gauge costs
// nothing per transition and never drifts from the state.
type activeCollector struct{ m *Manager }

func (c activeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.m.activeDesc
	ch <- c.m.unsentDesc
	ch <- c.m.droppedDesc
	ch <- c.m.replayedDesc
}

func (c activeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	firing := map[string]int{}
	for _, in := range m.instances {
		if in.State == StateFiring {
			firing[in.EventID]++
		}
	}
	unsent, unstored := m.unsentLocked()
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.unsentDesc, prometheus.GaugeValue, float64(unsent-unstored), "true")
	ch <- prometheus.MustNewConstMetric(m.unsentDesc, prometheus.GaugeValue, float64(unstored), "false")
	ch <- prometheus.MustNewConstMetric(m.droppedDesc, prometheus.CounterValue, float64(m.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(m.replayedDesc, prometheus.CounterValue, float64(m.replayed.Load()))
	for id, n := range firing {
		ch <- prometheus.MustNewConstMetric(m.activeDesc, prometheus.GaugeValue, float64(n), id)
	}
}
