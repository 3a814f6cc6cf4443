package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// leadership is a lease whose leadership the test sets.
type leadership struct {
	leads   atomic.Bool
	changes chan struct{}
}

func newLeadership() *leadership { return &leadership{changes: make(chan struct{}, 1)} }

func (l *leadership) IsLeader() bool           { return l.leads.Load() }
func (l *leadership) Changes() <-chan struct{} { return l.changes }

// set changes the leadership; notify says whether the lease signals it
// (a lease stops being sure of itself by the clock before it notices).
func (l *leadership) set(leads, notify bool) {
	l.leads.Store(leads)
	if notify {
		select {
		case l.changes <- struct{}{}:
		default:
		}
	}
}

func TestTermsFollowLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLeadership()
		var mu sync.Mutex
		var log []string
		running := atomic.Int32{}
		term := func(ctx context.Context) error {
			if running.Add(1) != 1 {
				t.Error("two terms at once")
			}
			mu.Lock()
			log = append(log, "start")
			mu.Unlock()
			<-ctx.Done()
			time.Sleep(time.Second) // stopping takes a while: no term may start meanwhile
			running.Add(-1)
			mu.Lock()
			log = append(log, "end")
			mu.Unlock()
			return ctx.Err()
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Terms(ctx, l, term) }()

		time.Sleep(time.Second)
		synctest.Wait()
		if len(log) != 0 {
			t.Fatalf("a follower ran a term: %v", log)
		}
		l.set(true, true)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		l.set(false, false) // by the clock, unnoticed: the check finds it
		time.Sleep(100 * time.Millisecond)
		l.set(true, true) // leads again while the last term is still stopping
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mu.Lock()
		got := append([]string(nil), log...)
		mu.Unlock()
		if want := []string{"start", "end", "start"}; !slices.Equal(got, want) {
			t.Fatalf("terms %v, want %v", got, want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Terms after ctx ended: %v, want nil", err)
		}
		if running.Load() != 0 {
			t.Error("Terms returned while a term still ran")
		}
	})
}

func TestTermsReportAFailedTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLeadership()
		l.set(true, true)
		boom := errors.New("outbox failed")
		if err := Terms(t.Context(), l, func(context.Context) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("Terms = %v, want the term's error", err)
		}
		// A term that ends because leadership ended is no failure.
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		calls := atomic.Int32{}
		go func() {
			done <- Terms(ctx, l, func(ctx context.Context) error {
				calls.Add(1)
				<-ctx.Done()
				return errors.New("stopped: " + ctx.Err().Error())
			})
		}()
		time.Sleep(time.Second)
		l.set(false, true)
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Terms returned %v after leadership ended, want it to wait for the next term", err)
		default:
		}
		cancel()
		if err := <-done; err != nil || calls.Load() != 1 {
			t.Errorf("Terms = %v after %d terms, want nil after 1", err, calls.Load())
		}
	})
}

func TestTermsAloneRunOnce(t *testing.T) {
	calls := 0
	err := Terms(t.Context(), nil, func(ctx context.Context) error {
		calls++
		if ctx != t.Context() {
			t.Error("a node alone's term has another context than the run's")
		}
		return nil
	})
	if err != nil || calls != 1 {
		t.Errorf("Terms alone = %v after %d terms, want nil after 1", err, calls)
	}
}
