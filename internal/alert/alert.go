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

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
)

// State of an alert instance.
type State string

const (
	StatePending State = "pending"
	StateFiring  State = "firing"
)

// Instance is one alert instance as persisted and as the API shows it.
type Instance struct {
	EventID  string           `json:"event_id"`
	Device   inventory.Device `json:"device"`
	Key      string           `json:"key,omitempty"`
	State    State            `json:"state"`
	Since    time.Time        `json:"since"`              // condition first held
	ActiveAt time.Time        `json:"active_at,omitzero"` // fired
	Clearing time.Time        `json:"clearing,omitzero"`  // clear condition first held
	Value    any              `json:"value,omitempty"`    // last value of the tested metric
	Event    *event.Event     `json:"event,omitempty"`    // the active event as notified
	// ResolveTo are the destinations the active went to whose subscription
	// wants resolves: the resolve goes there whatever config says by then.
	ResolveTo []string `json:"resolve_to,omitempty"`
	// Unsent is a transition stored but not yet accepted by the outbox.
	Unsent *event.Event `json:"unsent,omitempty"`
}

// Dispatcher routes an event and stores it durably in the outbox. For an
// active event it returns the destinations a resolve must go to; for a
// resolved event it sends to resolveTo.
type Dispatcher interface {
	Dispatch(ctx context.Context, ev event.Event, resolveTo []string) ([]string, error)
}

// Store persists instances. Values are opaque JSON.
type Store interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	All(ctx context.Context) (map[string][]byte, error)
}

// Options configure a Manager.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Manager runs the state machine. Observe may be called from any goroutine.
type Manager struct {
	store      Store
	dispatcher Dispatcher
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

	// While Run runs, Observe hands observations to it through inbox;
	// senders counts the Observe calls doing so, which Run waits out
	// (senderLeft) before it returns. Run holds drainMu while it applies
	// what was queued before it stopped, and an Observe applying its
	// observation itself takes it too, so it cannot overtake them.
	qmu        sync.Mutex
	running    bool
	senders    int
	inbox      chan observation.Observation
	senderLeft chan struct{}
	drainMu    sync.Mutex

	behind *writeBehind

	activeDesc *prometheus.Desc
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
	m := &Manager{
		store: store, dispatcher: d, log: opts.Logger, now: opts.Now,
		instances: map[string]*Instance{}, wake: make(chan struct{}, 1),
		inbox: make(chan observation.Observation, maxBatch), senderLeft: make(chan struct{}, 1),
		activeDesc: prometheus.NewDesc("nocbridge_alerts_active",
			"Alert instances currently firing, by event id.", []string{"event_id"}, nil),
	}
	m.behind = newWriteBehind(store, m.log)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(activeCollector{m}); err != nil {
			return nil, fmt.Errorf("alert metrics: %w", err)
		}
	}
	stored, err := store.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading alert state: %w", err)
	}
	st := mergeStored(stored)
	for _, err := range st.bad {
		// A corrupt record must not stop the daemon; it is dropped loudly.
		m.log.Error("dropping unreadable alert state", "err", err)
	}
	m.instances, m.rev = st.instances, st.rev
	// Move what only the journal holds to the instances' own keys, then
	// retire the journal entries, in that order.
	for k, r := range st.fromJournal {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encoding alert state: %w", err)
		}
		m.behind.put(k, b, r.EventID, r.Device.Name)
	}
	for _, k := range st.journals {
		m.behind.put(k, nil, "", "")
	}
	return m, nil
}

func instanceKey(eventID, device, key string) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + device + "\x00" + key))
	return "a_" + hex.EncodeToString(h[:16])
}

