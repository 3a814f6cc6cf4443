package history_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// t0 is a fixed time, so the golden timeline does not change.
var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rig is a history on a real store in a temporary state directory.
type rig struct {
	t    *testing.T
	dir  string
	st   *store.Store
	h    *history.History
	reg  *prometheus.Registry
	stop func()
}

func newRig(t *testing.T, dir string, opts history.Options) *rig {
	t.Helper()
	r := &rig{t: t, dir: dir, st: openStore(t, dir), reg: prometheus.NewRegistry()}
	opts.Logger, opts.Registerer = quiet(), r.reg
	if opts.Retention == 0 {
		opts.Retention = time.Hour
	}
	var err error
	if r.h, err = history.New(context.Background(), r.st, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// run starts the writer; close stops it, then closes the store.
func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.h.Run(ctx); err != nil {
			r.t.Errorf("Run: %v", err)
		}
	}()
	r.stop = func() { cancel(); <-done }
}

func (r *rig) close() {
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.st.Close()
}

// written waits until n entries have been written in all, and their
// alerts' summaries.
func (r *rig) written(n uint64) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s := r.h.Stats(); s.Written < n || s.SummariesWaiting > 0; s = r.h.Stats() {
		if time.Now().After(deadline) {
			r.t.Fatalf("after 10s %d entries written, want %d (stats %+v)", r.h.Stats().Written, n, r.h.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) get(id string) history.Alert {
	r.t.Helper()
	a, err := r.h.Get(context.Background(), id)
	if err != nil {
		r.t.Fatalf("Get(%s): %v", id, err)
	}
	return a
}

func (r *rig) list(q history.Query) history.Page {
	r.t.Helper()
	p, err := r.h.List(context.Background(), q)
	if err != nil {
		r.t.Fatalf("List(%+v): %v", q, err)
	}
	return p
}

func down(instance, device string) event.Event {
	return event.Event{
		InstanceID: instance, EventID: "NETWORK-DEVICES-1-101", Name: "Device unreachable",
		Description: device + " (10.0.0.1) is unreachable", Category: "ALERT", Domain: "Connectivity", SubDomain: "Devices",
		Severity: 1, Source: "icmp", Timestamp: t0.Add(20 * time.Second), Status: event.StatusActive,
		Device: inventory.Device{Name: device, Address: "10.0.0.1", Site: "HQ", Role: "core"},
	}
}

func resolved(ev event.Event, at time.Time) event.Event {
	ev.Status, ev.Timestamp = event.StatusResolved, at
	return ev
}

// An alert's life, handed over as the writers do (a noise decision and a
// delivery attempt can be handed over before the transition they follow):
// Get gives it oldest first by time, with the summary folded from it.
func TestTimelineGolden(t *testing.T) {
	r := newRig(t, t.TempDir(), history.Options{})
	ev := down("11111111-2222-4333-8444-555555555555", "core-sw1")
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	r.h.Record(ev, history.Entry{At: at(21), Kind: history.KindHeld, Status: event.StatusActive, Detail: "parent_wait: waiting for the verdict of its parents (wan-rtr)"})
	r.h.Record(ev, history.Entry{At: at(0), Kind: history.KindPending})
	r.h.Record(ev, history.Entry{At: at(20), Kind: history.KindActive, Status: event.StatusActive})
	r.h.Record(ev, history.Entry{At: at(23), Kind: history.KindReleased, Status: event.StatusActive, Detail: "was parent_wait"})
	r.h.Record(ev, history.Entry{At: at(23), Kind: history.KindAttempt, Status: event.StatusActive, Destination: "itsm-hook", Attempt: 1,
		Result: "retry", HTTPStatus: 503, DurationMs: 12.5, Detail: "https://itsm.example.com/hook: HTTP 503: busy"})
	r.h.Record(ev, history.Entry{At: at(25), Kind: history.KindAttempt, Status: event.StatusActive, Destination: "itsm-hook", Attempt: 2,
		Result: "delivered", HTTPStatus: 200, DurationMs: 4})
	res := resolved(ev, at(300))
	r.h.Record(res, history.Entry{At: at(300), Kind: history.KindResolved, Status: event.StatusResolved})
	r.h.Record(res, history.Entry{At: at(301), Kind: history.KindAttempt, Status: event.StatusResolved, Destination: "itsm-hook", Attempt: 1,
		Result: "delivered", HTTPStatus: 204, DurationMs: 3})
	// Another alert's entries do not mix in.
	r.h.Record(down("other", "core-sw1"), history.Entry{At: at(22), Kind: history.KindActive, Status: event.StatusActive})
	r.run()
	r.written(9)

	a := r.get(ev.InstanceID)
	got, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "timeline.json", got)
	if a.Status != history.StatusResolved || a.Event == nil || a.Event.Status != event.StatusResolved || !a.ResolvedAt.Equal(at(300)) {
		t.Errorf("summary %+v; want resolved at %v with the resolve as its event", a, at(300))
	}
	// The page of alerts agrees with the alert's own page.
	p := r.list(history.Query{Device: "core-sw1", EventID: ev.EventID, Status: history.StatusResolved})
	if len(p.Items) != 1 || p.Items[0].InstanceID != ev.InstanceID || p.Items[0].Timeline != nil || !p.Items[0].LastAt.Equal(a.LastAt) ||
		!p.Items[0].FirstAt.Equal(a.FirstAt) || p.Items[0].Event.Status != event.StatusResolved {
		t.Fatalf("List = %+v; want the resolved alert's summary", p)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(want), bytes.TrimSpace(got)) {
		t.Errorf("%s differs (run with -update after checking):\n%s", path, got)
	}
}

// What was written is there after a restart, for Get and List alike.
func TestRestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, history.Options{})
	r.run()
	ev := down("restart-1", "sw1")
	r.h.Record(ev, history.Entry{At: t0, Kind: history.KindActive, Status: event.StatusActive})
	r.h.Record(ev, history.Entry{At: t0.Add(time.Second), Kind: history.KindAttempt, Status: event.StatusActive, Destination: "hook", Attempt: 1, Result: "delivered", HTTPStatus: 204})
	r.written(2)
	before := r.get(ev.InstanceID)
	r.close()

	r = newRig(t, dir, history.Options{})
	after := r.get(ev.InstanceID)
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if !bytes.Equal(b1, b2) || len(after.Timeline) != 2 {
		t.Fatalf("after a restart:\n%s\nbefore:\n%s", b2, b1)
	}
	if p := r.list(history.Query{}); len(p.Items) != 1 || p.Items[0].InstanceID != ev.InstanceID {
		t.Fatalf("List after a restart: %+v", p)
	}
	// The writer carries on from the stored summary (not from nothing).
	r.run()
	r.h.Record(resolved(ev, t0.Add(time.Minute)), history.Entry{At: t0.Add(time.Minute), Kind: history.KindResolved, Status: event.StatusResolved})
	r.written(1)
	p := r.list(history.Query{})
	if len(p.Items) != 1 || p.Items[0].Status != history.StatusResolved || !p.Items[0].FirstAt.Equal(t0) {
		t.Fatalf("List after a resolve past the restart: %+v; want it resolved, first seen at %v", p, t0)
	}
}

