package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/tally"
)

// Bus is the observation bus (store.Bus): every node publishes, the leader
// consumes.
type Bus interface {
	// Publish queues a record without blocking; records with the same
	// msgID within the bus's window are stored once ("": a unique id).
	Publish(data []byte, msgID string) error
	// Consume delivers records in order until ctx is done; ack
	// acknowledges a record and those before it; a record not
	// acknowledged within a few seconds is delivered again.
	Consume(ctx context.Context, handle func(node string, seq uint64, data []byte, ack func())) error
}

// BridgeOptions configure NewBridge.
type BridgeOptions struct {
	// ID is an observation's de-duplication id ("": none), such as
	// trap.DedupID: the same trap received by several nodes is one record.
	ID func(observation.Observation) string
	// Inventory is this node's inventory now, to find the devices of the
	// observations the bus delivers.
	Inventory  func() *inventory.Inventory
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Bridge carries observations over the bus: Emit on every node (the
// sources' emit in a cluster), Evaluate on the leader.
type Bridge struct {
	bus     Bus
	opts    BridgeOptions
	log     *slog.Logger
	dropped *tally.Reasons
	logged  time.Time // last drop logged (Evaluate's goroutine only)
}

// Reasons an observation is dropped on its way over the bus.
const (
	dropEncode  = "encode"         // no wire form (a source's bug)
	dropPublish = "publish"        // the bus's queue was full
	dropDecode  = "decode"         // a record that is no observation
	dropUnknown = "unknown_device" // a device this node's inventory lacks
)

// NewBridge makes a bridge over bus.
func NewBridge(bus Bus, opts BridgeOptions) (*Bridge, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Bridge{bus: bus, opts: opts, log: opts.Logger,
		dropped: tally.New("nocbridge_bus_dropped_total",
			"Observations dropped on their way over the cluster's observation bus, by reason: encode, publish (queue full), decode, unknown_device (not in the leader's inventory).",
			"reason", dropEncode, dropPublish, dropDecode, dropUnknown)}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(b.dropped.Collector()); err != nil {
			return nil, fmt.Errorf("observation bus metrics: %w", err)
		}
	}
	return b, nil
}

// Dropped counts the observations dropped on their way over the bus, by
// reason (nocbridge_bus_dropped_total), for the status page.
func (b *Bridge) Dropped() map[string]uint64 { return b.dropped.Counts() }

// Emit publishes o on the bus; it never blocks (observation.Emit).
func (b *Bridge) Emit(o observation.Observation) {
	data, err := observation.Marshal(o)
	if err != nil {
		b.dropped.Inc(dropEncode)
		b.log.Error("observation bus: observation without a wire form: dropped", "source", o.Source, "err", err)
		return
	}
	id := ""
	if b.opts.ID != nil {
		id = b.opts.ID(o)
	}
	if err := b.bus.Publish(data, id); err != nil {
		b.dropped.Inc(dropPublish)
	}
}

// Evaluate consumes the bus until ctx is done and hands each observation
// to evaluate with the node that saw it (for the vantage points), its Ack
// set to acknowledge the record: the alert manager calls it once the
// observation's transitions are committed, so a leader killed before that
// leaves the record to the next. Acknowledgements are cumulative (the
// manager calls them in order), so the records a new leader gets again are
// exactly those after the last one committed. What cannot be read is
// counted and logged, and acknowledged (delivering it again would not
// help): at once when every observation before it is, else once they are.
func (b *Bridge) Evaluate(ctx context.Context, evaluate func(node string, o observation.Observation)) error {
	// open counts observations handed on and not yet acknowledged: a
	// record that cannot be read is acknowledged at once when none is
	// (acknowledging it then covers nothing uncommitted), else when the
	// last of them is (owed), so the bus never waits on it.
	var (
		mu   sync.Mutex
		open int
		owed func()
	)
	return b.bus.Consume(ctx, func(node string, seq uint64, data []byte, ack func()) {
		o, err := observation.Unmarshal(data, func(name string, addr netip.Addr) *inventory.Device {
			return b.opts.Inventory().Lookup(name, addr)
		})
		if err != nil {
			reason := dropDecode
			if errors.Is(err, observation.ErrUnknownDevice) {
				reason = dropUnknown
			}
			b.dropped.Inc(reason)
			if time.Since(b.logged) > time.Minute {
				b.logged = time.Now()
				b.log.Warn("observation bus: observation dropped (logged once a minute; nocbridge_bus_dropped_total counts all)", "reason", reason, "err", err)
			}
			mu.Lock()
			if open == 0 {
				ack()
			} else {
				owed = ack
			}
			mu.Unlock()
			return
		}
		mu.Lock()
		open++
		mu.Unlock()
		var once sync.Once
		o.Seq = seq
		o.Ack = func() { // by the alert manager, once o's transitions are committed
			once.Do(func() {
				mu.Lock()
				defer mu.Unlock()
				ack()
				if open--; open == 0 && owed != nil {
					owed()
					owed = nil
				}
			})
		}
		evaluate(node, o)
	})
}
