package schedule

import (
	"testing"
	"time"
)

func TestSlot(t *testing.T) {
	epoch := time.Unix(1_700_000_000, 0) // on every grid below
	cases := []struct {
		now             time.Duration // after epoch
		interval, phase time.Duration
		want            time.Duration // after epoch
	}{
		{0, 10 * time.Second, 0, 0},
		{0, 10 * time.Second, 3 * time.Second, 3 * time.Second},
		{3 * time.Second, 10 * time.Second, 3 * time.Second, 3 * time.Second},
		{3*time.Second + 1, 10 * time.Second, 3 * time.Second, 13 * time.Second},
		{9 * time.Second, 10 * time.Second, 3 * time.Second, 13 * time.Second},
		{250 * time.Millisecond, time.Second, 900 * time.Millisecond, 900 * time.Millisecond},
	}
	for _, c := range cases {
		now := epoch.Add(c.now)
		if got := Slot(now, c.interval, c.phase).Sub(epoch); got != c.want {
			t.Errorf("Slot(+%v, %v, phase %v) = +%v, want +%v", c.now, c.interval, c.phase, got, c.want)
		}
	}
}

func TestPhase(t *testing.T) {
	const quantum = 10 * time.Millisecond
	for _, interval := range []time.Duration{10 * time.Second, time.Second, 15 * time.Millisecond, time.Millisecond} {
		for _, dev := range []string{"core-sw1", "access-sw7", ""} {
			p := Phase(dev, interval, quantum)
			if p != Phase(dev, interval, quantum) || p < 0 || p >= interval {
				t.Errorf("Phase(%q, %v) = %v: unstable or outside the interval", dev, interval, p)
			}
			// Whole quanta batch the devices of one slot into one wake-up.
			if interval >= 2*quantum && p%quantum != 0 {
				t.Errorf("Phase(%q, %v) = %v, not a multiple of %v", dev, interval, p, quantum)
			}
		}
	}
}
