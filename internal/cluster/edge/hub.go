package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/lograte"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/store"
)

// UnknownMarker shows devices as unknown (devstate.Tracker).
type UnknownMarker interface {
	SetUnknown(names []string, unknown bool)
}

// HubOptions configure NewHub.
type HubOptions struct {
	Store *store.Store
	// Sites are the edge sites expected (hub.sites).
	Sites []string
	// UnreachableAfter is hub.unreachable_after.
	UnreachableAfter time.Duration
	// Inventory is the hub's current inventory.
	Inventory func() *inventory.Inventory
	// Devices shows a cut-off site's devices as unknown; nil: not shown.
	Devices UnknownMarker
	// Backlog is how many observations wait for evaluation (the queue
	// emit feeds); the hub replays a site's backlog no faster than
	// evaluation takes it, since what it has not read yet waits safely in
	// the stream. nil: no pacing.
	Backlog func() int
	// Now is the clock (tests); nil: time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// backlogMax is the evaluation backlog above which replay waits.
const backlogMax = 4096

// Hub reads edge sites' observations and watches their collectors.
type Hub struct {
	opts  HubOptions
	log   *slog.Logger
	logs  *lograte.Limiter // bad records: once a minute per site and kind
	sites []*site

	received    *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	unknownDevs *prometheus.CounterVec
	bad         *prometheus.CounterVec
	behind      *prometheus.CounterVec
	contactAge  *prometheus.GaugeVec
	unreachable *prometheus.GaugeVec
}

// site is what the hub knows of one edge site.
type site struct {
	name string
	src  *store.EdgeSource

	mu          sync.Mutex
	lastContact time.Time // by the hub's clock; the hub's start before any
	heard       bool      // a record arrived since the hub started
	told        bool      // its state went to rules at least once
	cutOff      bool
	marked      []string // devices marked unknown
	received    uint64
	dropped     uint64
	unknownDevs uint64
	outOfOrder  uint64
	linked      bool // its leaf connection was up at the last check
}

// NewHub opens each site's stream on the hub.
func NewHub(ctx context.Context, opts HubOptions) (*Hub, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Hub{opts: opts, log: opts.Logger, logs: lograte.New(time.Minute),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_edge_received_total",
			Help: "Records the hub received from edge sites, by site and kind (obs, hb)."}, []string{"site", "kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_edge_dropped_total",
			Help: "Records an edge site dropped from its full buffer before the hub had them (gaps in the edge's sequence)."}, []string{"site"}),
		unknownDevs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_edge_unknown_device_total",
			Help: "Observations from an edge site about a device not in the hub's inventory, dropped."}, []string{"site"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_edge_invalid_total",
			Help: "Records from an edge site the hub could not read, dropped."}, []string{"site"}),
		behind: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_edge_out_of_order_total",
			Help: "Records from an edge site not after the one before in the edge's sequence (a record again, or an edge whose buffer was made anew)."}, []string{"site"}),
		contactAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nocbridge_edge_last_contact_age_seconds",
			Help: "Seconds since the hub last received a record from the edge site (since the hub's start before the first)."}, []string{"site"}),
		unreachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nocbridge_edge_unreachable",
			Help: "1 while the edge site's collector is cut off (silent longer than hub.unreachable_after)."}, []string{"site"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{h.received, h.dropped, h.unknownDevs, h.bad, h.behind, h.contactAge, h.unreachable} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("edge hub metrics: %w", err)
			}
		}
	}
	now := opts.Now()
	for _, name := range opts.Sites {
		src, err := opts.Store.EdgeSource(ctx, name)
		if err != nil {
			return nil, err
		}
		h.sites = append(h.sites, &site{name: name, src: src, lastContact: now})
		h.received.WithLabelValues(name, store.EdgeObservation)
		h.received.WithLabelValues(name, store.EdgeHeartbeat)
		h.dropped.WithLabelValues(name)
		h.unknownDevs.WithLabelValues(name)
		h.bad.WithLabelValues(name)
		h.behind.WithLabelValues(name)
		h.unreachable.WithLabelValues(name)
	}
	return h, nil
}

// checkEvery is how often the hub looks for silent sites.
func (h *Hub) checkEvery() time.Duration {
	return min(time.Second, max(h.opts.UnreachableAfter/4, 10*time.Millisecond))
}

