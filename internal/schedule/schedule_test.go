package schedule

import (
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
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

type job struct {
	Due
	name string
}

func TestQueueOrdersSetsAndRemoves(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	var q Queue[*job]
	a, b, c, d := &job{name: "a"}, &job{name: "b"}, &job{name: "c"}, &job{name: "d"}
	q.Set(a, at(3))
	q.Set(b, at(1))
	q.Set(c, at(2))
	q.Set(d, at(4))
	if !a.Queued() || q.Len() != 4 {
		t.Fatalf("after four Sets: len %d, a queued %v", q.Len(), a.Queued())
	}
	q.Set(a, at(0)) // moved to the front
	q.Remove(c)
	q.Remove(c) // not queued: nothing happens
	if c.Queued() {
		t.Error("c still queued after Remove")
	}
	if next, ok := q.Next(); !ok || !next.Equal(at(0)) {
		t.Errorf("Next = %v, %v; want %v", next, ok, at(0))
	}
	if head, _ := q.Peek(); head != a {
		t.Errorf("Peek = %s, want a", head.name)
	}
	var got []string
	for {
		x, ok := q.PopDue(at(2))
		if !ok {
			break
		}
		got = append(got, x.name)
		if x.Queued() {
			t.Errorf("%s still queued after PopDue", x.name)
		}
	}
	if want := "a b"; strings.Join(got, " ") != want {
		t.Errorf("due at +2s: %v, want %s", got, want)
	}
	if q.Len() != 1 || d.At() != at(4) {
		t.Errorf("left: len %d, d at %v; want d alone at +4s", q.Len(), d.At())
	}
}

func TestQueueRandomAgainstSort(t *testing.T) {
	base := time.Unix(0, 0)
	r := rand.New(rand.NewPCG(1, 2))
	var q Queue[*job]
	jobs := make([]*job, 200)
	for i := range jobs {
		jobs[i] = &job{name: strconv.Itoa(i)}
		q.Set(jobs[i], base.Add(time.Duration(r.IntN(1000))))
	}
	for range 500 { // reschedule and remove at random, as the schedulers do
		j := jobs[r.IntN(len(jobs))]
		if r.IntN(4) == 0 {
			q.Remove(j)
		} else {
			q.Set(j, base.Add(time.Duration(r.IntN(1000))))
		}
	}
	var want []time.Duration
	for _, j := range jobs {
		if j.Queued() {
			want = append(want, j.At().Sub(base))
		}
	}
	slices.Sort(want)
	var got []time.Duration
	for q.Len() > 0 {
		j, _ := q.PopDue(base.Add(time.Hour))
		got = append(got, j.At().Sub(base))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("popped in order %v, want %v", got, want)
	}
}

func TestLatestSkipsToTheNewestList(t *testing.T) {
	var l Latest[int]
	l.Set([]int{1})
	l.Set([]int{1, 2})
	select {
	case <-l.Changed():
	default:
		t.Fatal("no notice after Set")
	}
	if got := l.Take(); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("Take = %v, want the newest list [1 2]", got)
	}
	l.Set([]int{3})
	if got := l.Take(); !slices.Equal(got, []int{3}) {
		t.Errorf("Take = %v, want [3]", got)
	}
	select {
	case <-l.Changed():
		t.Error("a notice is left after Take returned the newest list")
	default:
	}
}

func TestReconcilerKeepsUnchangedTargets(t *testing.T) {
	type cfg struct{ name, addr string }
	type run struct{ cfg cfg }
	var started, stopped []string
	r := Reconciler[cfg, *run]{
		Kind: "TEST", Log: slog.New(slog.DiscardHandler),
		Name:  func(c cfg) string { return c.name },
		Same:  func(t *run, c cfg) bool { return t.cfg == c },
		Start: func(c cfg) *run { started = append(started, c.name); return &run{c} },
		Stop:  func(t *run) { stopped = append(stopped, t.cfg.name) },
	}
	running := map[string]*run{}
	r.Apply(running, []cfg{{"a", "1"}, {"b", "2"}, {"b", "dup"}})
	kept := running["a"]
	r.Apply(running, []cfg{{"a", "1"}, {"b", "3"}, {"c", "4"}})
	if running["a"] != kept {
		t.Error("unchanged target a was restarted")
	}
	if running["b"].cfg.addr != "3" {
		t.Errorf("b runs %+v, want the changed settings", running["b"].cfg)
	}
	slices.Sort(stopped)
	if got, want := strings.Join(started, " "), "a b b c"; got != want {
		t.Errorf("started %q, want %q (the duplicate b ignored)", got, want)
	}
	if got := strings.Join(stopped, " "); got != "b" {
		t.Errorf("stopped %q, want b (changed)", got)
	}
	r.Apply(running, nil)
	if len(running) != 0 || len(stopped) != 4 {
		t.Errorf("after an empty list: running %v, stopped %v", running, stopped)
	}
}
