package noise

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

// coreLab is one core and four access switches behind it.
func coreLab() []inventory.Device {
	devs := []inventory.Device{pinged("core", "")}
	for _, n := range names(4, "acc") {
		devs = append(devs, pinged(n, "", "core"))
	}
	return devs
}

// The hard case is the common one: the core and its children fail in the
// same instant and their rounds come in any order. Whatever the phases of
// their rounds and whenever in the interval the outage starts, receivers
// get one active (the core's, naming the four) and, when it ends, one
// resolve; the children send nothing.
func TestCoreOutageOneNotificationInEveryOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for run := range 40 {
		phases := map[string]time.Duration{}
		for _, d := range coreLab() {
			phases[d.Name] = time.Duration(r.IntN(1000)) * 10 * time.Millisecond
		}
		offset := time.Duration(r.IntN(10000)) * time.Millisecond
		t.Run(fmt.Sprintf("run%02d", run), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, labOpts{devices: coreLab(), phases: phases})
				defer l.stop()
				wait(30*time.Second + offset)
				l.setDown(true, append([]string{"core"}, names(4, "acc")...)...)
				wait(2 * time.Minute)
				if got := l.routing.summary(); got != "active core" {
					t.Fatalf("phases %v, outage at +%v: receivers got %q, want the core's active alone", phases, offset, got)
				}
				if d := l.sentFor("core")[0].ev.Details["Affected Devices"]; d != "4: acc1, acc2, acc3, acc4" {
					t.Errorf("core's Affected Devices %q", d)
				}
				held := l.gate.Summary().Held
				if len(held) != 4 {
					t.Errorf("%d alerts held back, want the 4 children's: %+v", len(held), held)
				}
				for _, h := range held {
					if h.Reason != ReasonParent || strings.Join(h.By, ",") != "core" {
						t.Errorf("%s held for %s by %v, want parent core", h.Event.Device.Name, h.Reason, h.By)
					}
				}
				l.setDown(false, append([]string{"core"}, names(4, "acc")...)...)
				wait(time.Minute)
				if got := l.routing.summary(); got != "active core, resolved core" {
					t.Errorf("after the outage: %q, want the core's active and resolve alone", got)
				}
				if s := l.gate.Summary(); len(s.Held) != 0 || len(s.Unreachable) != 0 {
					t.Errorf("after the outage noise control still holds %+v", s)
				}
			})
		})
	}
}

// A child whose rounds fail before its parent's keeps its alert back until
// its parent's verdict: the gate asks for the parent's round at once.
func TestChildFailingFirstWaitsForItsParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// acc1's round comes 9 s before the core's: without the parent-first
		// probe its 20 s `for` would run out before the core's first
		// failing round was two rounds old.
		l := newLab(t, labOpts{devices: coreLab()[:2], phases: map[string]time.Duration{"acc1": 0, "core": 9 * time.Second}})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "acc1", "core")
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core" {
			t.Fatalf("receivers got %q, want the core's active alone", got)
		}
	})
}

// With redundant uplinks a device is unreachable only when all its parents
// fail; with one parent up, its own failure is its own alert.
func TestRedundantParents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := []inventory.Device{pinged("core1", ""), pinged("core2", ""), pinged("acc", "", "core1", "core2")}
		l := newLab(t, labOpts{devices: devs})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "core1")
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core1" {
			t.Fatalf("core1 down: %q", got)
		}
		l.setDown(true, "acc") // core2 still answers: acc is down, not unreachable
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core1, active acc" {
			t.Fatalf("acc down behind a working core2: %q, want its own alert", got)
		}
		l.setDown(true, "core2")
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core1, active acc, active core2" {
			t.Fatalf("both cores down: %q", got)
		}
	})
}

// Unreachable is transitive: an access point behind an access switch
// behind the core is suppressed behind the core, and the core's message
// counts both.
func TestTransitiveChain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := []inventory.Device{pinged("core", ""), pinged("acc", "", "core"), pinged("ap", "", "acc")}
		l := newLab(t, labOpts{devices: devs})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "core", "acc", "ap")
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core" {
			t.Fatalf("receivers got %q, want the core's active alone", got)
		}
		if d := l.sentFor("core")[0].ev.Details["Affected Devices"]; d != "2: acc, ap" {
			t.Errorf("Affected Devices %q, want both behind it", d)
		}
		for _, u := range l.gate.Summary().Unreachable {
			if strings.Join(u.SuppressedBy, ",") != "core" {
				t.Errorf("%s suppressed by %v, want the root cause core", u.Name, u.SuppressedBy)
			}
		}
	})
}

