package tally

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// What Inc counts shows alike in the metric and in Counts, every reason
// from the start.
func TestReasons(t *testing.T) {
	r := New("test_dropped_total", "Dropped.", "reason", "full", "bad")
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	r.Inc("bad")
	r.Inc("bad")
	if got, want := r.Counts(), map[string]uint64{"full": 0, "bad": 2}; !maps.Equal(got, want) {
		t.Errorf("Counts() = %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(r.vec.WithLabelValues("bad")); n != 2 {
		t.Errorf("metric{reason=bad} = %v, want 2", n)
	}
	if n := testutil.CollectAndCount(reg); n != 2 {
		t.Errorf("%d series, want one per reason (2) from the start", n)
	}
}
