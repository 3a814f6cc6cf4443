package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The observation bus (SPEC 9): in a cluster every node's sources publish
// what they saw to one replicated stream, and the leader alone consumes it
// for rule evaluation, through one durable consumer, so a new leader goes on
// from where the previous one's acknowledgements stopped.
const (
	// BusStream is the stream, BusSubjectPrefix+<node> its subjects.
	BusStream        = "OBSERVATIONS"
	BusSubjectPrefix = "nocbridge.obs."
	// BusDuplicateWindow is JetStream's de-duplication window on the bus:
	// a record published with a message id already seen within it is
	// stored once (a trap that reached several nodes, SPEC 9). It is
	// longer than a record is retried (busRetryFor) plus its wait in a
	// full queue: a node's copy held back by a stream leader's election
	// and stored 5 s after another node's was evaluated a second time,
	// after the linkUp that followed it (an alert left open). A repeated
	// trap differs in its sysUpTime, so the window does not hide it.
	BusDuplicateWindow = time.Minute
	// busConsumer is the leader's durable consumer.
	busConsumer = "evaluator"
	// busMaxAge and busMaxBytes bound the stream: the leader consumes it
	// within milliseconds, so what is older is never needed; past the
	// bound the oldest records go.
	busMaxAge   = 10 * time.Minute
	busMaxBytes = 512 << 20
	// busAckWait is how long a record delivered to the leader may stay
	// unacknowledged before it is delivered again (to the leader of then):
	// a leader killed mid-work hands its records over after this.
	busAckWait = 5 * time.Second
	// busMaxAckPending bounds the records delivered and not yet
	// acknowledged (traps wait for their transitions' commit).
	busMaxAckPending = 4096
	// busQueue bounds the records waiting to be published: past it a
	// source's record is dropped and counted, never waited for.
	busQueue = 16384
	// busBatch is how many records are published before their acks are
	// awaited together.
	busBatch = 256
	// busRetryFor is how long a record that could not be published is
	// tried again (a stream leader being elected takes up to ~10 s).
	busRetryFor   = 30 * time.Second
	busAckTimeout = 5 * time.Second
	// busOpenTimeout bounds one try to open the evaluator's consumer: one
	// whose own leader is being elected after a kill does not answer, and
	// is asked again soon after (a 5 s bound held a new leader's
	// evaluation up to 5 s past the election).
	busOpenTimeout = 2 * time.Second
	// busStallAfter is how long the evaluator's consumer may deliver
	// nothing while the stream holds records for it before it is made
	// again (see Consume).
	busStallAfter = 5 * time.Second
)

// BusOptions configure Store.Bus.
type BusOptions struct {
	// Node is this node's name: the subject it publishes on.
	Node       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// StallAfter overrides busStallAfter (tests).
	StallAfter time.Duration
}

// Bus is the observation bus: Publish on every node, Consume on the leader.
type Bus struct {
	st     *Store
	js     jetstream.JetStream
	stream jetstream.Stream
	node   string
	log    *slog.Logger
	queue  chan busRecord
	prefix string // message ids made for records published without one
	n      atomic.Uint64
	// resumeFrom is the sequence the evaluator's consumer, deleted to
	// deliver again from there, must be made again at (0: none); Consume's.
	resumeFrom uint64
	stallAfter time.Duration

	published, failed, duplicates, consumed, redelivered, stalls prometheus.Counter
	dupTotal, stallTotal, failTotal, redeliveredTotal            atomic.Uint64
}

type busRecord struct {
	data  []byte
	msgID string
	at    time.Time
}