// Run reads every site and watches their contact until ctx is done.
func (h *Hub) Run(ctx context.Context, emit observation.Emit) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(h.sites))
	for _, s := range h.sites {
		wg.Go(func() {
			err := s.src.Read(ctx, func(r store.EdgeRecord) error { return h.record(ctx, s, r, emit) })
			if err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("edge site %s: %w", s.name, err)
			}
		})
	}
	tick := time.NewTicker(h.checkEvery())
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case <-tick.C:
			h.resume(ctx)
			h.check(emit)
		}
	}
	wg.Wait()
	return err
}

// record handles one record of s: contact first, then the observation.
func (h *Hub) record(ctx context.Context, s *site, r store.EdgeRecord, emit observation.Emit) error {
	h.received.WithLabelValues(s.name, r.Kind).Inc()
	if r.Gap > 0 {
		h.dropped.WithLabelValues(s.name).Add(float64(r.Gap))
		h.log.Warn("edge site dropped records from its full buffer before the hub had them", "site", s.name, "dropped", r.Gap, "at_seq", r.Origin)
	}
	if r.Behind {
		h.behind.WithLabelValues(s.name).Inc()
		h.logs.Log(h.log, slog.LevelWarn, "behind "+s.name, "edge record not after the one before (a record again, or the edge's buffer made anew; logged once a minute, nocbridge_edge_out_of_order_total counts all)", "site", s.name, "seq", r.Origin)
	}
	h.contact(s, r, emit)
	if r.Kind != store.EdgeObservation {
		return nil // a heartbeat: contact only
	}
	inv := h.opts.Inventory()
	o, err := observation.Unmarshal(r.Data, func(name string, addr netip.Addr) *inventory.Device { return lookup(inv, name, addr) })
	switch {
	case errors.Is(err, observation.ErrUnknownDevice):
		h.unknownDevs.WithLabelValues(s.name).Inc()
		s.mu.Lock()
		s.unknownDevs++
		s.mu.Unlock()
		h.log.Debug("edge observation about a device not in the hub's inventory: dropped", "site", s.name, "err", err)
		return nil
	case err != nil:
		h.bad.WithLabelValues(s.name).Inc()
		h.logs.Log(h.log, slog.LevelWarn, "invalid "+s.name, "unreadable edge record: dropped (logged once a minute; nocbridge_edge_invalid_total counts all)", "site", s.name, "seq", r.Origin, "err", err)
		return nil
	}
	for h.opts.Backlog != nil && h.opts.Backlog() > backlogMax {
		select {
		case <-ctx.Done():
			return ctx.Err() // not acknowledged: read again at the next start
		case <-time.After(5 * time.Millisecond):
		}
	}
	emit(o)
	return nil
}

// lookup finds an edge's device in the hub's inventory: by name, or an
// unknown trap sender by its address.
func lookup(inv *inventory.Inventory, name string, addr netip.Addr) *inventory.Device {
	if d, ok := inv.Device(name); ok {
		return d
	}
	if !addr.IsValid() {
		return nil
	}
	if d, ok := inv.ByAddress(addr); ok {
		return d
	}
	if u := inventory.UnknownSender(addr); u.Name == name {
		return u
	}
	return nil
}

// contact notes a record from s now: a site cut off is back.
func (h *Hub) contact(s *site, r store.EdgeRecord, emit observation.Emit) {
	now := h.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastContact, s.heard = now, true
	s.received++
	s.dropped += r.Gap
	if r.Behind {
		s.outOfOrder++
	}
	if s.cutOff || !s.told {
		if s.cutOff {
			h.log.Info("edge site's collector is back: replaying what it buffered", "site", s.name)
		}
		h.setLocked(s, false, 0, emit)
	}
}

// resume sets a site's source up again when its leaf connection has come
// up (store.EdgeSource.Resume): JetStream's own retry could take minutes
// after a long outage.
func (h *Hub) resume(ctx context.Context) {
	for _, s := range h.sites {
		up := h.opts.Store.LeafConnected(store.EdgeServerName(s.name))
		s.mu.Lock()
		came := up && !s.linked
		s.linked = up
		s.mu.Unlock()
		if came {
			if err := s.src.Resume(ctx); err != nil {
				h.log.Warn("edge site's leaf connection is up, but its source could not be set up again; JetStream retries it", "site", s.name, "err", err)
			} else {
				h.log.Info("edge site's leaf connection is up: reading what it buffered", "site", s.name)
			}
		}
	}
}

// check marks the sites silent longer than UnreachableAfter.
func (h *Hub) check(emit observation.Emit) {
	now := h.opts.Now()
	for _, s := range h.sites {
		s.mu.Lock()
		age := now.Sub(s.lastContact)
		h.contactAge.WithLabelValues(s.name).Set(age.Seconds())
		if !s.cutOff && age > h.opts.UnreachableAfter {
			h.log.Warn("edge site's collector unreachable: its devices are unknown until it is back", "site", s.name,
				"silent", age.Round(time.Second), "heard_since_start", s.heard)
			h.setLocked(s, true, age, emit)
		}
		s.mu.Unlock()
	}
}

