package noise

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestTakeOverMidOutage: a cluster's standby node built its gate and alert
// manager before a core outage (empty); the leader handles the outage and
// dies; the standby resyncs both from the shared stores and carries on:
// the core's alert is not sent again, its children stay suppressed, and
// the resolve comes from the new leader.
func TestTakeOverMidOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: coreLab()})
		standby := l.build()
		wait(25 * time.Second)
		l.setDown(true, append([]string{"core"}, names(4, "acc")...)...)
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core" {
			t.Fatalf("before the takeover: %q, want the core's active alone", got)
		}
		l.stop()
		wait(3 * time.Second)
		if err := standby.gate.Resync(standby.ctx); err != nil {
			t.Fatal(err)
		}
		if err := standby.mgr.Resync(standby.ctx); err != nil {
			t.Fatal(err)
		}
		held := 0
		for _, rec := range standby.gate.recs {
			if rec.Held != nil {
				held++
			}
		}
		if held != 4 {
			t.Fatalf("the standby's gate holds %d alerts after Resync; want the 4 children's", held)
		}
		l.run(standby)
		defer l.stop()
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core" {
			t.Fatalf("after the takeover: %q, want the core's active alone, once", got)
		}
		l.setDown(false, append([]string{"core"}, names(4, "acc")...)...)
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core, resolved core" {
			t.Fatalf("after the outage: %q", got)
		}
	})
}
