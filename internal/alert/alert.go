// Package alert owns the alert state machine (inactive → pending → firing →
// resolved) per (rule, device, key) and its persistence, so a restart neither
// re-fires nor forgets an alert.
//
// Crash safety: a transition is first written to the store together with the
// event it produces ("unsent"), then handed to the dispatcher (routing and the
// durable outbox), then marked sent. After a crash between those steps the
// unsent event is dispatched again at start; it carries the same instance id
// and timestamp, so its webhook-id is the same and the outbox (and receivers)
// drop the duplicate.
//
// Throughput: while Run runs, observations queue and are applied in batches.
// A batch's transitions are stored in one journal write (journal.go), then
// dispatched concurrently, so that the outbox stores them in one group
// commit: an alert waits for two fsyncs shared by its batch, where it used
// to wait for three of its own plus those of every alert queued before it.
// The "sent" marks are written behind (behind.go). A batch holds at most one transition per
// instance, and the next batch starts only once the previous one is
// dispatched, which keeps each alert's notifications in order.
//
// Files: alert.go the types, New, SetRules and the reads; machine.go the
// state machine; commit.go the hand-over to the store and dispatcher;
// queue.go the intake and Run; journal.go and behind.go the store writes;
// metrics.go the active-alerts gauge.
package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// State of an alert instance.
type State string

const (
	StatePending State = "pending"
	StateFiring  State = "firing"
)

// Instance is one alert instance as persisted and as the API shows it.
type Instance struct {
	EventID string           `json:"event_id"`
	Device  inventory.Device `json:"device"`
	Key     string           `json:"key,omitempty"`
	// InstanceID is the id its notifications carry, chosen when it
	// became pending, so its history starts there.
	InstanceID string       `json:"instance_id,omitempty"`
	State      State        `json:"state"`
	Since      time.Time    `json:"since"`              // condition first held
	ActiveAt   time.Time    `json:"active_at,omitzero"` // fired
	Clearing   time.Time    `json:"clearing,omitzero"`  // clear condition first held
	Value      any          `json:"value,omitempty"`    // last value of the tested metric
	Event      *event.Event `json:"event,omitempty"`    // the active event as notified
	// ResolveTo are the destinations the active went to whose subscription
	// wants resolves: the resolve goes there whatever config says by then.
	ResolveTo []string `json:"resolve_to,omitempty"`
	// Unsent is a transition stored but not yet accepted by the outbox.
	Unsent *event.Event `json:"unsent,omitempty"`
	// ResolveAfter is a resolve that came while the active was still
	// unsent (a store outage): it goes once the active has gone, so a
	// receiver never gets a resolve for an alert it was not told of.
	ResolveAfter *event.Event `json:"resolve_after,omitempty"`
	// BusSeq is the cluster bus sequence of the last trap applied to it
	// (0 alone): see applied.
	BusSeq uint64 `json:"bus_seq,omitempty"`

	// unstored: Unsent did not reach the store either; a stop now loses it.
	unstored bool
}

// Dispatcher hands transitions on: noise control, then routing and the
// outbox (event.Dispatcher).
type Dispatcher = event.Dispatcher

// Store persists instances (a store.Bucket). Values are opaque JSON.
type Store = store.Records

// Options configure a Manager.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// History takes each transition once it is handed on (nil: none).
	History history.Recorder
}

