package outbox

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// Clock is the outbox's time: when lanes fall due (backoff, Retry-After),
// the max_age clock, rate limits, the stop grace, the trim interval and the
// times it records. Options.Clock replaces it in tests; it is real time
// otherwise.
//
// What bounds I/O stays on real time: an attempt's timeout and measured
// duration, and the store's write timeouts.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, like
	// time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc; *time.Timer is one.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// waitLimiter waits, on the outbox's clock, until lim allows one attempt or
// ctx is done. A stopped Run starts no attempt, even one just allowed.
func (o *Outbox) waitLimiter(ctx context.Context, lim *rate.Limiter) error {
	now := o.clock.Now()
	r := lim.ReserveN(now, 1) // never refused: every burst is at least 1
	if d := r.DelayFrom(now); d > 0 {
		allowed := make(chan struct{})
		t := o.clock.AfterFunc(d, func() { close(allowed) })
		select {
		case <-allowed:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err := ctx.Err(); err != nil {
		r.CancelAt(o.clock.Now())
		return err
	}
	return nil
}
