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
package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
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
	EventID  string       `json:"event_id"`
	Device   rules.Device `json:"device"`
	Key      string       `json:"key,omitempty"`
	State    State        `json:"state"`
	Since    time.Time    `json:"since"`              // condition first held
	ActiveAt time.Time    `json:"active_at,omitzero"` // fired
	Clearing time.Time    `json:"clearing,omitzero"`  // clear condition first held
	Value    any          `json:"value,omitempty"`    // last value of the tested metric
	Event    *event.Event `json:"event,omitempty"`    // the active event as notified
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
	devices   map[string]rules.Device
	wake      chan struct{}

	active *prometheus.GaugeVec
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
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nocbridge_alerts_active", Help: "Alert instances currently firing, by event id.",
		}, []string{"event_id"}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(m.active); err != nil {
			return nil, fmt.Errorf("alert metrics: %w", err)
		}
	}
	stored, err := store.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading alert state: %w", err)
	}
	for k, v := range stored {
		var in Instance
		if err := json.Unmarshal(v, &in); err != nil {
			// A corrupt record must not stop the daemon; it is dropped loudly.
			m.log.Error("dropping unreadable alert state record", "key", k, "err", err)
			continue
		}
		m.instances[k] = &in
	}
	m.updateGauge()
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
func (m *Manager) SetRules(ctx context.Context, set *rules.Set, devices []rules.Device) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set = set
	m.devices = make(map[string]rules.Device, len(devices))
	for _, d := range devices {
		m.devices[d.Name] = d
	}
	var firstErr error
	for _, k := range m.sortedKeys() {
		in := m.instances[k]
		if in.Unsent != nil {
			if err := m.dispatch(ctx, k, in, *in.Unsent); err != nil && firstErr == nil {
				firstErr = err
			}
			continue
		}
		r := set.ByEventID(in.EventID)
		_, deviceKnown := m.devices[in.Device.Name]
		if r != nil && deviceKnown && r.Match.Matches(m.devices[in.Device.Name]) {
			continue
		}
		if in.State == StatePending {
			m.forget(ctx, k)
			continue
		}
		m.log.Info("resolving alert whose rule or device was removed", "event_id", in.EventID, "device", in.Device.Name, "key", in.Key)
		if err := m.resolve(ctx, k, in, m.now()); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	m.poke()
	return firstErr
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
func (m *Manager) Observe(ctx context.Context, obs rules.Observation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	conds, errs := m.set.Evaluate(obs)
	for _, err := range errs {
		m.log.Warn("rule evaluation failed", "err", err)
	}
	var firstErr error
	for _, c := range conds {
		if err := m.apply(ctx, c); err != nil {
			m.log.Error("alert transition failed", "event_id", c.Rule.EventID, "device", c.Device.Name, "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

func (m *Manager) apply(ctx context.Context, c rules.Condition) error {
	r := c.Rule
	k := instanceKey(r.EventID, c.Device.Name, c.Key)
	in := m.instances[k]
	switch {
	case r.Kind == rules.KindEvent:
		if !c.Firing {
			return nil
		}
		ev, err := m.newEvent(r, c, uuid.NewString(), c.Time)
		if err != nil {
			return err
		}
		_, err = m.dispatcher.Dispatch(ctx, ev, nil)
		return err
	case r.Source == rules.SourceTrap:
		// Trap rules fire on the raising trap and resolve on the matching one.
		if c.Resolve && in != nil && in.State == StateFiring {
			return m.resolve(ctx, k, in, c.Time)
		}
		if c.Firing && in == nil {
			in = &Instance{EventID: r.EventID, Device: c.Device, Key: c.Key, State: StatePending, Since: c.Time}
			m.instances[k] = in
			return m.fire(ctx, k, in, c, c.Time)
		}
		return nil
	}
	if in == nil {
		if !c.Firing {
			return nil
		}
		in = &Instance{EventID: r.EventID, Device: c.Device, Key: c.Key, State: StatePending, Since: c.Time, Value: c.Value}
		m.instances[k] = in
	}
	in.Value = c.Value
	in.Device = c.Device
	switch in.State {
	case StatePending:
		if !c.Firing {
			delete(m.instances, k)
			return nil
		}
		if c.Time.Sub(in.Since) >= r.For {
			return m.fire(ctx, k, in, c, c.Time)
		}
		m.poke()
	case StateFiring:
		switch {
		case c.Clear && in.Clearing.IsZero():
			in.Clearing = c.Time
			if r.ClearFor == 0 {
				return m.resolve(ctx, k, in, c.Time)
			}
			m.poke()
		case c.Clear && c.Time.Sub(in.Clearing) >= r.ClearFor:
			return m.resolve(ctx, k, in, c.Time)
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
		Source: r.Source, Timestamp: at.UTC(), Status: event.StatusActive, Kind: r.Kind,
		Device: event.Device{Name: c.Device.Name, Address: c.Device.Address, Site: c.Device.Site, Role: c.Device.Role, Labels: c.Device.Labels},
		Key:    c.Key,
	}, nil
}

func (m *Manager) fire(ctx context.Context, k string, in *Instance, c rules.Condition, at time.Time) error {
	ev, err := m.newEvent(c.Rule, c, uuid.NewString(), at)
	if err != nil {
		return err
	}
	in.State = StateFiring
	in.ActiveAt = at
	in.Clearing = time.Time{}
	in.Event = &ev
	m.log.Info("alert firing", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key, "instance_id", ev.InstanceID)
	return m.dispatch(ctx, k, in, ev)
}

func (m *Manager) resolve(ctx context.Context, k string, in *Instance, at time.Time) error {
	if in.Event == nil {
		m.forget(ctx, k)
		return nil
	}
	ev := *in.Event
	ev.Status = event.StatusResolved
	ev.Timestamp = at.UTC()
	m.log.Info("alert resolved", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key, "instance_id", ev.InstanceID)
	return m.dispatch(ctx, k, in, ev)
}

// dispatch persists the transition, hands it to the dispatcher, then records
// that it was handed over (or forgets the instance after its resolve).
func (m *Manager) dispatch(ctx context.Context, k string, in *Instance, ev event.Event) error {
	in.Unsent = &ev
	if err := m.persist(ctx, k, in); err != nil {
		return err
	}
	var resolveTo []string
	if ev.Status == event.StatusResolved {
		resolveTo = in.ResolveTo
	}
	targets, err := m.dispatcher.Dispatch(ctx, ev, resolveTo)
	if err != nil {
		// Stays unsent in the store: dispatched again at the next start or reload.
		return fmt.Errorf("dispatching %s for %s: %w", ev.EventID, ev.Device.Name, err)
	}
	in.Unsent = nil
	if ev.Status == event.StatusResolved {
		m.forget(ctx, k)
		return nil
	}
	in.ResolveTo = targets
	err = m.persist(ctx, k, in)
	m.updateGauge()
	return err
}

func (m *Manager) persist(ctx context.Context, k string, in *Instance) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding alert state: %w", err)
	}
	if err := m.store.Put(ctx, k, b); err != nil {
		return fmt.Errorf("storing alert state for %s on %s: %w", in.EventID, in.Device.Name, err)
	}
	return nil
}

func (m *Manager) forget(ctx context.Context, k string) {
	delete(m.instances, k)
	if err := m.store.Delete(ctx, k); err != nil {
		m.log.Error("deleting alert state", "key", k, "err", err)
	}
	m.updateGauge()
}

func (m *Manager) updateGauge() {
	m.active.Reset()
	for _, in := range m.instances {
		if in.State == StateFiring {
			m.active.WithLabelValues(in.EventID).Inc()
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run fires pending alerts whose `for` has elapsed and resolves clearing
// ones whose `clear_for` has, at the moment they elapse rather than at the
// next observation, so notification latency does not depend on the probe
// interval.
func (m *Manager) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.tick(ctx)
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(m.now()), 0)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-timer.C:
		}
	}
}

// tick applies due deadlines and returns the next one (zero if none).
func (m *Manager) tick(ctx context.Context) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, k := range m.sortedKeys() {
		in := m.instances[k]
		r := m.set.ByEventID(in.EventID)
		if r == nil {
			continue
		}
		switch {
		case in.State == StatePending && r.Source != rules.SourceTrap:
			due := in.Since.Add(r.For)
			if now.Before(due) {
				consider(due)
				continue
			}
			c := rules.Condition{Rule: r, Device: in.Device, Key: in.Key, Time: due, Firing: true, Value: in.Value}
			if err := m.fire(ctx, k, in, c, due); err != nil {
				m.log.Error("firing alert", "event_id", in.EventID, "device", in.Device.Name, "err", err)
			}
		case in.State == StateFiring && !in.Clearing.IsZero():
			due := in.Clearing.Add(r.ClearFor)
			if now.Before(due) {
				consider(due)
				continue
			}
			if err := m.resolve(ctx, k, in, due); err != nil {
				m.log.Error("resolving alert", "event_id", in.EventID, "device", in.Device.Name, "err", err)
			}
		}
	}
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