// Manager runs the state machine. Observe may be called from any goroutine.
type Manager struct {
	store      Store
	dispatcher Dispatcher
	history    history.Recorder
	log        *slog.Logger
	now        func() time.Time

	mu        sync.Mutex
	instances map[string]*Instance
	set       *rules.Set
	inv       *inventory.Inventory
	wake      chan struct{}
	// planned is the deadline Run's timer waits for (zero: none), guarded
	// by mu; see wakeFor.
	planned time.Time
	ticks   atomic.Int64 // deadline scans run: wakeFor keeps this low under load
	// unsentRetry is when transitions that failed to be stored or handed
	// to the outbox are tried again (zero: none waiting). Guarded by mu.
	unsentRetry time.Time
	// failedEvents are one-shot events the outbox refused: they have no
	// stored instance, so they wait here (bounded) for the same retry.
	failedEvents []*transition
	// staged are the transitions applied in memory and not yet committed.
	staged []*transition
	// rev numbers the committed batches; stored records carry it.
	rev uint64

	q intake // hands observations from Observe to Run (queue.go)

	// tombs are resolved trap alerts of a cluster, by key: the bus
	// sequence of the trap that resolved them, kept (and stored) for
	// tombKeep so that a new leader given that trap, or the one that
	// raised the alert, again does not raise it a second time (replay.go).
	tombs     map[string]tomb
	lastSweep time.Time
	replayed  atomic.Uint64

	behind *writeBehind
	faults *rules.Faults // rules' run-time errors, counted and logged

	activeDesc   *prometheus.Desc
	unsentDesc   *prometheus.Desc
	droppedDesc  *prometheus.Desc
	replayedDesc *prometheus.Desc
	dropped      atomic.Uint64 // one-shot events dropped past maxFailedEvents
}

const (
	// storeTimeout bounds a written-behind store write, which no caller's
	// context covers, and the work Run finishes after it is stopped.
	storeTimeout = 30 * time.Second
	// maxBatch bounds the observations applied in one batch, and the inbox.
	maxBatch = 1024
	// maxConcurrentDispatches bounds the transitions dispatched at once,
	// so a restart with many unsent transitions does not flood the outbox.
	maxConcurrentDispatches = 256
)

// transition is a state change applied in memory, waiting to be stored
// with its event as unsent and handed to the dispatcher.
type transition struct {
	k  string
	in *Instance // nil for a one-shot event, which is not stored
	ev event.Event
	// resolveTo is where a resolve goes: the active's destinations.
	resolveTo []string

	record  []byte   // the instance as journaled
	targets []string // the dispatcher's answer
	err     error
}

// New loads the persisted instances.
func New(ctx context.Context, store Store, d Dispatcher, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.History == nil {
		opts.History = history.Discard
	}
	m := &Manager{
		store: store, dispatcher: d, history: opts.History, log: opts.Logger, now: opts.Now,
		instances: map[string]*Instance{}, tombs: map[string]tomb{}, wake: make(chan struct{}, 1),
		q: intake{ch: make(chan observation.Observation, maxBatch), left: make(chan struct{}, 1)},
		activeDesc: prometheus.NewDesc("nocbridge_alerts_active",
			"Alert instances currently firing, by event id.", []string{"event_id"}, nil),
		unsentDesc: prometheus.NewDesc("nocbridge_alert_transitions_unsent",
			"Alert transitions and one-shot events not yet handed to the outbox (held in memory while the store cannot write); stored: whether they reached the store.",
			[]string{"stored"}, nil),
		droppedDesc: prometheus.NewDesc("nocbridge_alert_events_dropped_total",
			"One-shot events dropped because too many were waiting for the store (oldest first).", nil, nil),
		replayedDesc: prometheus.NewDesc("nocbridge_alert_traps_replayed_total",
			"Traps a cluster's new leader got again from the bus that an alert had already taken (the previous leader committed them): not applied twice.", nil, nil),
	}
	m.behind = newWriteBehind(store, m.log)
	var err error
	if m.faults, err = rules.NewFaults(m.log, opts.Registerer); err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(activeCollector{m}); err != nil {
			return nil, fmt.Errorf("alert metrics: %w", err)
		}
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// load makes the instances those the store holds. The caller holds m.mu,
// or is New.
func (m *Manager) load(ctx context.Context) error {
	stored, err := m.store.All(ctx)
	if err != nil {
		return fmt.Errorf("loading alert state: %w", err)
	}
	st := mergeStored(stored)
	for _, err := range st.bad {
		// A corrupt record must not stop the daemon; it is dropped loudly.
		m.log.Error("dropping unreadable alert state", "err", err)
	}
	m.instances, m.rev, m.tombs = st.instances, st.rev, st.tombs
	// Move what only the journal holds to the instances' own keys, then
	// retire the journal entries, in that order.
	for k, r := range st.fromJournal {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding alert state: %w", err)
		}
		m.behind.put(k, b, r.EventID, r.Device.Name)
	}
	for _, k := range st.journals {
		m.behind.put(k, nil, "", "")
	}
	return nil
}