// history.retention: entries older than it are gone, and the alert with them.
func TestRetentionExpires(t *testing.T) {
	r := newRig(t, t.TempDir(), history.Options{Retention: 500 * time.Millisecond})
	r.run()
	ev := down("short-lived", "sw1")
	r.h.Record(ev, history.Entry{Kind: history.KindActive, Status: event.StatusActive})
	r.written(1)
	r.get(ev.InstanceID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.h.Get(context.Background(), ev.InstanceID)
		if errors.Is(err, history.ErrNotFound) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("Get %v after the retention; want ErrNotFound", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := r.list(history.Query{}); len(p.Items) != 0 {
		t.Fatalf("List after the retention: %+v", p)
	}
}

// Pages: newest change first, exactly as many as asked, a cursor only when
// more exist, filters by device, event id and status, and a clear error
// for a cursor history did not give.
func TestListPages(t *testing.T) {
	r := newRig(t, t.TempDir(), history.Options{})
	if p := r.list(history.Query{}); len(p.Items) != 0 || p.Next != "" || p.Items == nil {
		t.Fatalf("an empty history: %+v; want no items (an empty list) and no cursor", p)
	}
	r.run()
	// 25 alerts on sw0…sw4, one at a time so their order is known.
	var ids []string
	var evs []event.Event
	for i := range 25 {
		ev := down(fmt.Sprintf("a%02d", i), fmt.Sprintf("sw%d", i%5))
		if i%2 == 1 {
			ev.EventID = "NETWORK-INTERFACES-2-301"
		}
		r.h.Record(ev, history.Entry{At: t0.Add(time.Duration(i) * time.Second), Kind: history.KindActive, Status: event.StatusActive})
		r.written(uint64(i + 1))
		ids = append(ids, ev.InstanceID)
		evs = append(evs, ev)
	}
	// a03 resolves last: it moves to the top.
	r.h.Record(resolved(evs[3], t0.Add(time.Hour)), history.Entry{At: t0.Add(time.Hour), Kind: history.KindResolved, Status: event.StatusResolved})
	r.written(26)
	newest := []string{"a03"}
	for i := 24; i >= 0; i-- {
		if i != 3 {
			newest = append(newest, ids[i])
		}
	}
	pages := func(q history.Query) (got [][]string) {
		for {
			p := r.list(q)
			var ids []string
			for _, a := range p.Items {
				ids = append(ids, a.InstanceID)
			}
			got = append(got, ids)
			if p.Next == "" {
				return got
			}
			q.Cursor = p.Next
		}
	}
	for _, tc := range []struct {
		name string
		q    history.Query
		want [][]string
	}{
		{"one page of all", history.Query{Limit: 25}, [][]string{newest}},
		{"the default page", history.Query{}, [][]string{newest}},
		{"pages of 10", history.Query{Limit: 10}, [][]string{newest[:10], newest[10:20], newest[20:]}},
		{"exactly one page", history.Query{Device: "sw3", Limit: 5}, [][]string{{"a03", "a23", "a18", "a13", "a08"}}},
		{"a device in pages", history.Query{Device: "sw3", Limit: 2}, [][]string{{"a03", "a23"}, {"a18", "a13"}, {"a08"}}},
		{"an event id", history.Query{EventID: "NETWORK-INTERFACES-2-301", Device: "sw1", Limit: 10}, [][]string{{"a21", "a11", "a01"}}},
		{"a status", history.Query{Status: history.StatusResolved}, [][]string{{"a03"}}},
		{"a status in pages", history.Query{Status: history.StatusActive, Limit: 12}, [][]string{newest[1:13], newest[13:]}},
		{"an unknown device", history.Query{Device: "no such device"}, [][]string{nil}},
		{"a cursor past the end", history.Query{Cursor: "h1"}, [][]string{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pages(tc.q); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("pages %v\nwant  %v", got, tc.want)
			}
		})
	}
	for _, q := range []history.Query{{Cursor: "x"}, {Cursor: "h"}, {Cursor: "h-1"}, {Cursor: "h0"}, {Status: "firing"}} {
		if _, err := r.h.List(context.Background(), q); !errors.Is(err, history.ErrBadQuery) {
			t.Errorf("List(%+v): %v; want ErrBadQuery", q, err)
		}
	}
	if _, err := r.h.Get(context.Background(), "never-seen"); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("Get of an unknown instance: %v; want ErrNotFound", err)
	}
}