// BusState is the bus as /api/v1/cluster shows it.
type BusState struct {
	Stream string `json:"stream"`
	// Messages are the records the stream holds (consumed ones too, until
	// they age out).
	Messages uint64 `json:"messages"`
	// Pending are records the leader has not been delivered yet;
	// AckPending those delivered and not yet acknowledged.
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
	// Acknowledged is the stream sequence up to which the leader has
	// acknowledged every record (committed their transitions).
	Acknowledged uint64 `json:"acknowledged"`
	// DuplicatesDropped counts the records this node published that
	// JetStream stored once already (the same trap received by another
	// node within the window).
	DuplicatesDropped uint64 `json:"duplicates_dropped"`
	DuplicateWindow   string `json:"duplicate_window"`
	// ConsumerStalls counts the times this node, leading, found the
	// evaluator's consumer silent while records waited, and made it again.
	ConsumerStalls uint64 `json:"consumer_stalls"`
	// PublishFailures are this node's observations lost on the way to the
	// bus (queue full, or not stored within 30 s of retries).
	PublishFailures uint64 `json:"publish_failures"`
	// Redelivered are records delivered again to this node, leading, while
	// their evaluation was under way: not evaluated twice.
	Redelivered uint64 `json:"redelivered"`
	// Dropped are observations dropped on their way over the bus, by
	// reason (cluster.Bridge); TrapsReplayed the traps a new leader got
	// again that an alert had already taken (alert.Manager): both filled
	// in by the caller.
	Dropped       map[string]uint64 `json:"dropped,omitempty"`
	TrapsReplayed uint64            `json:"traps_replayed"`
	Error         string            `json:"error,omitempty"`
}

