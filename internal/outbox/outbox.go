// Package outbox is nocbridge's durable delivery queue and the only place
// that retries (SPEC 6).
//
// Every notification is written to a durable log of the store (store.Log:
// file storage, fsynced) before Enqueue returns and stays there until the
// receiver accepted it or it moved to the dead-letter log. The in-memory
// index is authoritative while the process runs and is rebuilt from the log
// at start, so a kill -9 at any moment loses nothing: what was not yet
// recorded as delivered is sent again, with the same webhook-id.
//
// The queue log holds records, each a few JSON lines: "item" lines add
// notifications, "done" lines mark earlier ones delivered (or dead-lettered).
// Concurrent writers share one record per fsync (group commit), and the
// log is trimmed from its head once nothing before a point is pending. A
// notification that pins the head for long (a destination down for hours) is
// copied forward, so the log does not grow behind it.
//
// Delivery is ordered per (destination, alert instance): a lane holds that
// alert's notifications in enqueue order and only its head is attempted, so
// a resolve never overtakes its active. Lanes run in parallel, bounded per
// destination, so a slow or dead destination never holds up another.
//
// Backoff belongs to the destination (SPEC 6, health.go): while it fails as
// a whole, its lanes wait and only its oldest notification is tried, every
// retry.probe_interval; once one is delivered, all of them are due at once.
//
// A chat destination's digest (SPEC 11.5, digest.go) is a lane state too:
// past its budget per window, a lane is parked, and at the window's end the
// parked lanes' notifications go as one message, retried and dead-lettered
// like one notification.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/schedule"
	"github.com/nocbridge/nocbridge/internal/store"
)

// ErrNotFound is returned (wrapped) by Replay for an unknown dead letter.
var ErrNotFound = errors.New("no such dead letter")

// Item is one event addressed to one destination. Its webhook-id is
// Event.NotificationID(Destination).
type Item struct {
	Destination string
	Event       event.Event
}

// RetryPolicy is a destination's `retry` block; zero fields take the SPEC 3
// defaults (1s, 5m, 24h, 5s). Initial and Max bound the backoff of one
// notification that fails while its destination works (and Max how long one
// notification stays the probe of a failing destination while others wait);
// ProbeInterval spaces the probes of a failing destination (health.go).
type RetryPolicy struct {
	Initial, Max, MaxAge, ProbeInterval time.Duration
}

// Destination is one configured destination as the outbox delivers to it.
type Destination struct {
	Name     string
	Notifier notify.Notifier
	Retry    RetryPolicy
	// RateLimit is notifications per second; 0 is unlimited.
	RateLimit float64
	// Timeout bounds one attempt; 0 is notify.DefaultTimeout.
	Timeout time.Duration
	// Digest folds what goes past its policy's budget into one message
	// (SPEC 11.5, digest.go); nil sends every notification on its own.
	// notify.DigesterOf fills it from the notifier.
	Digest notify.Digester
}

// Options configure New.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the outbox metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Clock is real time when nil.
	Clock Clock
	// History takes every attempt, digest, dead letter and replay (nil:
	// none).
	History history.Recorder
}

// DeadLetter is a notification that was given up on, with why.
type DeadLetter struct {
	ID          string      `json:"id"`
	Destination string      `json:"destination"`
	Reason      string      `json:"reason"`
	Status      int         `json:"status,omitempty"` // HTTP status of the last attempt, if any
	Attempts    int         `json:"attempts"`
	EnqueuedAt  time.Time   `json:"enqueued_at"`
	DeadAt      time.Time   `json:"dead_at"`
	Event       event.Event `json:"event"`
}

// Attempt is one delivery attempt, as /api/v1/deliveries shows it.
type Attempt struct {
	ID          string        `json:"id"` // webhook-id
	Destination string        `json:"destination"`
	InstanceID  string        `json:"instance_id"`
	EventID     string        `json:"event_id"`
	Status      event.Status  `json:"status"` // active | resolved
	Attempt     int           `json:"attempt"`
	At          time.Time     `json:"at"`
	Duration    time.Duration `json:"duration"`
	// HTTPStatus is the receiver's answer (0: none came).
	HTTPStatus int    `json:"http_status,omitempty"`
	Result     string `json:"result"` // delivered | retry | dead | already_delivered
	Error      string `json:"error,omitempty"`
	// Notifications is how many a digest carried; 0 for one notification,
	// whose instance, event and status the fields above give.
	Notifications int `json:"notifications,omitempty"`
	// Probe marks the one attempt of a failing destination (health.go).
	Probe bool `json:"probe,omitempty"`
}

// MarshalJSON writes the duration as text ("1.2ms"), not nanoseconds.
func (a Attempt) MarshalJSON() ([]byte, error) {
	type plain Attempt
	return json.Marshal(struct {
		plain
		Duration string `json:"duration"`
	}{plain(a), a.Duration.String()})
}