// Resync makes the in-memory state what the store holds now — what another
// node wrote while it led the cluster — and then, as SetRules does at
// start, resolves what the rules or inventory no longer have and hands on
// what was stored but not sent. A cluster's new leader calls it before Run;
// never while Run runs. One-shot events this manager could not hand on
// (kept in memory only) stay and are retried.
func (m *Manager) Resync(ctx context.Context) error {
	m.q.mu.Lock()
	running := m.q.running
	m.q.mu.Unlock()
	if running {
		return errors.New("alert manager: Resync while running")
	}
	m.behind.drain() // this node's own last writes first
	m.behind.rearm()
	m.mu.Lock()
	m.staged, m.planned, m.unsentRetry = nil, time.Time{}, time.Time{}
	err := m.load(ctx)
	set, inv := m.set, m.inv
	m.mu.Unlock()
	if err != nil || set == nil {
		return err
	}
	return m.SetRules(ctx, set, inv)
}

func instanceKey(eventID, device, key string) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + device + "\x00" + key))
	return "a_" + hex.EncodeToString(h[:16])
}

// SetRules installs the rule set and inventory (at start and on reload) and
// resolves firing instances whose rule or device no longer exists: nothing
// will observe them again, and their resolve must not be lost. An unknown
// trap sender's alert stays while the inventory accepts the sender. It also
// dispatches events that were stored but not handed to the outbox before a
// crash.
func (m *Manager) SetRules(ctx context.Context, set *rules.Set, inv *inventory.Inventory) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set, m.inv = set, inv
	var errs []error
	for _, k := range m.sortedKeys() {
		in := m.instances[k]
		if in.Unsent != nil {
			m.stage(k, in, *in.Unsent)
			continue
		}
		r := set.ByEventID(in.EventID)
		d, ok := inv.Current(in.Device)
		if !ok && r != nil && r.Source == observation.Trap {
			// An unknown sender's: its clear trap or traps.unknown_expire
			// resolves it (tick).
			_, ok = inv.Unknown(in.Device)
			d = &in.Device
		}
		if r != nil && ok && d.In(r.Match) {
			continue
		}
		if in.State == StatePending {
			m.notePending(in, r, "its rule or device was removed while pending: it never fired", m.now())
			m.forget(k)
			continue
		}
		m.log.Info("resolving alert whose rule or device was removed", "event_id", in.EventID, "device", in.Device.Name, "key", in.Key)
		if err := m.resolve(k, in, m.now()); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, m.commit(ctx))
	m.poke()
	return errors.Join(errs...)
}

func (m *Manager) sortedKeys() []string {
	keys := make([]string, 0, len(m.instances))
	for k := range m.instances {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Instances returns a snapshot for the API, firing first.
func (m *Manager) Instances() []Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Instance, 0, len(m.instances))
	for _, k := range m.sortedKeys() {
		out = append(out, *m.instances[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].State == StateFiring && out[j].State != StateFiring })
	return out
}

// RetryUnsent hands the transitions the store or the outbox refused over
// again now, rather than at the next periodic retry: the store writes again.
func (m *Manager) RetryUnsent() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unsentRetry.IsZero() {
		return
	}
	m.unsentRetry = m.now()
	m.poke()
}

// Unsent counts the transitions not yet handed to the outbox, and among
// them those that did not reach the store either (lost if nocbridge stops).
func (m *Manager) Unsent() (unsent, unstored int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unsentLocked()
}

func (m *Manager) unsentLocked() (unsent, unstored int) {
	for _, in := range m.instances {
		if in.Unsent != nil {
			unsent++
			if in.unstored {
				unstored++
			}
		}
	}
	return unsent + len(m.failedEvents), unstored + len(m.failedEvents)
}

// ByInstanceID finds a firing instance by its event instance id.
func (m *Manager) ByInstanceID(id string) (Instance, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range m.instances {
		if in.Event != nil && in.Event.InstanceID == id {
			return *in, true
		}
	}
	return Instance{}, false
}
