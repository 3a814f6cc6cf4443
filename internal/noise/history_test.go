package noise

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

// kindsOf lists the history kinds of the instance first recorded for
// device, in order.
func (l *lab) kindsOf(device string) (string, []history.Kind) {
	for _, x := range l.hist.All() {
		if x.Event.Device.Name == device {
			return x.Event.InstanceID, l.hist.Kinds(x.Event.InstanceID)
		}
	}
	return "", nil
}

// detailOf is the detail of the first entry of kind for the instance.
func (l *lab) detailOf(id string, kind history.Kind) string {
	for _, e := range l.hist.Of(id) {
		if e.Kind == kind {
			return e.Detail
		}
	}
	return ""
}

// Noise control's decisions reach each alert's history: held behind a
// parent and never sent, muted then released, a muted one-shot event,
// and a flapping episode's start and end.
func TestHistoryDecisions(t *testing.T) {
	k := func(ks ...history.Kind) []history.Kind { return ks }
	const (
		pending  = history.KindPending
		active   = history.KindActive
		resolved = history.KindResolved
	)

	t.Run("suppressed behind a parent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, labOpts{devices: coreLab()})
			defer l.stop()
			wait(30 * time.Second)
			l.setDown(true, append([]string{"core"}, names(4, "acc")...)...)
			wait(2 * time.Minute)
			l.setDown(false, append([]string{"core"}, names(4, "acc")...)...)
			wait(time.Minute)
			id, got := l.kindsOf("acc1")
			// Held while its parent's verdict comes (or at once unreachable),
			// then not sent when it resolves.
			if len(got) < 4 || got[0] != pending || !slices.Contains(got, history.KindSuppressed) ||
				got[len(got)-1] != resolved || !slices.Contains(got, history.KindNotSent) {
				t.Fatalf("acc1 %s: %v, want pending, suppressed, active, not sent, resolved", id, got)
			}
			if d := l.detailOf(id, history.KindSuppressed); d != "parent: core" {
				t.Errorf("suppressed detail %q", d)
			}
			if _, got := l.kindsOf("core"); !slices.Equal(got, k(pending, active, resolved)) {
				t.Errorf("core: %v, want pending, active, resolved", got)
			}
		})
	})

	t.Run("muted then released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mutes := newFakeMutes()
			l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, mutes: mutes})
			defer l.stop()
			wait(15 * time.Second)
			end := time.Now().Add(5 * time.Minute)
			mutes.add(fakeWindow{name: "maintenance patching", devices: []string{"sw"}, start: time.Now(), end: end})
			l.setDown(true, "sw")
			wait(time.Minute)
			oneShot := event.Event{InstanceID: "restart-1", EventID: "NETWORK-DEVICES-3-102", Kind: event.KindEvent, Status: event.StatusActive,
				Device: inventory.Device{Name: "sw"}, Timestamp: time.Now()}
			if _, err := l.gate.Dispatch(context.Background(), oneShot, nil); err != nil {
				t.Fatal(err)
			}
			wait(end.Sub(time.Now()) + 2*time.Second)
			id, got := l.kindsOf("sw")
			if !slices.Equal(got, k(pending, history.KindMuted, active, history.KindReleased)) {
				t.Fatalf("sw %s: %v, want pending, muted, active, released", id, got)
			}
			if d := l.detailOf(id, history.KindMuted); d != "maintenance: maintenance patching" {
				t.Errorf("muted detail %q", d)
			}
			if d := l.detailOf(id, history.KindReleased); d != "was maintenance: sent now, to noc" {
				t.Errorf("released detail %q", d)
			}
			if got := l.hist.Kinds("restart-1"); !slices.Equal(got, k(history.KindMuted)) {
				t.Errorf("muted one-shot event: %v", got)
			}
			if d := l.detailOf("restart-1", history.KindMuted); !strings.Contains(d, "not sent later") {
				t.Errorf("one-shot muted detail %q", d)
			}
		})
	})

	t.Run("flapping", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, rules: immediateRule})
			defer l.stop()
			wait(15 * time.Second)
			for range 6 {
				l.setDown(true, "sw")
				wait(30 * time.Second)
				l.setDown(false, "sw")
				wait(30 * time.Second)
			}
			wait(16 * time.Minute)
			var starts, ends, suppressed int
			for _, x := range l.hist.All() {
				switch {
				case x.Entry.Kind == history.KindFlapping && strings.HasPrefix(x.Entry.Detail, "started: 5 changes in 15m"):
					starts++
				case x.Entry.Kind == history.KindFlapping && strings.HasPrefix(x.Entry.Detail, "ended: no change for 15m"):
					ends++
				case x.Entry.Kind == history.KindSuppressed && strings.HasPrefix(x.Entry.Detail, "flapping"):
					suppressed++
				}
			}
			if starts != 1 || ends != 1 || suppressed < 6 {
				t.Errorf("flapping entries: %d started, %d ended, %d suppressed; want 1, 1 and each change while it flapped", starts, ends, suppressed)
			}
		})
	})
}