// When the parent comes back, a child still down is judged again from its
// own next round: it is told after its own `for` counted from there.
func TestChildStillDownAfterParentReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: coreLab()[:3], phases: map[string]time.Duration{"core": 0, "acc1": 3 * time.Second, "acc2": 6 * time.Second}})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "core", "acc1", "acc2")
		wait(time.Minute)
		l.setDown(false, "core", "acc2") // acc1 stays down: its own fault now
		back := time.Now()
		wait(2 * time.Minute)
		got := l.sentFor("acc1")
		if len(got) != 1 || got[0].ev.Status != event.StatusActive {
			t.Fatalf("acc1: %v, want its own active", got)
		}
		// The core answers at its next slot (within 10 s); acc1's next
		// round after that is the first it is judged from; 20 s later it
		// goes out (within a tick).
		if d := got[0].at.Sub(back); d < 20*time.Second || d > 42*time.Second {
			t.Errorf("acc1 told %v after the core came back, want its own for (20 s) after its first round since", d)
		}
		if n := len(l.sentFor("acc2")); n != 0 {
			t.Errorf("acc2 came back with the core: %d notifications, want none", n)
		}
	})
}

// A child told as down before its parent failed keeps its alert, and its
// resolve is sent.
func TestChildToldBeforeParentKeepsItsResolve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: coreLab()[:2]})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "acc1")
		wait(time.Minute)
		l.setDown(true, "core")
		wait(time.Minute)
		l.setDown(false, "core", "acc1")
		wait(time.Minute)
		if got := l.routing.summary(); got != "active acc1, active core, resolved acc1, resolved core" &&
			got != "active acc1, active core, resolved core, resolved acc1" {
			t.Fatalf("receivers got %q", got)
		}
	})
}

// A restart in the middle of an outage neither re-sends the core's alert
// nor lets the children's go out, and the end of the outage still sends
// the core's resolve.
func TestRestartMidOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: coreLab()})
		wait(25 * time.Second)
		l.setDown(true, append([]string{"core"}, names(4, "acc")...)...)
		wait(time.Minute)
		l.stop()
		wait(5 * time.Second)
		l.start()
		defer l.stop()
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core" {
			t.Fatalf("after the restart: %q, want the core's active alone, once", got)
		}
		l.setDown(false, append([]string{"core"}, names(4, "acc")...)...)
		wait(time.Minute)
		if got := l.routing.summary(); got != "active core, resolved core" {
			t.Fatalf("after the outage: %q", got)
		}
	})
}

// Parent first: a child whose own alert is due at once (for: 0s) waits
// for its parent's verdict, which the gate asks for at the child's first
// failing round; the parent's silence then suppresses the child.
func TestChildAlertWaitsForItsParentsVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := pinged("core", "")
		core.ICMP = &inventory.ICMP{Interval: time.Minute, Timeout: time.Second, Count: 1} // its next round is far off
		devs := []inventory.Device{core, pinged("acc1", "", "core")}
		l := newLab(t, labOpts{devices: devs, rules: immediateRule, phases: map[string]time.Duration{"acc1": 0, "core": 50 * time.Second}})
		defer l.stop()
		wait(65 * time.Second)
		l.setDown(true, "acc1", "core")
		wait(2 * time.Minute)
		if got := l.routing.summary(); got != "active core" {
			t.Fatalf("receivers got %q, want the core's active alone", got)
		}
	})
}

// Without an answer from the parent in time, the child's alert is not
// held for ever: it goes out after one parent round trip.
func TestParentVerdictDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := pinged("core", "")
		core.ICMP = &inventory.ICMP{Interval: time.Minute, Timeout: time.Second, Count: 1}
		devs := []inventory.Device{core, pinged("acc1", "", "core")}
		l := newLab(t, labOpts{devices: devs, rules: immediateRule, phases: map[string]time.Duration{"acc1": 0, "core": 50 * time.Second}})
		defer l.stop()
		wait(65 * time.Second)
		l.mu.Lock()
		l.dropProbes = true // the parent's out-of-round probe is lost
		l.mu.Unlock()
		l.setDown(true, "acc1")
		wait(20 * time.Second)
		got := l.sentFor("acc1")
		if len(got) != 1 {
			t.Fatalf("receivers got %q, want acc1's own active", l.routing.summary())
		}
		// It fired at its first failing round; it waits one parent round
		// trip (timeout 1 s × 1 + 1 s), not for the parent's next round.
		if d := got[0].at.Sub(got[0].ev.Timestamp); d < 2*time.Second || d > 2*time.Second+tickEvery {
			t.Errorf("acc1 told %v after it fired, want one parent round trip (2 s)", d)
		}
	})
}