// Bus opens the observation bus (creating its stream, with the store's
// replicas). Run must run for Publish to publish.
func (s *Store) Bus(ctx context.Context, opts BusOptions) (*Bus, error) {
	if opts.Node == "" {
		return nil, errors.New("observation bus: node name is empty")
	}
	log := opts.Logger
	if log == nil {
		log = s.log
	}
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(2*busBatch), jetstream.WithPublishAsyncTimeout(busAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("observation bus: %w", err)
	}
	var stream jetstream.Stream
	err = s.creating(ctx, func(ctx context.Context) (err error) {
		stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        BusStream,
			Description: "observations of every node's sources, for the leader's rule evaluation",
			Subjects:    []string{BusSubjectPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Replicas:    s.replicas,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      busMaxAge,
			MaxBytes:    busMaxBytes,
			MaxMsgs:     -1,
			Duplicates:  BusDuplicateWindow,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the observation bus (stream %s) in %s: %w", BusStream, s.dir, err)
	}
	var inc [6]byte
	_, _ = rand.Read(inc[:])
	b := &Bus{st: s, js: js, stream: stream, node: opts.Node, log: log, queue: make(chan busRecord, busQueue),
		prefix: opts.Node + "-" + hex.EncodeToString(inc[:]) + "-", stallAfter: cmp.Or(opts.StallAfter, busStallAfter),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_bus_published_total",
			Help: "Observations this node published on the cluster's observation bus (duplicates included)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_bus_publish_failures_total",
			Help: "Observations this node could not publish on the observation bus (queue full, or not stored within 30 s of retries): lost."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_bus_duplicates_total",
			Help: "Observations this node published that the bus had within its de-duplication window (a trap another node received too): stored once."}),
		consumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_bus_consumed_total",
			Help: "Observations this node took from the bus for rule evaluation while it led."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_bus_redelivered_total",
			Help: "Observations the bus delivered to this node again while their evaluation was under way (not acknowledged within its ack wait): not evaluated twice."}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_bus_consumer_stalls_total",
			Help: "Times the evaluator's consumer delivered nothing while the bus held records for it, and was made again."}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{b.published, b.failed, b.duplicates, b.consumed, b.redelivered, b.stalls} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("observation bus metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Publish queues data for publication under msgID (records with the same
// id within BusDuplicateWindow are stored once; "" gives it a unique
// one). It never blocks: a full queue drops the record, counted and
// returned as an error.
func (b *Bus) Publish(data []byte, msgID string) error {
	if msgID == "" {
		msgID = b.prefix + strconv.FormatUint(b.n.Add(1), 10)
	}
	select {
	case b.queue <- busRecord{data: data, msgID: msgID, at: time.Now()}:
		return nil
	default:
		b.failed.Inc()
		b.failTotal.Add(1)
		return fmt.Errorf("observation bus: %d records wait to be published: dropped", busQueue)
	}
}

// Run publishes what Publish queued, in order, until ctx is done, then
// publishes what is still queued (for at most a few seconds).
func (b *Bus) Run(ctx context.Context) error {
	subject := BusSubjectPrefix + b.node
	batch := make([]busRecord, 0, busBatch)
	for {
		select {
		case r := <-b.queue:
			b.publish(ctx, subject, b.take(append(batch[:0], r)))
		case <-ctx.Done():
			b.flush(subject)
			return nil
		}
	}
}

// take adds to batch what is queued now, up to busBatch records.
func (b *Bus) take(batch []busRecord) []busRecord {
	for len(batch) < busBatch {
		select {
		case r := <-b.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// flush publishes what is queued at stop, for at most busAckTimeout.
func (b *Bus) flush(subject string) {
	ctx, cancel := context.WithTimeout(context.Background(), busAckTimeout)
	defer cancel()
	for {
		batch := b.take(nil)
		if len(batch) == 0 {
			return
		}
		b.publish(ctx, subject, batch)
		if ctx.Err() != nil {
			n := len(b.queue)
			b.failed.Add(float64(n))
			b.failTotal.Add(uint64(n))
			b.log.Warn("observation bus: stopping with records not published", "lost", n)
			return
		}
	}
}

// publish sends a batch asynchronously and awaits its acks; a record that
// failed is published again (same id, so never stored twice) until it is
// stored or busRetryFor has passed since it was queued.
func (b *Bus) publish(ctx context.Context, subject string, batch []busRecord) {
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, r := range batch {
		f, err := b.js.PublishAsync(subject, r.data, jetstream.WithMsgID(r.msgID))
		if err == nil {
			futures[i] = f
		}
	}
	for i, r := range batch {
		var ack *jetstream.PubAck
		var err error
		if f := futures[i]; f != nil {
			select {
			case ack = <-f.Ok():
			case err = <-f.Err():
			}
		} else {
			err = errors.New("not sent")
		}
		for wait := 100 * time.Millisecond; err != nil; wait = min(2*wait, 2*time.Second) {
			if time.Since(r.at) > busRetryFor || ctx.Err() != nil {
				b.failed.Inc()
				b.failTotal.Add(1)
				b.log.Error("observation bus: record not stored: lost", "queued", r.at, "err", err)
				break
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, busAckTimeout)
			ack, err = b.js.Publish(pctx, subject, r.data, jetstream.WithMsgID(r.msgID))
			cancel()
		}
		if ack != nil {
			b.published.Inc()
			if ack.Duplicate {
				b.duplicates.Inc()
				b.dupTotal.Add(1)
			}
		}
	}
}

// Consume delivers the bus's records in stream order to handle, with the
// node that published each and its stream sequence, from where the durable consumer's
// acknowledgements stopped, until ctx is done. ack acknowledges a record
// and every record before it (JetStream's AckAll): call them in order, and
// a record that needs no acknowledgement of its own needs no call. A
// record is handed to handle once per Consume call, even when JetStream
// delivers it again (not acknowledged within its ack wait): a new leader's
// Consume gets again what the previous one left unacknowledged. Run it on
// the leader only, on one goroutine.
//
// A consumer that stays silent while the stream holds records after the
// last one delivered (seen after a leader's kill: the consumer made again
// delivered nothing for a whole term) is made again, from the record after
// the last one delivered, once every delivered record is acknowledged:
// counted in nocbridge_bus_consumer_stalls_total.
func (b *Bus) Consume(ctx context.Context, handle func(node string, seq uint64, data []byte, ack func())) error {
	var p busProgress
	for first := true; ; first = false {
		cons, info := b.open(ctx, first)
		if cons == nil {
			return nil // ctx done
		}
		if first {
			p.start(info)
		}
		err := b.consume(ctx, cons, &p, handle)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errBusStalled) {
			if !b.remake(ctx, &p) {
				return nil
			}
			continue
		}
		b.log.Warn("observation bus: the evaluator's consumer stopped delivering; opening it again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// errBusStalled: the consumer delivered nothing for stallAfter while the
// stream held records for it.
var errBusStalled = errors.New("the evaluator's consumer delivered nothing while the stream holds records after the last one delivered")

// busProgress is one Consume call's position: the records handed to
// handle and not yet acknowledged, the acknowledgement floor, and when
// handle last returned (0 while it runs).
type busProgress struct {
	mu        sync.Mutex
	handed    []uint64 // ascending, above acked
	acked     uint64
	idleSince atomic.Int64
}

// start takes the consumer's position as a new leader opened it: every
// record after its acknowledgement floor is handed on, those a previous
// leader was delivered and did not acknowledge included.
func (p *busProgress) start(info *jetstream.ConsumerInfo) {
	if info != nil {
		p.mu.Lock()
		p.acked = info.AckFloor.Stream
		p.mu.Unlock()
	}
	p.idleSince.Store(time.Now().UnixNano())
}

// hand reports whether seq is to be handed on, noting it: false when it
// was already (JetStream delivers a record again when its ack wait
// passes, and its evaluation is under way) or is acknowledged. A record
// never handed is handed whatever its order (one delivered to a pull
// request nobody reads any more comes again after the ack wait).
func (p *busProgress) hand(seq uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq <= p.acked {
		return false
	}
	i, found := slices.BinarySearch(p.handed, seq)
	if found {
		return false
	}
	p.handed = slices.Insert(p.handed, i, seq)
	return true
}

// ack records that seq and every record before it are acknowledged.
func (p *busProgress) ack(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acked = max(p.acked, seq)
	n := 0
	for n < len(p.handed) && p.handed[n] <= p.acked {
		n++
	}
	p.handed = p.handed[n:]
}

// position is the highest sequence handed (every one up to the floor is,
// or was acknowledged before) and the acknowledgement floor.
func (p *busProgress) position() (delivered, acked uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.handed); n > 0 {
		return p.handed[n-1], p.acked
	}
	return p.acked, p.acked
}

// remake deletes the stalled consumer and makes it again from the record
// after the last one delivered, once every delivered record is
// acknowledged (so no acknowledgement meant for the old consumer is
// pending and nothing is delivered twice); false when ctx ended first.
func (b *Bus) remake(ctx context.Context, p *busProgress) bool {
	b.stalls.Inc()
	b.stallTotal.Add(1)
	delivered, acked := p.position()
	b.log.Warn("observation bus: the evaluator's consumer delivered nothing while the stream holds records for it; making it again",
		"silent_for", b.stallAfter, "last_delivered", delivered, "acknowledged", acked)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; acked < delivered; delivered, acked = p.position() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	b.resumeFrom = delivered + 1
	return true
}

// consume delivers cons's records to handle until ctx is done, the
// consumer stops delivering (its iterator closed) or it stalls.
func (b *Bus) consume(ctx context.Context, cons jetstream.Consumer, p *busProgress, handle func(node string, seq uint64, data []byte, ack func())) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(busBatch))
	if err != nil {
		return fmt.Errorf("observation bus: consuming: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var stalled atomic.Bool
	watch, unwatch := context.WithCancel(ctx)
	defer unwatch()
	go b.watch(watch, p, func() { stalled.Store(true); it.Stop() })
	for {
		msg, err := it.Next()
		switch {
		case ctx.Err() != nil:
			return nil
		case stalled.Load():
			return errBusStalled
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return err
		case err != nil:
			b.log.Debug("observation bus: consumer", "err", err) // missed heartbeats: the iterator pulls again
			continue
		}
		meta, err := msg.Metadata()
		if err != nil {
			b.log.Warn("observation bus: a delivery without its sequence; skipped, acknowledged with the next", "err", err)
			continue
		}
		seq := meta.Sequence.Stream
		if !p.hand(seq) {
			// Delivered again (not acknowledged within the ack wait): its
			// evaluation is under way; its acknowledgement follows.
			b.redelivered.Inc()
			b.redeliveredTotal.Add(1)
			continue
		}
		p.idleSince.Store(0)
		b.consumed.Inc()
		handle(strings.TrimPrefix(msg.Subject(), BusSubjectPrefix), seq, msg.Data(), func() {
			_ = msg.Ack()
			p.ack(seq)
		})
		p.idleSince.Store(time.Now().UnixNano())
	}
}

// watch calls stalled once, and returns, when the consumer has delivered
// nothing for stallAfter, handle is not running, fewer records than the
// consumer's bound wait for acknowledgement, and the stream holds records
// after the last one delivered.
func (b *Bus) watch(ctx context.Context, p *busProgress, stalled func()) {
	tick := time.NewTicker(b.stallAfter / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		idle := p.idleSince.Load()
		delivered, acked := p.position()
		if idle == 0 || time.Since(time.Unix(0, idle)) < b.stallAfter || delivered-acked >= busMaxAckPending {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, statusTimeout)
		info, err := b.stream.Info(ictx)
		cancel()
		if err != nil {
			b.log.Debug("observation bus: reading the stream to check its consumer", "err", err)
			continue // no stream leader: no consumer delivers now
		}
		if info.State.Msgs > 0 && info.State.LastSeq > delivered {
			stalled()
			return
		}
	}
}

// open opens the evaluator's consumer, trying again while JetStream does
// not answer (a stream leader being elected), until ctx is done (nil).
// first: a new leader's first opening, which takes over what the previous
// leader left unacknowledged.
func (b *Bus) open(ctx context.Context, first bool) (jetstream.Consumer, *jetstream.ConsumerInfo) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, busOpenTimeout)
		cons, info, err := b.evaluator(cctx, first)
		cancel()
		if err == nil {
			return cons, info
		}
		b.log.Warn("observation bus: opening the evaluator's consumer, trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
	}
}

// evaluator opens the leader's durable consumer, with its position. At a
// leader's first opening (first), when a previous leader left records
// delivered and not acknowledged (it was killed or cut off mid-work), the
// consumer is reset to deliver, in order, every record after the last one
// acknowledged (acknowledgements are cumulative): waiting for them to be
// delivered again one by one, after the ack wait, would hand them over
// behind newer ones (a linkDown after the linkUp that followed it).
// JetStream's reset keeps the consumer and its replicas (a consumer made
// anew waits for its own leader election: seconds); a server without it
// (an older NATS through store.nats_url) has the consumer deleted and made
// again from there, as a stalled one is (resumeFrom).
func (b *Bus) evaluator(ctx context.Context, first bool) (jetstream.Consumer, *jetstream.ConsumerInfo, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       busConsumer,
		Description:   "the leader's rule evaluation",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       busAckWait,
		MaxAckPending: busMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      b.st.replicas,
	}
	if b.resumeFrom == 0 {
		c, err := b.stream.Consumer(ctx, busConsumer)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			c, err := b.stream.CreateOrUpdateConsumer(ctx, cfg)
			if err != nil {
				return nil, nil, err
			}
			return c, c.CachedInfo(), nil
		case err != nil:
			return nil, nil, err
		}
		info := c.CachedInfo()
		if !first || info.NumAckPending == 0 {
			return c, info, nil
		}
		b.log.Info("observation bus: the previous leader left records unacknowledged; delivering again, in order, from the first of them",
			"unacknowledged", info.NumAckPending, "from_sequence", info.AckFloor.Stream+1)
		if info.NumWaiting == 0 {
			// A pull request still waiting (this node's from an earlier
			// term) would take the first records a reset delivers, and
			// they would come again only after the ack wait: made again
			// then, which drops such requests.
			reset, err := b.js.ResetConsumer(ctx, BusStream, busConsumer)
			if err == nil {
				return c, reset.ConsumerInfo, nil
			}
			if ctx.Err() != nil {
				return nil, nil, err // no answer: asked again
			}
			b.log.Info("observation bus: the consumer could not be reset; making it again", "err", err)
		}
		b.resumeFrom = info.AckFloor.Stream + 1
	}
	// Made again from resumeFrom: deleted first (again, if an earlier try
	// deleted it and failed to make it).
	if err := b.stream.DeleteConsumer(ctx, busConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil, err
	}
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, b.resumeFrom
	c, err := b.stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	b.resumeFrom = 0
	return c, c.CachedInfo(), nil
}

// State is the bus now: its records, the leader's backlog, and the
// duplicates this node's publications met.
func (b *Bus) State(ctx context.Context) BusState {
	bs := BusState{Stream: BusStream, DuplicatesDropped: b.dupTotal.Load(), DuplicateWindow: BusDuplicateWindow.String(),
		ConsumerStalls: b.stallTotal.Load(), PublishFailures: b.failTotal.Load(), Redelivered: b.redeliveredTotal.Load()}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		bs.Error = "reading stream " + BusStream + ": " + err.Error()
		return bs
	}
	bs.Messages = info.State.Msgs
	ci, err := b.stream.Consumer(ctx, busConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		bs.Pending = info.State.Msgs // no leader has consumed yet
		return bs
	}
	if err == nil {
		var inf *jetstream.ConsumerInfo
		if inf, err = ci.Info(ctx); err == nil {
			bs.Pending, bs.AckPending, bs.Acknowledged = inf.NumPending, inf.NumAckPending, inf.AckFloor.Stream
			return bs
		}
	}
	bs.Error = "reading the evaluator's consumer: " + err.Error()
	return bs
}
