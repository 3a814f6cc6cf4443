// Package cluster runs the work that only the cluster's leader does (rule
// evaluation, noise control, delivery: SPEC 9) for as long as this node
// leads, one leadership term at a time. The election itself is
// internal/cluster/lease's.
package cluster

import (
	"context"
	"errors"
	"time"
)

// Leadership is what Terms needs of a lease (lease.Lease).
type Leadership interface {
	// IsLeader reports whether this node leads now (by the clock: it
	// turns false the moment the node can no longer be sure).
	IsLeader() bool
	// Changes receives a value after the leadership changed.
	Changes() <-chan struct{}
}

// checkEvery is how often a term checks that its node still leads, on top
// of the lease's change notices: a lease stops being sure of itself by the
// clock, before its Run notices.
const checkEvery = 50 * time.Millisecond

// Terms runs term once per leadership term of this node, until ctx is
// done: when the node starts leading, term runs with a context that ends
// when the node stops leading (lease lost, partition, ctx done), and Terms
// waits for term to return before another term can begin. With no lease
// (a node alone) it runs one term for as long as ctx lasts. It returns nil
// when ctx ends, or the first error a term returns while its node still
// led (a component failed).
func Terms(ctx context.Context, l Leadership, term func(ctx context.Context) error) error {
	if l == nil {
		if err := term(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		for !l.IsLeader() {
			select {
			case <-ctx.Done():
				return nil
			case <-l.Changes():
			case <-tick.C:
			}
		}
		termCtx, end := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for l.IsLeader() {
				select {
				case <-termCtx.Done():
					return
				case <-l.Changes():
				case <-tick.C:
				}
			}
			end()
		}()
		err := term(termCtx)
		lost := termCtx.Err() != nil
		end()
		<-watched
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !lost && !errors.Is(err, context.Canceled) {
			return err
		}
	}
}