// A site without parents configured: when at least 3 and half of its
// pinged devices fail within a minute, one site alert goes out (naming
// them) and their own alerts are suppressed behind the site; it resolves
// when fewer than 3 stay down, and a device still down then fires on its
// own.
func TestSiteOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var devs []inventory.Device
		for _, n := range names(6, "hq") {
			devs = append(devs, pinged(n, "HQ"))
		}
		devs = append(devs, pinged("branch1", "Branch"))
		l := newLab(t, labOpts{devices: devs, rules: icmpRule + siteRule})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "hq1", "hq2", "hq3", "hq4", "branch1")
		wait(2 * time.Minute)
		got := l.routing.summary()
		if got != "active HQ, active branch1" && got != "active branch1, active HQ" {
			t.Fatalf("4 of 6 HQ devices and branch1 down: %q, want the site's alert and branch1's own", got)
		}
		site := l.sentFor("HQ")[0].ev
		// As known when it is sent: the site goes down at its third device.
		if site.EventID != "NETWORK-SITES-1-501" || site.Key != "HQ" || !strings.HasPrefix(site.Details["Affected Devices"], "3: hq") {
			t.Errorf("site alert %s key %q details %v", site.EventID, site.Key, site.Details)
		}
		for _, u := range l.gate.Summary().Unreachable {
			if strings.Join(u.SuppressedBy, ",") != "site HQ" {
				t.Errorf("%s suppressed by %v, want the site", u.Name, u.SuppressedBy)
			}
		}
		// hq4 failed after the site alert went: its count grows in an
		// update (for destinations that edit their message).
		l.routing.mu.Lock()
		updates := l.routing.updates
		l.routing.mu.Unlock()
		if len(updates) != 1 || updates[0].ev.InstanceID != site.InstanceID || updates[0].ev.Details["Affected Devices"] != "4: hq1, hq2, hq3, hq4" {
			t.Errorf("updates %+v, want one of the site alert naming the four", updates)
		}
		l.setDown(false, "hq1", "hq2", "hq3") // hq4 stays down: fewer than 3
		wait(2 * time.Minute)
		var hq4 []string
		for _, s := range l.sentFor("hq4") {
			hq4 = append(hq4, string(s.ev.Status))
		}
		if n := len(l.sentFor("HQ")); n != 2 || strings.Join(hq4, ",") != "active" {
			t.Fatalf("after the site came back: %q; want the site's resolve and hq4's own active", l.routing.summary())
		}
	})
}

// Two devices of a site failing is no site outage (min_devices 3): each
// is its own alert.
func TestTwoDevicesAreNoSiteOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var devs []inventory.Device
		for _, n := range names(4, "hq") {
			devs = append(devs, pinged(n, "HQ"))
		}
		l := newLab(t, labOpts{devices: devs, rules: icmpRule + siteRule})
		defer l.stop()
		wait(25 * time.Second)
		l.setDown(true, "hq1", "hq2")
		wait(2 * time.Minute)
		got := l.routing.summary()
		if got != "active hq1, active hq2" && got != "active hq2, active hq1" {
			t.Fatalf("two down: %q, want their own alerts", got)
		}
	})
}

// A core that goes down and up three times in a few minutes flaps; the
// access switches behind it change as often, but being unreachable they
// never send, flapping or not.
func TestFlappingParentKeepsChildrenSuppressed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: coreLab()})
		defer l.stop()
		wait(25 * time.Second)
		all := append([]string{"core"}, names(4, "acc")...)
		for range 3 {
			l.setDown(true, all...)
			wait(time.Minute)
			l.setDown(false, all...)
			wait(time.Minute)
		}
		if got := l.routing.summary(); got != "active core, resolved core, active core, resolved core, active core" {
			t.Fatalf("receivers got %q, want the core's changes up to its flapping active, nothing of its children", got)
		}
		wait(16 * time.Minute)
		if got := l.routing.summary(); !strings.HasSuffix(got, "active core, resolved core") || strings.Contains(got, "acc") {
			t.Fatalf("after the core went quiet: %q", got)
		}
	})
}
