package outbox

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a test advances it. Due timers
// fire in Advance, in due order, before it returns.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer
	made    int           // timers made so far
	changed chan struct{} // closed and replaced whenever a timer or the time changes
}

type fakeTimer struct {
	c      *fakeClock
	f      func()
	n      int           // the clock's made count when this timer was made
	d      time.Duration // as last set
	at     time.Time     // when it fires
	queued bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	c.made++
	t := &fakeTimer{c: c, f: f, n: c.made}
	c.mu.Unlock()
	t.Reset(d)
	return t
}

func (t *fakeTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.queued
	c.unqueueLocked(t)
	return was
}

// Reset sets the timer to fire d from now; like time.AfterFunc, d <= 0
// fires it at once, in its own goroutine.
func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	was := t.queued
	t.d, t.at = d, c.now.Add(d)
	if d <= 0 {
		c.unqueueLocked(t)
	} else if !was {
		t.queued = true
		c.pending = append(c.pending, t)
	}
	c.changedLocked()
	c.mu.Unlock()
	if d <= 0 {
		go t.f()
	}
	return was
}

func (c *fakeClock) unqueueLocked(t *fakeTimer) {
	if i := slices.Index(c.pending, t); i >= 0 {
		c.pending = slices.Delete(c.pending, i, i+1)
		t.queued = false
		c.changedLocked()
	}
}

func (c *fakeClock) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock d ahead.
func (c *fakeClock) Advance(d time.Duration) { c.advanceTo(c.Now().Add(d)) }

// advanceTo moves the clock to end, firing the timers due by then in due
// order, each at its time. It never moves the clock back.
func (c *fakeClock) advanceTo(end time.Time) {
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.pending {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			if end.After(c.now) {
				c.now = end
				c.changedLocked()
			}
			c.mu.Unlock()
			return
		}
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.unqueueLocked(next)
		c.mu.Unlock()
		next.f()
	}
}

// dueWithin counts the timers due at most d from now.
func (c *fakeClock) dueWithin(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.pending {
		if !t.at.After(c.now.Add(d)) {
			n++
		}
	}
	return n
}

// madeCount is how many timers were made so far.
func (c *fakeClock) madeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made
}

// timerMadeAfter says when a pending timer set for d that was made after
// the first n timers fires, if there is one, and returns a channel closed
// on the next change.
func (c *fakeClock) timerMadeAfter(n int, d time.Duration) (at time.Time, ok bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.pending {
		if t.n > n && t.d == d {
			return t.at, true, c.changed
		}
	}
	return time.Time{}, false, c.changed
}

// waitUntil waits, without polling, until cond holds; cond runs with no
// lock held and is checked again on every change of the clock.
func (c *fakeClock) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
	}
}

func TestFakeClockFiresInOrder(t *testing.T) {
	c := newFakeClock()
	start := c.Now()
	var fired []time.Duration
	record := func() { fired = append(fired, c.Now().Sub(start)) }
	c.AfterFunc(30*time.Millisecond, record)
	stopped := c.AfterFunc(20*time.Millisecond, record)
	moved := c.AfterFunc(time.Hour, record)
	c.AfterFunc(10*time.Millisecond, record)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop of a pending timer must say true once")
	}
	if !moved.Reset(25 * time.Millisecond) {
		t.Fatal("Reset of a pending timer must say it was pending")
	}
	if n := c.dueWithin(30 * time.Millisecond); n != 3 {
		t.Fatalf("dueWithin(30ms) = %d; want 3", n)
	}
	c.Advance(29 * time.Millisecond)
	c.Advance(time.Millisecond)
	if !slices.Equal(fired, []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, 30 * time.Millisecond}) {
		t.Fatalf("fired at %v; want 10ms, 25ms, 30ms", fired)
	}
	if got := c.Now().Sub(start); got != 30*time.Millisecond {
		t.Fatalf("clock at %v after advancing 30ms", got)
	}
	done := make(chan struct{})
	c.AfterFunc(0, func() { close(done) })
	<-done // a timer set for no time fires without an Advance
}
