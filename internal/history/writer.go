package history

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/lograte"
	"github.com/nocbridge/nocbridge/internal/store"
)

// Layout in the store: one log, kept for the retention (MaxAge), written
// without an fsync of its own (history is no delivery guarantee):
//
//	nocbridge.history.e.<instance>                  every entry of an alert, in order
//	nocbridge.history.s.<device>.<event id>.<instance>  its summary (an Alert without
//	                                                 timeline), replaced at each change
//
// An alert's page reads its own subject; a page of alerts reads summaries
// newest first, for one device or event id by its subject tokens.
const (
	logName       = "NOCBRIDGE_HISTORY"
	subjectPrefix = "nocbridge.history."
	entryPrefix   = subjectPrefix + "e."
	summaryPrefix = subjectPrefix + "s."
)

// Recorder takes timeline entries without waiting: what it cannot keep is
// dropped and counted, never waited for. *History is one; the alert
// manager, noise control and the outbox each take one (nil: none).
type Recorder interface {
	// Record adds e to the timeline of ev's alert (ev.InstanceID); ev also
	// names the alert (event id, device, key, name, severity). An entry
	// without a time gets the time of the call.
	Record(ev event.Event, e Entry)
}

// Discard is the Recorder of a writer given none: it keeps nothing.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(event.Event, Entry) {}

// Options configure New.
type Options struct {
	// Retention is how long entries are kept (history.retention).
	Retention time.Duration
	// Buffer bounds the entries waiting for the writer; 0: DefaultBuffer.
	Buffer     int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// DefaultBuffer is the entries that may wait for the writer: a burst such as
// a core outage (10,000 alerts pending, firing and suppressed at once) fits.
const DefaultBuffer = 65536

const (
	// maxBatch bounds the entries written in one batch.
	maxBatch = 1024
	// linger is how long the writer waits for more entries after the
	// first of a batch: an alert's active and its first attempts (a few
	// milliseconds apart) then go in one record.
	linger = 25 * time.Millisecond
	// maxPause bounds the pause after a write (Run).
	maxPause = 100 * time.Millisecond
	// writeTimeout bounds one batch's write; stopTimeout what Run still
	// writes once stopped.
	writeTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	// cacheSize bounds the summaries the writer keeps (two generations of
	// half of it); one it does not have is read from the store.
	cacheSize = 8192
	// Summaries changed by the entries written are written together: every
	// summaryEvery while entries keep coming, summaryIdle after they
	// pause, or once maxBatch of them wait. An alert whose entries come
	// over a second (an active, its attempts) has its summary written
	// once, not after each of them, which halves what history writes
	// during a storm.
	summaryEvery = time.Second
	summaryIdle  = 20 * time.Millisecond
	// maxDetail cuts an entry's detail (reasons and answers come scrubbed
	// and cut already; this bounds what history stores whatever comes).
	maxDetail = 2048
)

// Reasons an entry was dropped, as nocbridge_history_dropped_total names them.
const (
	DropFull    = "full"    // the writer was behind and its buffer full
	DropStore   = "store"   // the store refused or failed the write (a full disk)
	DropStopped = "stopped" // recorded after the writer stopped, or left at its stop
	DropInvalid = "invalid" // no instance id: nothing to file it under
)

var dropReasons = []string{DropFull, DropStore, DropStopped, DropInvalid}

// History is the alert history: Record hands entries over without waiting,
// Run writes them in batches, Get and List read.
type History struct {
	log       *store.Log
	retention time.Duration
	logger    *slog.Logger
	now       func() time.Time
	rate      *lograte.Limiter

	in      chan *item
	stopped atomic.Bool

	// The writer's own (Run's goroutine): summaries it knows, and those
	// changed and not yet written (or whose write failed), by summary
	// subject; when they were last written.
	cache     sumCache
	dirty     map[string]*Alert
	lastFlush time.Time
	nDirty    atomic.Int64 // len(dirty), for Stats

	written  prometheus.Counter
	dropped  *prometheus.CounterVec
	waiting  prometheus.GaugeFunc
	nWritten atomic.Uint64
	dropMu   sync.Mutex
	nDropped map[string]uint64
	lastDrop time.Time
}

// item is one entry waiting for the writer.
type item struct {
	ev event.Event
	e  Entry
}

// New opens (or creates) the history log with opts.Retention as its
// MaxAge; a changed retention applies to what it holds at once.
func New(ctx context.Context, st *store.Store, opts Options) (*History, error) {
	if opts.Retention <= 0 {
		return nil, fmt.Errorf("history: retention %v must be positive", opts.Retention)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	l, err := st.Log(ctx, store.LogConfig{
		Name:        logName,
		Description: "nocbridge alert history: transitions, delivery attempts and noise-control decisions per alert",
		Subjects:    []string{subjectPrefix + ">"},
		MaxAge:      opts.Retention,
		Async:       true,
		Replace:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("history log: %w", err)
	}
	h := &History{
		log: l, retention: opts.Retention, logger: opts.Logger, now: opts.Now, rate: lograte.New(time.Minute),
		in: make(chan *item, opts.Buffer), dirty: map[string]*Alert{}, nDropped: map[string]uint64{},
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_history_entries_total",
			Help: "Alert history entries written to the store."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_history_dropped_total",
			Help: "Alert history entries dropped, by reason: full (the writer was behind), store (the store refused or failed the write), stopped, invalid."},
			[]string{"reason"}),
	}
	h.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nocbridge_history_waiting",
		Help: "Alert history entries waiting to be written."}, func() float64 { return float64(len(h.in)) })
	for _, r := range dropReasons {
		h.dropped.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{h.written, h.dropped, h.waiting} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("history metrics: %w", err)
			}
		}
	}
	return h, nil
}