// Writers never wait: past the buffer, entries are dropped and counted
// (metric and Stats), and once the writer has stopped, too.
func TestDropsCountedWhenFull(t *testing.T) {
	r := newRig(t, t.TempDir(), history.Options{Buffer: 4})
	ev := down("busy", "sw1")
	start := time.Now()
	for i := range 10 {
		r.h.Record(ev, history.Entry{At: t0.Add(time.Duration(i) * time.Second), Kind: history.KindAttempt, Status: event.StatusActive, Attempt: i + 1})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("10 records with no writer running took %v", d)
	}
	if got := promtest.Value(t, r.reg, "nocbridge_history_dropped_total", "reason", history.DropFull); got != 6 {
		t.Fatalf("dropped %v as full, want 6", got)
	}
	if got := promtest.Value(t, r.reg, "nocbridge_history_waiting"); got != 4 {
		t.Fatalf("waiting %v, want 4", got)
	}
	r.run()
	r.written(4)
	if a := r.get(ev.InstanceID); len(a.Timeline) != 4 || a.Timeline[0].Attempt != 1 || a.Timeline[3].Attempt != 4 {
		t.Fatalf("timeline %+v; want the first four attempts", a.Timeline)
	}
	r.stop()
	r.stop = nil
	r.h.Record(ev, history.Entry{Kind: history.KindAttempt})
	st := r.h.Stats()
	if st.Dropped[history.DropFull] != 6 || st.Dropped[history.DropStopped] != 1 || st.Written != 4 || st.LastDrop.IsZero() || st.Retention != "1h0m0s" {
		t.Fatalf("stats %+v; want 4 written, 6 dropped full, 1 after the stop", st)
	}
	if got := promtest.Value(t, r.reg, "nocbridge_history_entries_total"); got != 4 {
		t.Fatalf("nocbridge_history_entries_total %v, want 4", got)
	}
}