// SetRules installs the rule set and inventory (at start and on reload) and
// resolves firing instances whose rule or device no longer exists: nothing
// will observe them again, and their resolve must not be lost. It also
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
		if d, ok := inv.Device(in.Device.Name); r != nil && ok && r.Match.Matches(d) {
			continue
		}
		if in.State == StatePending {
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

// Observe evaluates an observation and applies the resulting transitions.
// While Run runs, it queues the observation for Run (waiting while the
// queue is full) and returns; Run logs what fails, and a transition that
// could not be dispatched stays unsent in the store. Otherwise Observe
// applies it at once and returns the failure.
func (m *Manager) Observe(ctx context.Context, obs observation.Observation) error {
	m.qmu.Lock()
	if !m.running {
		m.qmu.Unlock()
		m.drainMu.Lock()
		defer m.drainMu.Unlock()
		_, err := m.observe(ctx, []observation.Observation{obs})
		return err
	}
	m.senders++
	m.qmu.Unlock()
	defer func() {
		m.qmu.Lock()
		m.senders--
		m.qmu.Unlock()
		select {
		case m.senderLeft <- struct{}{}:
		default:
		}
	}()
	select {
	case m.inbox <- obs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe applies observations in order and commits their transitions as
// one batch. It stops before an observation that concerns an instance
// already changed in this batch and returns it and the rest: their turn
// comes once this batch is dispatched. The first observation is always
// applied, so every call makes progress.
func (m *Manager) observe(ctx context.Context, batch []observation.Observation) (rest []observation.Observation, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := map[string]bool{}
	var errs []error
	for i, obs := range batch {
		conds, evalErrs := m.set.Evaluate(obs)
		keys := make([]string, len(conds))
		for j, c := range conds {
			keys[j] = instanceKey(c.Rule.EventID, c.Device.Name, c.Key)
			if i > 0 && changed[keys[j]] {
				rest = batch[i:]
				break
			}
		}
		if rest != nil {
			break // evaluated again, and its failures logged, in the next batch
		}
		for _, err := range evalErrs {
			m.log.Warn("rule evaluation failed", "err", err)
		}
		for j, c := range conds {
			staged := len(m.staged)
			if err := m.apply(keys[j], c); err != nil {
				m.log.Error("alert transition failed", "event_id", c.Rule.EventID, "device", c.Device.Name, "err", err)
				errs = append(errs, err)
			}
			if len(m.staged) > staged {
				changed[keys[j]] = true
			}
		}
	}
	errs = append(errs, m.commit(ctx))
	return rest, errors.Join(errs...)
}

func (m *Manager) apply(k string, c rules.Condition) error {
	r := c.Rule
	in := m.instances[k]
	switch {
	case r.Kind == event.KindEvent:
		if !c.Firing {
			return nil
		}
		ev, err := m.newEvent(r, c, uuid.NewString(), c.Time)
		if err != nil {
			return err
		}
		m.staged = append(m.staged, &transition{k: k, ev: ev})
		return nil
	case r.Source == observation.Trap:
		// Trap rules fire on the raising trap and resolve on the matching one.
		if c.Resolve && in != nil && in.State == StateFiring {
			return m.resolve(k, in, c.Time)
		}
		if c.Firing && in == nil {
			in = &Instance{EventID: r.EventID, Device: *c.Device, Key: c.Key, State: StatePending, Since: c.Time}
			m.instances[k] = in
			return m.fire(k, in, c, c.Time)
		}
		return nil
	}
	if in == nil {
		if !c.Firing {
			return nil
		}
		in = &Instance{EventID: r.EventID, Device: *c.Device, Key: c.Key, State: StatePending, Since: c.Time, Value: c.Value}
		m.instances[k] = in
	}
	in.Value = c.Value
	in.Device = *c.Device
	switch in.State {
	case StatePending:
		if !c.Firing {
			delete(m.instances, k)
			return nil
		}
		if c.Time.Sub(in.Since) >= r.For {
			return m.fire(k, in, c, c.Time)
		}
		m.wakeFor(in.Since.Add(r.For))
	case StateFiring:
		switch {
		case c.Clear && in.Clearing.IsZero():
			in.Clearing = c.Time
			if r.ClearFor == 0 {
				return m.resolve(k, in, c.Time)
			}
			m.wakeFor(in.Clearing.Add(r.ClearFor))
		case c.Clear && c.Time.Sub(in.Clearing) >= r.ClearFor:
			return m.resolve(k, in, c.Time)
		case !c.Clear:
			in.Clearing = time.Time{}
		}
	}
	return nil
}

func (m *Manager) newEvent(r *rules.Rule, c rules.Condition, instanceID string, at time.Time) (event.Event, error) {
	name, desc, err := r.Render(rules.TemplateData{Device: c.Device, Key: c.Key, Value: c.Value, Vars: c.Vars})
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{
		InstanceID: instanceID, EventID: r.EventID, Name: name, Description: desc,
		Category: r.Category, Domain: r.Domain, SubDomain: r.SubDomain, Severity: r.Severity,
		Source: string(r.Source), Timestamp: at.UTC(), Status: event.StatusActive, Kind: r.Kind,
		Device: *c.Device,
		Key:    c.Key,
	}, nil
}

func (m *Manager) fire(k string, in *Instance, c rules.Condition, at time.Time) error {
	ev, err := m.newEvent(c.Rule, c, uuid.NewString(), at)
	if err != nil {
		return err
	}
	in.State = StateFiring
	in.ActiveAt = at
	in.Clearing = time.Time{}
	in.Event = &ev
	m.log.Info("alert firing", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key, "instance_id", ev.InstanceID)
	m.stage(k, in, ev)
	return nil
}

func (m *Manager) resolve(k string, in *Instance, at time.Time) error {
	if in.Event == nil {
		m.forget(k)
		return nil
	}
	ev := *in.Event
	ev.Status = event.StatusResolved
	ev.Timestamp = at.UTC()
	m.log.Info("alert resolved", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key, "instance_id", ev.InstanceID)
	m.stage(k, in, ev)
	return nil
}

// stage records ev as the instance's unsent transition, to be stored and
// dispatched by the next commit.
func (m *Manager) stage(k string, in *Instance, ev event.Event) {
	in.Unsent = &ev
	t := &transition{k: k, in: in, ev: ev}
	if ev.Status == event.StatusResolved {
		t.resolveTo = in.ResolveTo
	}
	m.staged = append(m.staged, t)
}

// commit stores the staged transitions in one journal write, dispatches
// them concurrently, then queues the instances' own records and the
// journal's deletion behind. A transition that fails stays unsent, in the
// store if it got there: dispatched again at the next start or reload.
func (m *Manager) commit(ctx context.Context) error {
	ts := m.staged
	m.staged = nil
	if len(ts) == 0 {
		return nil
	}
	m.rev++
	rev := m.rev
	journal, err := m.save(ctx, rev, ts)
	for _, t := range ts {
		if t.in != nil && t.err == nil && err != nil {
			t.err = err
		}
	}
	m.dispatchAll(ctx, ts)

	var errs []error
	for _, t := range ts {
		if t.err != nil {
			if t.in == nil {
				m.keepFailedEvent(t)
			}
			if m.unsentRetry.IsZero() {
				m.unsentRetry = m.now().Add(unsentRetryInterval)
				m.poke() // Run plans its timer for the retry
			}
			m.log.Error("alert transition failed", "event_id", t.ev.EventID, "device", t.ev.Device.Name,
				"key", t.ev.Key, "status", t.ev.Status, "err", t.err)
			errs = append(errs, t.err)
			if t.record != nil && journal != nil {
				// Journaled, not dispatched: keep it unsent past the
				// journal entry's deletion.
				m.behind.put(t.k, t.record, t.in.EventID, t.in.Device.Name)
			}
			continue
		}
		if t.in == nil {
			continue // a one-shot event leaves no state
		}
		t.in.Unsent = nil
		if t.ev.Status == event.StatusResolved {
			if m.instances[t.k] == t.in {
				m.forget(t.k)
			}
			continue
		}
		t.in.ResolveTo = t.targets
		if err := m.persistBehind(t.k, t.in, rev); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range journal {
		m.behind.put(k, nil, "", "")
	}
	return errors.Join(errs...)
}

// save stores the transitions' instances, with their events unsent, in one
// store write: a journal entry (more if large), whose keys it returns. A
// lone transition goes straight to its instance's key instead, which spares
// the journal entry's deletion, unless a write of that key is still queued
// behind and could land after it. A transition whose instance cannot be
// encoded fails alone.
func (m *Manager) save(ctx context.Context, rev uint64, ts []*transition) ([]string, error) {
	records := map[string][]byte{}
	var lone *transition
	for _, t := range ts {
		if t.in == nil {
			continue
		}
		b, err := json.Marshal(record{Instance: *t.in, Rev: rev})
		if err != nil {
			t.err = fmt.Errorf("encoding alert state for %s on %s: %w", t.ev.EventID, t.ev.Device.Name, err)
			continue
		}
		t.record = b
		records[t.k] = b
		lone = t
	}
	switch {
	case len(records) == 0:
		return nil, nil
	case len(records) == 1 && !m.behind.queued(lone.k):
		if err := m.store.Put(ctx, lone.k, lone.record); err != nil {
			return nil, fmt.Errorf("storing alert state for %s on %s: %w", lone.ev.EventID, lone.ev.Device.Name, err)
		}
		return nil, nil
	}
	entries := journalEntries(rev, records)
	keys := make([]string, 0, len(entries))
	for k, v := range entries {
		if err := m.store.Put(ctx, k, v); err != nil {
			// The keys written so far are retired too: their batch is
			// not dispatched.
			for _, done := range keys {
				m.behind.put(done, nil, "", "")
			}
			return nil, fmt.Errorf("storing %d alert transition(s): %w", len(records), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// dispatchAll hands the transitions that are stored (or need no storing)
// to the dispatcher, concurrently.
func (m *Manager) dispatchAll(ctx context.Context, ts []*transition) {
	if len(ts) == 1 {
		m.dispatch(ctx, ts[0]) // the common case at low rates needs no goroutine
		return
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxConcurrentDispatches)
	for _, t := range ts {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			m.dispatch(ctx, t)
		})
	}
	wg.Wait()
}

func (m *Manager) dispatch(ctx context.Context, t *transition) {
	if t.err != nil {
		return
	}
	targets, err := m.dispatcher.Dispatch(ctx, t.ev, t.resolveTo)
	if err != nil {
		t.err = fmt.Errorf("dispatching %s for %s: %w", t.ev.EventID, t.ev.Device.Name, err)
		return
	}
	t.targets = targets
}

// persistBehind stores the instance's current state, written behind.
func (m *Manager) persistBehind(k string, in *Instance, rev uint64) error {
	b, err := json.Marshal(record{Instance: *in, Rev: rev})
	if err != nil {
		return fmt.Errorf("encoding alert state: %w", err)
	}
	m.behind.put(k, b, in.EventID, in.Device.Name)
	return nil
}

// forget drops the instance; the deletion is written behind.
func (m *Manager) forget(k string) {
	if in := m.instances[k]; in != nil {
		delete(m.instances, k)
		m.behind.put(k, nil, in.EventID, in.Device.Name)
	}
}

// activeCollector counts firing instances at scrape time, so the gauge costs
// nothing per transition and never drifts from the state.
type activeCollector struct{ m *Manager }

func (c activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.activeDesc }

func (c activeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	firing := map[string]int{}
	for _, in := range m.instances {
		if in.State == StateFiring {
			firing[in.EventID]++
		}
	}
	m.mu.Unlock()
	for id, n := range firing {
		ch <- prometheus.MustNewConstMetric(m.activeDesc, prometheus.GaugeValue, float64(n), id)
	}
}

// maxFailedEvents bounds the one-shot events kept in memory for a retry
// while the store is down; beyond it the oldest are dropped, loudly.
const maxFailedEvents = 10000

// keepFailedEvent queues a refused one-shot event for the next retry. It
// keeps its instance id and time, so its webhook-id stays the same.
func (m *Manager) keepFailedEvent(t *transition) {
	if len(m.failedEvents) >= maxFailedEvents {
		lost := m.failedEvents[0]
		m.log.Error("dropping a one-shot event that could not be handed to the outbox: too many waiting",
			"event_id", lost.ev.EventID, "device", lost.ev.Device.Name, "waiting", len(m.failedEvents))
		m.failedEvents = m.failedEvents[1:]
	}
	m.failedEvents = append(m.failedEvents, &transition{k: t.k, ev: t.ev})
}

// unsentRetryInterval spaces retries of transitions the store or the outbox
// refused (a store outage): often enough to notify soon after it ends,
// rarely enough not to hammer it.
const unsentRetryInterval = 10 * time.Second

// wakeFor makes Run plan again when due comes before the deadline its timer
// waits for. Later deadlines are found by that tick anyway, so a mass outage
// (thousands of devices pending at once) wakes Run once, not once per
// observation. The caller holds m.mu.
func (m *Manager) wakeFor(due time.Time) {
	if m.planned.IsZero() || due.Before(m.planned) {
		m.planned = due
		m.poke()
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run applies queued observations in batches, and fires pending alerts
// whose `for` has elapsed and resolves clearing ones whose `clear_for` has,
// at the moment they elapse rather than at the next observation, so
// notification latency does not depend on the probe interval. When ctx ends
// it applies what was queued, waits for the written-behind store writes and
// returns nil.
func (m *Manager) Run(ctx context.Context) error {
	m.qmu.Lock()
	if m.running {
		m.qmu.Unlock()
		return errors.New("alert manager: already running")
	}
	m.running = true
	m.qmu.Unlock()
	defer m.behind.drain()
	defer m.stopQueue(ctx)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.tick(ctx)
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(m.now()), 0)
		}
		timer.Reset(d)
		if !m.serve(ctx, timer) {
			return nil
		}
	}
}

// serve applies queued observations until a deadline may be due (true) or
// ctx ends (false).
func (m *Manager) serve(ctx context.Context, timer *time.Timer) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case obs := <-m.inbox:
			m.applyQueued(ctx, obs)
		case <-m.wake:
			return true
		case <-timer.C:
			return true
		}
	}
}

// applyQueued applies first and whatever else is queued by now, in as few
// batches as per-instance order allows. Failures are logged by observe.
func (m *Manager) applyQueued(ctx context.Context, first observation.Observation) {
	batch := []observation.Observation{first}
more:
	for len(batch) < maxBatch {
		select {
		case obs := <-m.inbox:
			batch = append(batch, obs)
		default:
			break more
		}
	}
	for len(batch) > 0 {
		batch, _ = m.observe(ctx, batch)
	}
}

// stopQueue makes Observe apply observations itself again, then applies
// those queued before, including any an Observe call is still handing over.
// They were accepted, so they are applied even though ctx has ended.
func (m *Manager) stopQueue(ctx context.Context) {
	m.drainMu.Lock()
	defer m.drainMu.Unlock()
	m.qmu.Lock()
	m.running = false
	m.qmu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	for {
		m.qmu.Lock()
		idle := m.senders == 0
		m.qmu.Unlock()
		if idle && len(m.inbox) == 0 {
			return
		}
		select {
		case obs := <-m.inbox:
			m.applyQueued(ctx, obs)
		case <-m.senderLeft:
		}
	}
}

// tick applies due deadlines and returns the next one (zero if none).
func (m *Manager) tick(ctx context.Context) time.Time {
	m.ticks.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	retryUnsent := !m.unsentRetry.IsZero() && !now.Before(m.unsentRetry)
	if retryUnsent {
		m.unsentRetry = time.Time{} // commit sets it again if they fail again
		m.staged = append(m.staged, m.failedEvents...)
		m.failedEvents = nil
	} else if !m.unsentRetry.IsZero() {
		consider(m.unsentRetry)
	}
	for _, k := range m.sortedKeys() {
		in := m.instances[k]
		if in.Unsent != nil {
			// A transition the store or the outbox refused: handed over
			// again here rather than only at the next start or reload.
			if retryUnsent {
				m.stage(k, in, *in.Unsent)
			}
			continue
		}
		r := m.set.ByEventID(in.EventID)
		if r == nil {
			continue
		}
		switch {
		case in.State == StatePending && r.Source != observation.Trap:
			due := in.Since.Add(r.For)
			if now.Before(due) {
				consider(due)
				continue
			}
			c := rules.Condition{Rule: r, Device: &in.Device, Key: in.Key, Time: due, Firing: true, Value: in.Value}
			if err := m.fire(k, in, c, due); err != nil {
				m.log.Error("firing alert", "event_id", in.EventID, "device", in.Device.Name, "err", err)
			}
		case in.State == StateFiring && !in.Clearing.IsZero():
			due := in.Clearing.Add(r.ClearFor)
			if now.Before(due) {
				consider(due)
				continue
			}
			if err := m.resolve(k, in, due); err != nil {
				m.log.Error("resolving alert", "event_id", in.EventID, "device", in.Device.Name, "err", err)
			}
		}
	}
	_ = m.commit(ctx) // failures are logged; they stay unsent in the store
	m.planned = next
	return next
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