// Retention is how long entries are kept.
func (h *History) Retention() time.Duration { return h.retention }

// Record hands an entry to the writer without waiting: when its buffer is
// full (or Run has stopped) the entry is dropped and counted.
func (h *History) Record(ev event.Event, e Entry) {
	if e.At.IsZero() {
		e.At = h.now()
	}
	if h.stopped.Load() {
		h.drop(DropStopped, 1, ev.InstanceID)
		return
	}
	select {
	case h.in <- &item{ev: ev, e: e}:
	default:
		h.drop(DropFull, 1, ev.InstanceID)
	}
}

func (h *History) drop(reason string, n int, instance string) {
	if n == 0 {
		return
	}
	h.dropped.WithLabelValues(reason).Add(float64(n))
	h.dropMu.Lock()
	h.nDropped[reason] += uint64(n)
	h.lastDrop = h.now()
	h.dropMu.Unlock()
	h.rate.Log(h.logger, slog.LevelWarn, "drop/"+reason, "alert history entries dropped: the timelines they belong to miss them",
		"reason", reason, "entries", n, "instance_id", instance)
}

// Stats is what the writer did, for the API.
type Stats struct {
	Retention string            `json:"retention"`
	Written   uint64            `json:"entries_written"`
	Dropped   map[string]uint64 `json:"entries_dropped"` // by reason: full, store, stopped, invalid
	Waiting   int               `json:"waiting"`
	// SummariesWaiting are alerts whose changes are written but not yet
	// their summary (pages of alerts show them within a second).
	SummariesWaiting int       `json:"summaries_waiting"`
	LastDrop         time.Time `json:"last_drop,omitzero"`
}

// Stats reports entries written, dropped and waiting since the start.
func (h *History) Stats() Stats {
	h.dropMu.Lock()
	defer h.dropMu.Unlock()
	s := Stats{Retention: h.retention.String(), Written: h.nWritten.Load(), Dropped: map[string]uint64{}, Waiting: len(h.in),
		SummariesWaiting: int(h.nDirty.Load()), LastDrop: h.lastDrop}
	for _, r := range dropReasons {
		s.Dropped[r] = h.nDropped[r]
	}
	return s
}