// A timeline of thousands of entries (a destination probed for a day)
// keeps its first and last entries and says how many lie between.
func TestLongTimelineKeepsEnds(t *testing.T) {
	r := newRig(t, t.TempDir(), history.Options{})
	r.run()
	ev := down("probed", "sw1")
	const n = 1500
	for i := range n {
		r.h.Record(ev, history.Entry{At: t0.Add(time.Duration(i) * time.Second), Kind: history.KindAttempt, Status: event.StatusActive,
			Destination: "hook", Attempt: i + 1, Probe: true, Result: "retry", HTTPStatus: 503})
	}
	r.written(n)
	a := r.get(ev.InstanceID)
	if len(a.Timeline) != 1000 || a.Omitted != n-1000 || a.Timeline[0].Attempt != 1 || a.Timeline[99].Attempt != 100 ||
		a.Timeline[100].Attempt != 601 || a.Timeline[999].Attempt != n || !a.LastAt.Equal(t0.Add((n-1)*time.Second)) {
		t.Fatalf("timeline of %d, omitted %d, ends %d…%d / %d…%d", len(a.Timeline), a.Omitted,
			a.Timeline[0].Attempt, a.Timeline[99].Attempt, a.Timeline[100].Attempt, a.Timeline[len(a.Timeline)-1].Attempt)
	}
}

// Names that are not subject tokens (dots, spaces, wildcards) are kept
// apart and found again.
func TestOddNames(t *testing.T) {
	r := newRig(t, t.TempDir(), history.Options{})
	r.run()
	names := []string{"sw1.example.com", "sw1 example com", "*", ">", "=c3cx", "sw1"}
	for i, name := range names {
		r.h.Record(down(fmt.Sprintf("odd.%d *", i), name), history.Entry{At: t0, Kind: history.KindActive, Status: event.StatusActive})
	}
	r.written(uint64(len(names)))
	for i, name := range names {
		p := r.list(history.Query{Device: name})
		if len(p.Items) != 1 || p.Items[0].Device != name || p.Items[0].InstanceID != fmt.Sprintf("odd.%d *", i) {
			t.Errorf("device %q: %+v", name, p.Items)
		}
		r.get(fmt.Sprintf("odd.%d *", i))
	}
}
