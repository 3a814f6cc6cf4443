package edge

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/store"
)

// Node is what a daemon runs for edge sites: an edge's publisher or a
// hub's source. A nil *Node (neither edge: nor hub: configured) does
// nothing, so the daemon wires it the same way in every mode.
type Node struct {
	pub    *Publisher
	record func(observation.Observation)
	hub    *Hub
}

// NodeOptions configure Start.
type NodeOptions struct {
	// Inventory is the node's current inventory.
	Inventory func() *inventory.Inventory
	// Devices is the device-state tracker: on a hub it shows a cut-off
	// site's devices unknown; on an edge it records what the edge sees, so
	// the edge's own API shows its devices.
	Devices interface {
		UnknownMarker
		Record(observation.Observation)
	}
	// Backlog is the evaluation queue's length (observation.Queue.Len).
	Backlog    func() int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Start makes the edge or hub side of cfg on st: nil when cfg has neither.
func Start(ctx context.Context, cfg *config.Config, st *store.Store, opts NodeOptions) (*Node, error) {
	switch {
	case cfg.Edge != nil:
		buf, err := st.EdgeBuffer(ctx)
		if err != nil {
			return nil, err
		}
		pub, err := NewPublisher(buf, PublisherOptions{Site: cfg.Edge.Site, Logger: opts.Logger, Registerer: opts.Registerer})
		if err != nil {
			return nil, err
		}
		n := &Node{pub: pub}
		if opts.Devices != nil {
			n.record = opts.Devices.Record
		}
		return n, nil
	case cfg.Hub != nil:
		h, err := NewHub(ctx, HubOptions{Store: st, Sites: cfg.Hub.Sites, UnreachableAfter: cfg.Hub.UnreachableAfter.D(),
			Inventory: opts.Inventory, Devices: opts.Devices, Backlog: opts.Backlog, Logger: opts.Logger, Registerer: opts.Registerer})
		if err != nil {
			return nil, err
		}
		return &Node{hub: h}, nil
	}
	return nil, nil
}

// Emit is the sources' emit: on an edge, into its buffer for the hub (the
// edge evaluates nothing itself); elsewhere local, the evaluation queue.
func (n *Node) Emit(local observation.Emit) observation.Emit {
	if n == nil || n.pub == nil {
		return local
	}
	if n.record == nil {
		return n.pub.Emit
	}
	return func(o observation.Observation) {
		n.record(o)
		n.pub.Emit(o)
	}
}

// RunSource runs a hub's source of its edge sites' observations, emitting
// into emit, until ctx is done; elsewhere it returns at once. Run it among
// the sources.
func (n *Node) RunSource(ctx context.Context, emit observation.Emit) error {
	if n == nil || n.hub == nil {
		return nil
	}
	return n.hub.Run(ctx, emit)
}

// RunPublisher writes an edge's observations to its buffer until ctx is
// done, then what is still queued; elsewhere it returns at once. Run it
// so that it outlives the sources.
func (n *Node) RunPublisher(ctx context.Context) error {
	if n == nil || n.pub == nil {
		return nil
	}
	return n.pub.Run(ctx)
}

// ClusterInfo is info with the edge sites' status as its Edge.
func (n *Node) ClusterInfo(info func(context.Context) store.ClusterInfo) func(context.Context) store.ClusterInfo {
	if n == nil {
		return info
	}
	return func(ctx context.Context) store.ClusterInfo {
		ci := info(ctx)
		if n.pub != nil {
			ci.Edge = n.pub.Info(ctx)
		} else {
			ci.Edge = n.hub.Status(ctx)
		}
		return ci
	}
}