// Run writes entries in batches until ctx ends, then writes what is
// already waiting (for at most a few seconds) and returns nil. Stop it
// after the writers, so their last entries are kept.
func (h *History) Run(ctx context.Context) error {
	batch := make([]*item, 0, maxBatch)
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			h.stopped.Store(true)
			h.finish()
			return nil
		case it := <-h.in:
			batch = h.gather(ctx, wait, append(batch[:0], it))
			// A batch under way is written whole, even when Run is
			// stopped meanwhile.
			began := time.Now()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
			h.write(wctx, batch)
			if len(h.dirty) >= maxBatch || time.Since(h.lastFlush) >= summaryEvery {
				h.flush(wctx)
			}
			cancel()
			if len(h.dirty) > 0 {
				idle.Reset(summaryIdle)
			}
			// Paced: as long again as the write took, so history takes at
			// most about half of the store's time in a storm and delivery
			// keeps the rest; what comes meanwhile waits in the buffer and
			// goes in the next, larger batch.
			h.pause(ctx, wait, min(time.Since(began), maxPause))
		case <-idle.C:
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
			h.flush(wctx)
			cancel()
		}
	}
}

// pause waits d, or until ctx ends.
func (h *History) pause(ctx context.Context, t *time.Timer, d time.Duration) {
	t.Reset(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// gather adds what comes within linger, up to maxBatch.
func (h *History) gather(ctx context.Context, wait *time.Timer, batch []*item) []*item {
	wait.Reset(linger)
	defer wait.Stop()
	for len(batch) < maxBatch {
		select {
		case it := <-h.in:
			batch = append(batch, it)
		case <-wait.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// take adds what else waits, up to maxBatch.
func (h *History) take(batch []*item) []*item {
	for len(batch) < maxBatch {
		select {
		case it := <-h.in:
			batch = append(batch, it)
		default:
			return batch
		}
	}
	return batch
}

// finish writes what waits at the stop, within stopTimeout; the rest is
// dropped and counted.
func (h *History) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	defer h.flush(ctx)
	for ctx.Err() == nil {
		batch := h.take(nil)
		if len(batch) == 0 {
			return
		}
		h.write(ctx, batch)
	}
	left := len(h.in)
	for range left {
		<-h.in
	}
	h.drop(DropStopped, left, "")
}

// group is one alert's entries in a batch.
type group struct {
	subject string // its summary's
	items   []*item
}

// write stores a batch of entries and folds them into their alerts'
// summaries, which flush writes.
func (h *History) write(ctx context.Context, batch []*item) {
	groups := map[string]*group{}
	var order []*group
	invalid := 0
	for _, it := range batch {
		if it.ev.InstanceID == "" {
			invalid++
			continue
		}
		subj := summarySubject(it.ev.Device.Name, it.ev.EventID, it.ev.InstanceID)
		g := groups[subj]
		if g == nil {
			g = &group{subject: subj}
			groups[subj] = g
			order = append(order, g)
		}
		g.items = append(g.items, it)
	}
	h.drop(DropInvalid, invalid, "")

	// One record per alert: its entries of the batch, a JSON line each.
	msgs := make([]store.Message, 0, len(order))
	counts := make([]int, 0, len(order))
	for _, g := range order {
		sum := h.summary(ctx, g.subject, g.items)
		var data []byte
		n := 0
		for _, it := range g.items {
			r := newStored(it)
			b, err := json.Marshal(r)
			if err != nil { // an event that does not encode: counted, not stored
				h.logger.Error("encoding an alert history entry", "instance_id", it.ev.InstanceID, "err", err)
				h.drop(DropInvalid, 1, it.ev.InstanceID)
				continue
			}
			data = append(append(data, b...), '\n')
			n++
			sum.apply(r)
		}
		h.dirty[g.subject] = sum
		if n > 0 {
			msgs = append(msgs, store.Message{Subject: entryPrefix + token(g.items[0].ev.InstanceID), Data: data})
			counts = append(counts, n)
		}
	}
	h.nDirty.Store(int64(len(h.dirty)))
	stored, err := h.log.AppendBatch(ctx, msgs)
	entries, lost := 0, 0
	for i, n := range counts {
		if i < stored {
			entries += n
		} else {
			lost += n
		}
	}
	h.written.Add(float64(entries))
	h.nWritten.Add(uint64(entries))
	if err != nil {
		h.drop(DropStore, lost, "")
		h.rate.Log(h.logger, store.LogLevel(err, slog.LevelError), "write", "writing alert history failed; its entries are dropped",
			"entries", lost, "err", err)
	}
}

// flush writes the changed summaries, in the order their alerts last
// changed: a page of alerts reads them newest first. One the store does
// not take stays and goes with the next flush (at most cacheSize wait:
// beyond, the oldest are given up, and their alerts' pages lag until they
// change again).
func (h *History) flush(ctx context.Context) {
	h.lastFlush = time.Now()
	if len(h.dirty) == 0 {
		return
	}
	subjects := slices.SortedFunc(maps.Keys(h.dirty), func(a, b string) int {
		return cmp.Or(h.dirty[a].LastAt.Compare(h.dirty[b].LastAt), strings.Compare(a, b))
	})
	msgs := make([]store.Message, 0, len(subjects))
	for _, subj := range subjects {
		b, err := json.Marshal(h.dirty[subj])
		if err != nil {
			h.logger.Error("encoding an alert history summary", "instance_id", h.dirty[subj].InstanceID, "err", err)
			continue
		}
		msgs = append(msgs, store.Message{Subject: subj, Data: b, Replace: true})
	}
	n, err := h.log.AppendBatch(ctx, msgs)
	for _, m := range msgs[:n] {
		h.cache.put(m.Subject, h.dirty[m.Subject])
		delete(h.dirty, m.Subject)
	}
	if err != nil {
		h.rate.Log(h.logger, store.LogLevel(err, slog.LevelError), "summaries", "writing alert history summaries failed; tried again with the next ones",
			"summaries", len(msgs)-n, "err", err)
		for _, m := range msgs[n:] {
			if len(h.dirty) <= cacheSize {
				break
			}
			h.cache.forget(m.Subject)
			delete(h.dirty, m.Subject)
		}
	}
	h.nDirty.Store(int64(len(h.dirty)))
}

// summary is the alert's summary as last changed: waiting to be written,
// in the cache, else in the store, else a new one. An alert whose entries
// here include the start of its life (pending, active, a one-shot event)
// is new: it is not looked up, which spares a store read per new alert in
// a storm (after a restart between pending and firing, its page of alerts
// then starts at the firing; its own page reads every entry).
func (h *History) summary(ctx context.Context, subject string, items []*item) *Alert {
	ev := items[0].ev
	if a := h.dirty[subject]; a != nil {
		return a
	}
	if a := h.cache.get(subject); a != nil {
		return a
	}
	for _, it := range items {
		if k := it.e.Kind; k == KindPending || k == KindActive || k == KindEvent {
			return &Alert{InstanceID: ev.InstanceID}
		}
	}
	r, err := h.log.Last(ctx, subject)
	if err == nil {
		var a Alert
		if err = json.Unmarshal(r.Data, &a); err == nil {
			return &a
		}
	}
	if !errors.Is(err, store.ErrNotFound) {
		h.rate.Log(h.logger, slog.LevelWarn, "summary", "reading an alert history summary failed; it starts again from what comes next",
			"instance_id", ev.InstanceID, "err", err)
	}
	return &Alert{InstanceID: ev.InstanceID}
}

// sumCache keeps recently written summaries: two generations, the older
// dropped when the newer fills, so the alerts in play stay in memory.
type sumCache struct {
	cur, old map[string]*Alert
}

func (c *sumCache) get(k string) *Alert {
	if a := c.cur[k]; a != nil {
		return a
	}
	if a := c.old[k]; a != nil {
		c.put(k, a)
		return a
	}
	return nil
}

func (c *sumCache) put(k string, a *Alert) {
	if c.cur == nil || len(c.cur) >= cacheSize/2 {
		c.old, c.cur = c.cur, make(map[string]*Alert, cacheSize/2)
	}
	c.cur[k] = a
}

func (c *sumCache) forget(k string) {
	delete(c.cur, k)
	delete(c.old, k)
}

// stored is an entry as the log holds it: with the names of its alert, so
// an alert's page is built from its own entries, and, for transitions, the
// event as it was handed on.
type stored struct {
	Entry
	EventID  string       `json:"event_id"`
	Name     string       `json:"name,omitempty"`
	Device   string       `json:"device"`
	Key      string       `json:"key,omitempty"`
	Severity int          `json:"severity,omitempty"`
	OneShot  bool         `json:"one_shot,omitempty"`
	Event    *event.Event `json:"event,omitempty"`
}

// carriesEvent: the entries that record the notification itself.
func carriesEvent(k Kind) bool {
	return k == KindActive || k == KindResolved || k == KindEvent || k == KindReleased
}

func newStored(it *item) stored {
	e := it.e
	e.Detail = cut(e.Detail, maxDetail)
	r := stored{Entry: e, EventID: it.ev.EventID, Name: it.ev.Name, Device: it.ev.Device.Name, Key: it.ev.Key,
		Severity: it.ev.Severity, OneShot: it.ev.Kind == event.KindEvent}
	if carriesEvent(e.Kind) {
		ev := it.ev
		r.Event = &ev
	}
	return r
}

// cut shortens s to at most n bytes, on a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Statuses an alert has in history, as Alert.Status and Query.Status name them.
const (
	StatusPending  = "pending"
	StatusActive   = "active"
	StatusResolved = "resolved"
	StatusEvent    = "event"
)

// statusRank orders statuses: an alert only moves up (a condition that
// fires again is a new instance).
var statusRank = map[string]int{"": 0, StatusPending: 1, StatusActive: 2, StatusEvent: 2, StatusResolved: 3}

// apply folds one entry into the summary: the writer keeps summaries so,
// and Get builds an alert from its entries so.
func (a *Alert) apply(r stored) {
	if a.EventID == "" {
		a.EventID, a.Device, a.Key = r.EventID, r.Device, r.Key
	}
	if r.Name != "" {
		a.Name = r.Name
	}
	if r.Severity != 0 {
		a.Severity = r.Severity
	}
	if a.FirstAt.IsZero() || r.At.Before(a.FirstAt) {
		a.FirstAt = r.At
	}
	if r.At.After(a.LastAt) {
		a.LastAt = r.At
	}
	status := ""
	switch {
	case r.Kind == KindPending:
		status = StatusPending
	case r.Kind == KindActive:
		status = StatusActive
	case r.Kind == KindResolved:
		status = StatusResolved
		a.ResolvedAt = r.At
	case r.OneShot:
		status = StatusEvent
	case r.Status == event.StatusActive:
		// Only decisions and attempts seen so far: what they concern.
		status = StatusActive
	case r.Status == event.StatusResolved:
		status = StatusResolved
	}
	if statusRank[status] > statusRank[a.Status] {
		a.Status = status
	}
	if r.Event != nil && (a.Event == nil || r.Kind == KindResolved || a.Event.Status != event.StatusResolved) {
		a.Event = r.Event
	}
}

// token makes s one subject token: as it is when it is a plain name
// ([A-Za-z0-9_-]), else "=" and its base64url form (never a plain name).
func token(s string) string {
	if plain(s) {
		return s
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

// plain: s is 1 to 128 of [A-Za-z0-9_-].
func plain(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func summarySubject(device, eventID, instance string) string {
	return summaryPrefix + token(device) + "." + token(eventID) + "." + token(instance)
}
