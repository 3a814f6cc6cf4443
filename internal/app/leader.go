package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/cluster"
	"github.com/nocbridge/nocbridge/internal/cluster/lease"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/trap"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// leaseBucket holds the cluster's leader lease.
const leaseBucket = "cluster_lease"

// resyncTimeout bounds one attempt of a new leader to read back a
// component's state: a read JetStream never answers is tried again, and
// logged, rather than waited for for the whole term.
const resyncTimeout = 30 * time.Second

// joinCluster makes this node a cluster member (SPEC 9) when the config
// has a cluster: a contender for the leader lease, its sources publishing
// on the observation bus. Alone, the sources emit into the local queue.
func (a *App) joinCluster(ctx context.Context, c *config.Cluster) error {
	a.emit = a.queue.Emit
	if c == nil {
		return nil
	}
	log := a.log.With("component", "cluster")
	kv, err := a.store.LeaseBucket(ctx, leaseBucket, lease.DefaultTTL)
	if err != nil {
		return err
	}
	if a.lease, err = lease.New(kv, c.Node, lease.Options{Logger: log, Registerer: a.reg}); err != nil {
		return err
	}
	if a.bus, err = a.store.Bus(ctx, store.BusOptions{Node: c.Node, Logger: log, Registerer: a.reg}); err != nil {
		return err
	}
	if a.bridge, err = cluster.NewBridge(a.bus, cluster.BridgeOptions{ID: trap.DedupID, Inventory: a.devices.Load, Logger: log, Registerer: a.reg}); err != nil {
		return err
	}
	a.emit = a.bridge.Emit
	a.vantage, err = vantage.New(vantage.Options{DownWhen: c.DownWhen, Logger: log, Registerer: a.reg})
	return err
}

// leadership is what gates evaluation and delivery: nil alone (one term
// for the whole run).
func (a *App) leadership() cluster.Leadership {
	if a.lease == nil {
		return nil
	}
	return a.lease
}

// lead is one leadership term: alert state, noise control and the outbox
// as the store holds them, their Run, and rule evaluation of what the
// sources saw (the local queue alone, the bus in a cluster), until ctx
// ends (alone: until the queue is closed and drained). Components' errors
// reach Run through goRun as they happen.
func (a *App) lead(goRun func(*sync.WaitGroup, string, func() error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		// A new leader starts from what the previous one stored, once
		// JetStream has elected new leaders for the streams it held. Each
		// step is logged with how long it took: a term that does not
		// evaluate shows where it waits.
		started := time.Now()
		step := func(what string) {
			if a.lease != nil {
				a.log.Info("leading: "+what, "component", "cluster", "after", time.Since(started).Round(time.Millisecond).String())
			}
		}
		if a.lease != nil {
			if a.store.AwaitStreamLeaders(ctx) != nil {
				return nil
			}
			step("every stream has a leader")
			if !a.resync(ctx, "outbox", a.outbox.Resync) || !a.resync(ctx, "noise control", a.noise.Resync) {
				return nil
			}
			step("outbox and noise control read back")
		}
		run, stop := context.WithCancel(context.WithoutCancel(ctx))
		defer stop()
		var wg sync.WaitGroup
		defer wg.Wait()
		defer stop() // the components stop once evaluation has
		goRun(&wg, "outbox", func() error { return a.outbox.Run(run) })
		goRun(&wg, "noise", func() error { return a.noise.Run(run) })
		if a.lease != nil && !a.resync(ctx, "alert state", a.alerts.Resync) {
			return nil
		}
		step("alert state read back; evaluating")
		// Alert state: resolve what vanished from config and send what was
		// stored but not handed to the outbox before a crash.
		a.reloadMu.Lock()
		gen := a.gen.Load()
		if err := a.alerts.SetRules(ctx, gen.rules, gen.inventory); err != nil {
			a.log.Error("restoring alert state", "err", err)
		}
		a.reloadMu.Unlock()
		goRun(&wg, "alerts", func() error { return a.alerts.Run(run) })
		// node saw o ("" alone): the vantage points' key.
		evaluate := func(node string, o observation.Observation) {
			if a.vantage != nil {
				o = a.vantage.Observe(node, o) // the nodes' verdict, not this one's view
			}
			a.states.Record(o)
			a.noise.Observe(o)
			_ = a.alerts.Observe(run, o) // failures are logged by the manager and retried from the store
		}
		if a.bridge == nil {
			a.queue.Drain(func(o observation.Observation) { evaluate("", o) })
			return nil
		}
		return a.bridge.Evaluate(ctx, evaluate)
	}
}

// resync makes a component's state what the store holds, trying again
// every second while the store cannot be read; false when ctx (the term)
// ended first.
func (a *App) resync(ctx context.Context, name string, resync func(context.Context) error) bool {
	for {
		rctx, cancel := context.WithTimeout(ctx, resyncTimeout)
		err := resync(rctx)
		cancel()
		if err == nil {
			return true
		}
		a.log.Error("a new leader could not read what the previous one stored; trying again", "state", name, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

// leads reports whether this node runs the leader's work now (alone:
// always).
func (a *App) leads() bool { return a.lease == nil || a.lease.IsLeader() }

// clusterInfo is /api/v1/cluster: the store's cluster, the leader and the
// observation bus.
func (a *App) clusterInfo(ctx context.Context) store.ClusterInfo {
	ci := a.store.ClusterInfo(ctx)
	if a.lease != nil {
		s := a.lease.State()
		if s.Node != "" {
			ci.Leader = &store.ClusterLeader{Node: s.Node, Term: s.Term, Since: s.Since}
		}
		ci.SelfLeader = s.Self
		bs := a.bus.State(ctx)
		bs.Dropped, bs.TrapsReplayed = a.bridge.Dropped(), a.alerts.Replayed()
		ci.Bus = &bs
	}
	return ci
}

// leaderOutbox is the outbox as the API and console see it: replaying a
// dead letter goes through the leader's outbox, so a follower refuses it
// naming the leader (409).
type leaderOutbox struct {
	*outbox.Outbox
	a *App
}

func (o leaderOutbox) notLeader() error {
	if o.a.leads() {
		return nil
	}
	node, _, _ := o.a.lease.Leader()
	return &cluster.NotLeader{Leader: node}
}

func (o leaderOutbox) Replay(ctx context.Context, id string) error {
	if err := o.notLeader(); err != nil {
		return fmt.Errorf("replaying %s: %w", id, err)
	}
	return o.Outbox.Replay(ctx, id)
}

func (o leaderOutbox) ReplayAll(ctx context.Context, destination string) (int, error) {
	if err := o.notLeader(); err != nil {
		return 0, fmt.Errorf("replaying dead letters: %w", err)
	}
	return o.Outbox.ReplayAll(ctx, destination)
}