// Attempt results.
const (
	ResultDelivered = "delivered"
	ResultRetry     = "retry"
	ResultDead      = "dead"
	// ResultAlreadyDelivered: handed over again (after a failover) when
	// this outbox knows it was delivered; not sent, no request made.
	ResultAlreadyDelivered = "already_delivered"
)

const (
	// maxInFlight bounds concurrent attempts per destination.
	maxInFlight = 32
	// recentPerDestination is how many attempts Recent keeps.
	recentPerDestination = 50
	// storeTimeout bounds one write to the store when no caller context
	// applies (recording a delivery, a dead letter).
	storeTimeout = 30 * time.Second
)

// Outbox delivers items durably. Enqueue may be called before and after Run.
type Outbox struct {
	log     *slog.Logger
	hist    history.Recorder
	clock   Clock
	queue   *store.Log // notifications and their completions (journal.go)
	dead    *store.Log // dead letters, one per webhook-id (deadletter.go)
	metrics *metrics
	// randN draws the jitter: rand.Int64N, fixed in tests.
	randN func(int64) int64
	// relocateLag is how many records may pile up behind a pending item
	// before it is copied forward to unpin the log's head.
	relocateLag uint64

	// jmu guards the group commit queue (journal.go).
	jmu       sync.Mutex
	jqueue    []*entry
	flushIdle chan struct{} // non-nil while a flusher runs; closed when it ends

	mu         sync.Mutex
	configured bool // SetDestinations was called: unknown destinations are really unknown
	running    bool
	dests      map[string]*destState
	byID       map[string]*item               // pending and being-stored items
	timers     schedule.Queue[schedule.Timed] // lanes waiting for their next attempt, digests for theirs (digest.go)
	wake       chan struct{}
	deadIdx    map[string]deadRef // dead letters by id
	deadCount  map[string]int     // per destination
	deadActive map[string]string  // dead-lettered actives: destination + instance → webhook-id
	purgedTo   uint64             // queue sequences below this are gone
	lastPurge  time.Time
	lastSeq    uint64     // last sequence written to the queue log
	segs       []*segment // queue records holding pending items, oldest first
	segsByNum  map[uint64]*segment
	// done remembers the notifications recently completed (delivered or
	// dead-lettered; the last doneKept, for doneFor), and those the log
	// still shows completed at a rebuild: Enqueue skips a delivered one
	// handed over again (the alert manager re-dispatches a transition its
	// stored state still calls unsent, after a restart or a cluster's
	// change of leader).
	done     map[string]time.Time
	doneRing []string // ids in completion order; the oldest is overwritten
	doneNext int
}

// destState is one destination: its config (nil once removed by a reload),
// its lanes and what the API shows about it.
type destState struct {
	name     string
	cfg      *Destination
	limiter  *rate.Limiter
	log      *slog.Logger
	lanes    map[string]*lane // by alert instance
	ready    []*lane          // due, waiting for a free slot
	inflight int
	pending  int
	recent   []Attempt // ring buffer; the next write goes to recentN
	recentN  int
	health   health // failing as a whole, and its probe (health.go)

	// Digests (digest.go), while cfg.Digest is set.
	policy  notify.DigestPolicy
	window  time.Time // when the current digest window ends
	singles int       // notifications sent one by one in it
	parking *digest   // collects the lanes parked in it
	digests []*digest // collecting or taken, not yet concluded
}

// New opens (or creates) the outbox logs and rebuilds the index from them.
func New(ctx context.Context, st *store.Store, opts Options) (*Outbox, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	if opts.History == nil {
		opts.History = history.Discard
	}
	o := &Outbox{
		log:         log,
		hist:        opts.History,
		clock:       clock,
		randN:       rand.Int64N,
		relocateLag: defaultRelocateLag,
		dests:       map[string]*destState{},
		byID:        map[string]*item{},
		wake:        make(chan struct{}, 1),
		deadIdx:     map[string]deadRef{},
		deadCount:   map[string]int{},
		deadActive:  map[string]string{},
		segsByNum:   map[uint64]*segment{},
		done:        map[string]time.Time{},
		doneRing:    make([]string, doneKept),
	}
	var err error
	o.queue, err = st.Log(ctx, store.LogConfig{
		Name:        queueLog,
		Description: "nocbridge outbox: notifications not yet delivered",
		Subjects:    []string{queueSubject},
	})
	if err != nil {
		return nil, fmt.Errorf("outbox log: %w", err)
	}
	o.dead, err = st.Log(ctx, store.LogConfig{
		Name:          deadLog,
		Description:   "nocbridge dead letters: notifications given up on, replayable",
		Subjects:      []string{deadSubjectPrefix + ">"},
		OnePerSubject: true, // one dead letter per webhook-id
	})
	if err != nil {
		return nil, fmt.Errorf("dead-letter log: %w", err)
	}
	if err := o.rebuild(ctx); err != nil {
		return nil, err
	}
	if err := o.loadDeadLetters(ctx); err != nil {
		return nil, err
	}
	o.metrics = newMetrics(o)
	if opts.Registerer != nil {
		if err := o.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("outbox metrics: %w", err)
		}
	}
	return o, nil
}