// setLocked makes s cut off or not, marks its devices and tells rules.
// Hold s.mu.
func (h *Hub) setLocked(s *site, cutOff bool, silent time.Duration, emit observation.Emit) {
	inv := h.opts.Inventory()
	if h.opts.Devices != nil {
		if cutOff {
			s.marked = nil
			for _, d := range inv.Site(s.name) {
				s.marked = append(s.marked, d.Name)
			}
			h.opts.Devices.SetUnknown(s.marked, true)
		} else if s.marked != nil {
			h.opts.Devices.SetUnknown(s.marked, false)
			s.marked = nil
		}
	}
	s.cutOff, s.told = cutOff, true
	h.unreachable.WithLabelValues(s.name).Set(b2f(cutOff))
	siteDev, ok := inv.SiteDevice(s.name)
	if !ok {
		h.log.Warn("edge site has no device in the hub's inventory: no alert can be raised for it", "site", s.name)
		return
	}
	emit(observation.Observation{Source: observation.Edge, Device: siteDev, Time: h.opts.Now(), Vars: map[string]any{
		"site": s.name, "unreachable": cutOff, "last_contact_s": silent.Seconds(), "devices": len(inv.Site(s.name)),
	}})
}

// SiteStatus is one edge site as the hub sees it.
type SiteStatus struct {
	Site string `json:"site"`
	// Connected: its leaf connection is up now.
	Connected bool `json:"connected"`
	// LastContact is when the hub last received a record of it (zero
	// before the first since the hub started).
	LastContact        time.Time `json:"last_contact,omitzero"`
	LastContactSeconds float64   `json:"last_contact_age_seconds"`
	Unreachable        bool      `json:"unreachable"`
	Devices            int       `json:"devices"`
	Received           uint64    `json:"received"`
	// Dropped are records the edge dropped from its full buffer before
	// the hub had them; UnknownDevices observations about devices not in
	// the hub's inventory.
	Dropped        uint64 `json:"dropped"`
	UnknownDevices uint64 `json:"unknown_devices"`
	// OutOfOrder are records not after the one before (see
	// store.EdgeRecord.Behind): 0 unless an edge's buffer was made anew.
	OutOfOrder uint64               `json:"out_of_order"`
	Stream     store.EdgeSiteStream `json:"stream"`
}

// HubStatus is the hub's edge sites, for /api/v1/cluster.
type HubStatus struct {
	Role             string       `json:"role"` // "hub"
	Listen           string       `json:"listen,omitempty"`
	UnreachableAfter float64      `json:"unreachable_after_seconds"`
	Sites            []SiteStatus `json:"sites"`
}

// Status reads every site.
func (h *Hub) Status(ctx context.Context) HubStatus {
	out := HubStatus{Role: "hub", Listen: h.opts.Store.LeafAddr(), UnreachableAfter: h.opts.UnreachableAfter.Seconds(), Sites: []SiteStatus{}}
	inv := h.opts.Inventory()
	now := h.opts.Now()
	for _, s := range h.sites {
		st := SiteStatus{Site: s.name, Connected: h.opts.Store.LeafConnected(store.EdgeServerName(s.name)), Devices: len(inv.Site(s.name)),
			Stream: s.src.Status(ctx)}
		s.mu.Lock()
		if s.heard {
			st.LastContact = s.lastContact.UTC()
		}
		st.LastContactSeconds = now.Sub(s.lastContact).Seconds()
		st.Unreachable, st.Received, st.Dropped, st.UnknownDevices, st.OutOfOrder = s.cutOff, s.received, s.dropped, s.unknownDevs, s.outOfOrder
		s.mu.Unlock()
		out.Sites = append(out.Sites, st)
	}
	slices.SortFunc(out.Sites, func(a, b SiteStatus) int { return strings.Compare(a.Site, b.Site) })
	return out
}

// EdgeStatus is an edge node's side, for /api/v1/cluster.
type EdgeStatus struct {
	Role string `json:"role"` // "edge"
	store.EdgeBufferStatus
}

// Info is the edge node's side as /api/v1/cluster shows it.
func (p *Publisher) Info(ctx context.Context) EdgeStatus {
	return EdgeStatus{Role: "edge", EdgeBufferStatus: p.Status(ctx)}
}
