// Package edge runs edge sites (SPEC 9) on top of the store's leaf-node
// streams (store/edge.go).
//
// On an edge node, the Publisher is the sources' emit: each observation is
// written, in its wire form (observation.Marshal), to the edge's bounded
// local stream, with a small heartbeat every few seconds so the hub knows
// the collector lives even when nothing changes. The edge node evaluates
// no rules and sends no notifications: its hub does.
//
// On the hub, Hub is a source like the probes: it reads each expected
// site's stream (which JetStream fills from the edge's, in order, replaying
// what the edge buffered through a WAN outage) and emits the observations
// about the hub's own inventory. It tracks each site's last contact by the
// hub's clock when records arrive, and when a site stays silent longer
// than hub.unreachable_after it marks the site's devices unknown and emits
// the edge observation that raises one NETWORK-SITES-1-502 "Collector
// unreachable" for the site, resolved when the site is heard again.
package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/lograte"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/tally"
)

// HeartbeatEvery is how often an edge tells its hub it lives.
const HeartbeatEvery = 2 * time.Second

// publishQueue bounds the observations waiting to be written to the
// buffer: a burst beyond it is dropped and counted.
const publishQueue = 16384

// Heartbeat is the record an edge writes every HeartbeatEvery.
type Heartbeat struct {
	Site string    `json:"site"`
	At   time.Time `json:"at"`
}

// Publisher writes an edge's observations to its buffer.
type Publisher struct {
	buf  *store.EdgeBuffer
	site string
	log  *slog.Logger
	ch   chan observation.Observation

	unsent    *tally.Reasons
	bytes     prometheus.Gauge
	messages  prometheus.Gauge
	limit     prometheus.Gauge
	connected prometheus.Gauge
	dropped   prometheus.Counter

	mu          sync.Mutex
	lastDropped uint64
	// logs keeps a buffer that cannot be written (the edge's disk full)
	// from logging once per observation.
	logs *lograte.Limiter
}

// PublisherOptions configure NewPublisher.
type PublisherOptions struct {
	Site       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// NewPublisher makes the edge's emit onto buf.
func NewPublisher(buf *store.EdgeBuffer, opts PublisherOptions) (*Publisher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Publisher{buf: buf, site: opts.Site, log: opts.Logger.With("site", opts.Site), ch: make(chan observation.Observation, publishQueue), logs: lograte.New(time.Minute),
		unsent: tally.New("nocbridge_edge_unsent_total",
			"Observations an edge could not write to its buffer, by reason (queue_full: the buffer's writer was behind; store: the write failed; encode: no wire form).",
			"reason", "queue_full", "store", "encode"),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_edge_buffer_bytes",
			Help: "Bytes held in this edge's buffer (delivered or not)."}),
		messages: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_edge_buffer_messages",
			Help: "Records held in this edge's buffer (delivered or not)."}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_edge_buffer_limit_bytes",
			Help: "This edge's buffer bound (edge.buffer): past it the oldest records are dropped."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_edge_connected",
			Help: "1 while this edge's leaf connection to its hub is up."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_edge_dropped_total",
			Help:        "Records evicted from this edge's full buffer before the hub confirmed them (as far as the edge can tell; the hub counts exactly).",
			ConstLabels: prometheus.Labels{"site": opts.Site}}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{p.unsent.Collector(), p.bytes, p.messages, p.limit, p.connected, p.dropped} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("edge metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Emit queues o for the buffer; it never blocks: a full queue drops and
// counts it.
func (p *Publisher) Emit(o observation.Observation) {
	select {
	case p.ch <- o:
	default:
		p.unsent.Inc("queue_full")
	}
}

// Run writes queued observations to the buffer and a heartbeat every
// HeartbeatEvery, until ctx is done; what is queued then is still written.
func (p *Publisher) Run(ctx context.Context) error {
	tick := time.NewTicker(HeartbeatEvery)
	defer tick.Stop()
	wctx := context.WithoutCancel(ctx)
	p.heartbeat(wctx)
	for {
		select {
		case o := <-p.ch:
			p.write(wctx, o)
		case <-tick.C:
			p.heartbeat(wctx)
		case <-ctx.Done():
			for {
				select {
				case o := <-p.ch:
					p.write(wctx, o)
				default:
					return nil
				}
			}
		}
	}
}

func (p *Publisher) write(ctx context.Context, o observation.Observation) {
	b, err := observation.Marshal(o)
	if err != nil {
		p.unsent.Inc("encode")
		p.logs.Log(p.log, slog.LevelWarn, "encode", "observation has no wire form: not buffered (logged once a minute; nocbridge_edge_unsent_total counts all)", "source", o.Source, "err", err)
		return
	}
	if _, err := p.buf.Append(ctx, store.EdgeObservation, b); err != nil {
		p.unsent.Inc("store")
		p.logs.Log(p.log, store.LogLevel(err, slog.LevelWarn), "store", "writing an observation to the edge buffer failed: not buffered (logged once a minute; nocbridge_edge_unsent_total counts all)", "source", o.Source, "err", err)
	}
}

func (p *Publisher) heartbeat(ctx context.Context) {
	b, _ := json.Marshal(Heartbeat{Site: p.site, At: time.Now().UTC()})
	if _, err := p.buf.Append(ctx, store.EdgeHeartbeat, b); err != nil {
		p.logs.Log(p.log, store.LogLevel(err, slog.LevelWarn), "heartbeat", "writing a heartbeat to the edge buffer failed (logged once a minute)", "err", err)
	}
	p.Status(ctx) // refreshes the metrics
}

// Status is the edge's buffer and connection, as /api/v1/cluster shows
// them; reading it refreshes the metrics.
func (p *Publisher) Status(ctx context.Context) store.EdgeBufferStatus {
	st := p.buf.Status(ctx)
	st.Unsent = p.unsent.Counts()
	p.bytes.Set(float64(st.Bytes))
	p.messages.Set(float64(st.Messages))
	p.limit.Set(float64(st.Limit))
	p.connected.Set(b2f(st.Connected))
	p.mu.Lock()
	if st.Dropped > p.lastDropped {
		p.dropped.Add(float64(st.Dropped - p.lastDropped))
		p.lastDropped = st.Dropped
	}
	p.mu.Unlock()
	return st
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