// SetDestinations swaps the destination set atomically (config reload).
// Items for a destination that is gone are dead-lettered when their turn
// comes; in-flight attempts finish on the notifier they started with.
func (o *Outbox) SetDestinations(ds []Destination) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		d := withDefaults(d)
		seen[d.Name] = true
		st := o.destLocked(d.Name)
		if st.cfg == nil || st.cfg.RateLimit != d.RateLimit {
			st.limiter = newLimiter(d.RateLimit)
		}
		st.cfg = &d
		if d.Digest != nil {
			st.policy = d.Digest.DigestPolicy()
		} else {
			o.releaseDigestsLocked(st)
		}
	}
	for name, st := range o.dests {
		if !seen[name] {
			// Its queue goes to the dead letters now, not at max_age.
			o.endFailingLocked(st)
			st.cfg, st.limiter = nil, nil
			o.releaseDigestsLocked(st)
			o.dropIfIdleLocked(st)
		}
	}
	o.configured = true
	o.poke()
}

func withDefaults(d Destination) Destination {
	if d.Retry.Initial <= 0 {
		d.Retry.Initial = time.Second
	}
	if d.Retry.Max <= 0 {
		d.Retry.Max = 5 * time.Minute
	}
	if d.Retry.Max < d.Retry.Initial {
		d.Retry.Max = d.Retry.Initial
	}
	if d.Retry.MaxAge <= 0 {
		d.Retry.MaxAge = 24 * time.Hour
	}
	if d.Retry.ProbeInterval <= 0 {
		d.Retry.ProbeInterval = 5 * time.Second
	}
	if d.Timeout <= 0 {
		d.Timeout = notify.DefaultTimeout
	}
	return d
}

func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	// A burst of one second's worth lets a quiet destination take a short
	// flurry at once while holding the average.
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))
}

func (o *Outbox) destLocked(name string) *destState {
	st := o.dests[name]
	if st == nil {
		st = &destState{name: name, log: o.log.With("destination", name), lanes: map[string]*lane{}}
		st.health.st = st
		o.dests[name] = st
	}
	return st
}

// dropIfIdleLocked forgets a removed destination once nothing refers to it.
func (o *Outbox) dropIfIdleLocked(st *destState) {
	if st.cfg == nil && len(st.lanes) == 0 && st.inflight == 0 {
		delete(o.dests, st.name)
	}
}

// Enqueue stores the items durably and returns once all of them are on
// disk. An item whose webhook-id is already pending is skipped: the alert
// manager re-dispatches a transition it cannot prove was stored.
func (o *Outbox) Enqueue(ctx context.Context, items ...Item) error {
	news := make([]*item, 0, len(items))
	now := o.clock.Now()
	for _, in := range items {
		if in.Destination == "" {
			return fmt.Errorf("outbox: item for event %s (instance %s) has no destination", in.Event.EventID, in.Event.InstanceID)
		}
		news = append(news, &item{
			id:         in.Event.NotificationID(in.Destination),
			dest:       in.Destination,
			ev:         in.Event,
			enqueuedAt: now,
		})
	}
	if err := o.enqueue(ctx, news); err != nil {
		return fmt.Errorf("outbox: storing %d notification(s): %w", len(items), err)
	}
	return nil
}

// Pending counts, per destination, the notifications not yet delivered.
func (o *Outbox) Pending() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]int, len(o.dests))
	for name, st := range o.dests {
		if st.cfg != nil || st.pending > 0 {
			out[name] = st.pending
		}
	}
	return out
}

// Recent returns the destination's last attempts, newest first.
func (o *Outbox) Recent(destination string) []Attempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.dests[destination]
	if st == nil {
		return []Attempt{}
	}
	n := len(st.recent)
	out := make([]Attempt, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, st.recent[(st.recentN-i+n)%n])
	}
	return out
}

func (st *destState) record(a Attempt) {
	if len(st.recent) < recentPerDestination {
		st.recent = append(st.recent, a)
		st.recentN = len(st.recent) % recentPerDestination
		return
	}
	st.recent[st.recentN] = a
	st.recentN = (st.recentN + 1) % recentPerDestination
}

// poke wakes Run's scheduler without blocking.
func (o *Outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}
