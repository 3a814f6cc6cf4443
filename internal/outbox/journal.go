package outbox

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/schedule"
	"github.com/nocbridge/nocbridge/internal/store"
)

const (
	queueLog          = "NOCBRIDGE_OUTBOX"
	queueSubject      = "nocbridge.outbox"
	deadLog           = "NOCBRIDGE_DEADLETTERS"
	deadSubjectPrefix = "nocbridge.deadletter."

	// A record stays well below the server's 1 MiB message limit.
	maxRecordBytes = 512 << 10
	maxRecordLines = 4096 // also keeps the line index within order's 16 bits
	// purgeEvery trims the log's head after this many records, or after
	// purgeInterval, whichever comes first: trimming is cheap but not free.
	purgeEvery         = 256
	purgeInterval      = time.Second
	defaultRelocateLag = 1024
	maxRelocPerRound   = 256
)

// location is where an item line is in the queue log: the record's
// sequence and the item's index among that record's item lines.
type location struct {
	Seq uint64 `json:"seq"`
	Idx int    `json:"idx"`
}

// storedItem is the durable form of an item.
type storedItem struct {
	ID          string      `json:"id"`
	Destination string      `json:"destination"`
	Event       event.Event `json:"event"`
	EnqueuedAt  time.Time   `json:"enqueued_at"`
	Attempts    int         `json:"attempts,omitempty"`
	// Order is the lane position of a copied-forward item (its original
	// location); an item in its original place takes it from there.
	Order uint64 `json:"order,omitempty"`
}

// line is one line of a record: an item, or a completed item's location.
type line struct {
	Item *storedItem `json:"item,omitempty"`
	Done *location   `json:"done,omitempty"`
}

type itemState int

const (
	itemStoring itemState = iota // written, not yet acknowledged
	itemPending                  // durable, not yet delivered
	itemDone                     // delivered or dead-lettered
)

// item is one notification in memory.
type item struct {
	id         string
	dest       string
	ev         event.Event
	enqueuedAt time.Time // the MaxAge clock: first enqueue or last replay
	attempts   int
	order      uint64 // position within its lane, stable across copies and restarts
	loc        location
	state      itemState
	lane       *lane

	// stored is closed once the item's fate in the store is known; err
	// says whether it failed. Duplicate Enqueues wait on it.
	stored chan struct{}
	err    error

	// settled, when someone waits for it, is closed when the attempt
	// under way ends (Replay waits for a dead-lettering to complete).
	settled chan struct{}

	inFlight   bool // an attempt or its recording is under way
	relocating bool // being copied forward: not attempted meanwhile
	lastReason string
	lastStatus int // HTTP status of the last retryable failure, if any

	dg     *digest // the digest carrying it, once taken (digest.go)
	single bool    // counted in a digest window's budget, or out of a digest: goes one by one

	// suspect: it stepped aside as a failing destination's probe, so its
	// failures are taken as its own (health.go).
	suspect bool
}

func orderOf(l location) uint64 { return l.Seq<<16 | uint64(l.Idx) }

func (it *item) toStored() storedItem {
	return storedItem{ID: it.id, Destination: it.dest, Event: it.ev, EnqueuedAt: it.enqueuedAt, Attempts: it.attempts}
}

// segment is one queue record that still holds pending items.
type segment struct {
	seq   uint64
	live  int
	items []*item // as written; an item may since have moved or finished
}

type entryKind int

const (
	entNew       entryKind = iota // a new item
	entRelocated                  // an item copied forward
	entDone                       // an item completed
	entMoved                      // the old location of an item copied forward
)

// entry is one line waiting for the group commit.
type entry struct {
	kind entryKind
	data []byte // the JSON line, newline-terminated
	it   *item
	c    *commit
}

// commit is one caller's set of entries; done closes when all are written.
type commit struct {
	left int
	err  error
	done chan struct{}
}

func (c *commit) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		// The entries are still written; the caller just stops waiting.
		return ctx.Err()
	}
}

func marshalLine(l line) ([]byte, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// enqueue reserves the items' ids, writes them and waits until they are
// durable. Ids already pending are skipped; ids being written by another
// caller are waited for.
func (o *Outbox) enqueue(ctx context.Context, news []*item) error {
	entries := make([]*entry, 0, len(news))
	for _, it := range news {
		data, err := marshalLine(line{Item: ptr(it.toStored())})
		if err != nil {
			return fmt.Errorf("encoding notification %s for %s: %w", it.id, it.dest, err)
		}
		entries = append(entries, &entry{kind: entNew, data: data, it: it})
	}
	var others []*item
	type skip struct {
		ev event.Event
		a  Attempt
	}
	var skipped []skip
	mine := entries[:0]
	o.mu.Lock()
	for _, e := range entries {
		switch prev := o.byID[e.it.id]; {
		case prev == nil && o.deliveredLocked(e.it.id):
			// Shown among the destination's attempts and in history, so
			// a notification not sent again is not hidden.
			a := Attempt{ID: e.it.id, Destination: e.it.dest, InstanceID: e.it.ev.InstanceID, EventID: e.it.ev.EventID,
				Status: e.it.ev.Status, At: o.clock.Now(), Result: ResultAlreadyDelivered}
			if st := o.dests[e.it.dest]; st != nil {
				st.record(a)
			}
			if o.metrics != nil {
				o.metrics.notifications.WithLabelValues(e.it.dest, ResultAlreadyDelivered).Inc()
			}
			skipped = append(skipped, skip{e.it.ev, a})
		case prev == nil:
			e.it.state = itemStoring
			e.it.stored = make(chan struct{})
			o.byID[e.it.id] = e.it
			mine = append(mine, e)
		case prev.state == itemStoring:
			others = append(others, prev)
		}
	}
	o.mu.Unlock()
	for _, sk := range skipped {
		o.noteAttempt(sk.ev, sk.a, "handed over again; this outbox's log shows it delivered: not sent twice")
	}

	if len(mine) > 0 {
		if err := o.submit(mine).wait(ctx); err != nil {
			return err
		}
	}
	for _, it := range others {
		select {
		case <-it.stored:
			if it.err != nil {
				return it.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// submit queues entries for the group commit, starting a flusher if none
// runs. The flusher exits as soon as the queue is empty.
func (o *Outbox) submit(entries []*entry) *commit {
	c := &commit{left: len(entries), done: make(chan struct{})}
	for _, e := range entries {
		e.c = c
	}
	o.jmu.Lock()
	o.jqueue = append(o.jqueue, entries...)
	start := o.flushIdle == nil
	if start {
		o.flushIdle = make(chan struct{})
	}
	o.jmu.Unlock()
	if start {
		go o.flush()
	}
	return c
}

// flushed waits until no flusher runs, so that Run leaves nothing behind
// that still writes to the store.
func (o *Outbox) flushed() {
	o.jmu.Lock()
	idle := o.flushIdle
	o.jmu.Unlock()
	if idle != nil {
		<-idle
	}
}

// recordDones durably marks attempted items completed, in one commit.
func (o *Outbox) recordDones(ctx context.Context, its []*item) error {
	if len(its) == 0 {
		return nil
	}
	entries := make([]*entry, len(its))
	for i, it := range its {
		data, err := marshalLine(line{Done: &it.loc})
		if err != nil {
			return err
		}
		entries[i] = &entry{kind: entDone, data: data, it: it}
	}
	return o.submit(entries).wait(ctx)
}

// flush writes queued entries, many per record, until the queue is empty.
func (o *Outbox) flush() {
	for {
		o.jmu.Lock()
		n, size := 0, 0
		for n < len(o.jqueue) && n < maxRecordLines-2*maxRelocPerRound {
			if size > 0 && size+len(o.jqueue[n].data) > maxRecordBytes {
				break
			}
			size += len(o.jqueue[n].data)
			n++
		}
		if n == 0 {
			close(o.flushIdle)
			o.flushIdle = nil
			o.jmu.Unlock()
			return
		}
		batch := slices.Clone(o.jqueue[:n])
		clear(o.jqueue[:n])
		o.jqueue = o.jqueue[n:]
		o.jmu.Unlock()

		batch = append(o.relocations(maxRecordBytes-size), batch...)
		var buf bytes.Buffer
		buf.Grow(size)
		for _, e := range batch {
			buf.Write(e.data)
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		seq, err := o.queue.Append(ctx, queueSubject, buf.Bytes())
		cancel()
		o.applyFlush(batch, seq, err)
		o.maybePurge()
	}
}

// applyFlush updates the index once a record's fate is known.
func (o *Outbox) applyFlush(batch []*entry, seq uint64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seg := &segment{seq: seq}
	idx := 0
	for _, e := range batch {
		it := e.it
		switch e.kind {
		case entNew:
			if err != nil {
				if o.byID[it.id] == it {
					delete(o.byID, it.id)
				}
				it.err = err
				close(it.stored)
				break
			}
			it.loc = location{seq, idx}
			it.order = orderOf(it.loc)
			it.state = itemPending
			seg.add(it)
			o.admitLocked(it)
			close(it.stored)
		case entRelocated:
			it.relocating = false
			if err == nil {
				o.releaseLocked(it.loc)
				it.loc = location{seq, idx}
				seg.add(it)
			}
			if it.lane != nil && it.lane.state == laneIdle {
				o.scheduleLocked(it.lane, o.clock.Now())
			}
			if dg := it.dg; dg != nil && dg.waiting {
				dg.waiting = false
				o.timers.Set(dg, o.clock.Now())
				o.poke()
			}
		case entDone:
			// The item was delivered even if this record failed; the
			// caller logs that, and a later trim records it anyway.
			o.releaseLocked(it.loc)
		}
		if e.kind == entNew || e.kind == entRelocated {
			idx++
		}
		if c := e.c; c != nil {
			if err != nil && c.err == nil {
				c.err = err
			}
			if c.left--; c.left == 0 {
				close(c.done)
			}
		}
	}
	if err != nil {
		return
	}
	o.lastSeq = seq
	if seg.live > 0 {
		o.segs = append(o.segs, seg)
		o.segsByNum[seq] = seg
	}
}

func (s *segment) add(it *item) {
	s.items = append(s.items, it)
	s.live++
}

// releaseLocked notes that the item line at l no longer holds a pending item.
func (o *Outbox) releaseLocked(l location) {
	if seg := o.segsByNum[l.Seq]; seg != nil {
		seg.live--
	}
}

// watermarkLocked is the lowest sequence that may still hold a pending item:
// everything below it can be purged.
func (o *Outbox) watermarkLocked() uint64 {
	drop := 0
	for drop < len(o.segs) && o.segs[drop].live <= 0 {
		delete(o.segsByNum, o.segs[drop].seq)
		drop++
	}
	if drop > 0 {
		clear(o.segs[:drop])
		o.segs = o.segs[drop:]
	}
	if len(o.segs) == 0 {
		return o.lastSeq + 1
	}
	return o.segs[0].seq
}

// maybePurge trims the log's head, batching trims since each costs a sync.
func (o *Outbox) maybePurge() {
	o.mu.Lock()
	w := o.watermarkLocked()
	due := w > o.purgedTo && (w-o.purgedTo >= purgeEvery || o.clock.Now().Sub(o.lastPurge) >= purgeInterval)
	o.mu.Unlock()
	if !due {
		return
	}
	if err := o.purge(context.Background(), w); err != nil {
		o.log.Log(context.Background(), store.LogLevel(err, slog.LevelWarn), "trimming the outbox log", "below_seq", w, "err", err)
	}
}

func (o *Outbox) purge(ctx context.Context, below uint64) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := o.queue.PurgeBelow(ctx, below); err != nil {
		return err
	}
	o.mu.Lock()
	o.purgedTo, o.lastPurge = below, o.clock.Now()
	o.mu.Unlock()
	return nil
}

// How many completed notifications, and for how long, Enqueue remembers
// as delivered: a re-dispatch comes within seconds of the completion (the
// alert manager retries unsent transitions every 10 s; a new leader
// resyncs at once), and the memory stays bounded at any rate.
const (
	doneKept = 1 << 16
	doneFor  = 5 * time.Minute
)

// noteDoneLocked remembers id as completed now.
func (o *Outbox) noteDoneLocked(id string) {
	if old := o.doneRing[o.doneNext]; old != "" {
		delete(o.done, old)
	}
	o.doneRing[o.doneNext] = id
	o.doneNext = (o.doneNext + 1) % len(o.doneRing)
	o.done[id] = o.clock.Now()
}

// deliveredLocked reports whether the notification id was delivered
// lately. A dead-lettered one was not: enqueueing it again is its retry.
func (o *Outbox) deliveredLocked(id string) bool {
	at, done := o.done[id]
	_, dead := o.deadIdx[id]
	return done && !dead && o.clock.Now().Sub(at) < doneFor
}

// relocations copies forward the idle pending items of the oldest record
// when the log has grown far behind it, so the head can be trimmed. Each
// copy and the retirement of its original travel in the same record.
func (o *Outbox) relocations(room int) []*entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.watermarkLocked()
	if len(o.segs) == 0 || o.lastSeq-w < o.relocateLag {
		return nil
	}
	var out []*entry
	for _, it := range o.segs[0].items {
		if len(out) >= 2*maxRelocPerRound {
			break
		}
		if it.state != itemPending || it.loc.Seq != w || it.inFlight || it.relocating {
			continue
		}
		s := it.toStored()
		s.Order = it.order
		data, err := marshalLine(line{Item: &s})
		if err != nil {
			continue
		}
		moved, _ := marshalLine(line{Done: ptr(it.loc)})
		if room -= len(data) + len(moved); room < 0 {
			break
		}
		it.relocating = true
		out = append(out, &entry{kind: entRelocated, data: data, it: it}, &entry{kind: entMoved, data: moved, it: it})
	}
	return out
}

// rebuild reads the queue log and restores every pending item.
func (o *Outbox) rebuild(ctx context.Context) error {
	state, err := o.queue.State(ctx)
	if err != nil {
		return fmt.Errorf("outbox log: %w", err)
	}
	o.lastSeq, o.purgedTo = state.Last, state.First
	live := map[location]*item{}
	var done []string // completed, as the log shows
	err = o.queue.ReadAll(ctx, func(r store.Record) error {
		seq := r.Seq
		seg := &segment{seq: seq}
		idx := 0
		dec := json.NewDecoder(bytes.NewReader(r.Data))
		for {
			var l line
			if err := dec.Decode(&l); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				// JetStream checksums its blocks, so this is a bug, not
				// disk damage: say so loudly and keep what was readable.
				o.log.Error("outbox record unreadable; its remaining lines are skipped", "seq", seq, "err", err)
				break
			}
			if l.Done != nil {
				if it := live[*l.Done]; it != nil {
					done = append(done, it.id)
					delete(live, *l.Done)
					if s := o.segsByNum[l.Done.Seq]; s != nil {
						s.live--
					}
				}
			}
			if s := l.Item; s != nil {
				loc := location{seq, idx}
				idx++
				it := &item{id: s.ID, dest: s.Destination, ev: s.Event, enqueuedAt: s.EnqueuedAt, attempts: s.Attempts, order: s.Order, loc: loc, state: itemPending}
				if it.order == 0 {
					it.order = orderOf(loc)
				}
				live[loc] = it
				seg.add(it)
			}
		}
		if seg.live > 0 {
			o.segs = append(o.segs, seg)
			o.segsByNum[seq] = seg
		}
		return nil
	})
	if err != nil {
		return err
	}
	items := make([]*item, 0, len(live))
	for _, it := range live {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b *item) int { return cmp.Compare(a.order, b.order) })
	o.mu.Lock()
	for _, id := range done {
		o.noteDoneLocked(id)
	}
	for _, it := range items {
		if o.byID[it.id] != nil {
			// Enqueue never stores a pending id twice; if it happened
			// anyway, one delivery serves both.
			o.releaseLocked(it.loc)
			continue
		}
		o.byID[it.id] = it
		o.admitLocked(it)
	}
	w := o.watermarkLocked()
	restored := len(o.byID)
	o.mu.Unlock()
	if restored > 0 {
		o.log.Info("outbox restored pending notifications", "count", restored)
	}
	if w > o.purgedTo {
		if err := o.purge(ctx, w); err != nil {
			o.log.Warn("trimming the outbox log", "below_seq", w, "err", err)
		}
	}
	return nil
}

// Resync makes the pending notifications and dead letters those the store
// holds now — what another node enqueued, delivered and gave up on while
// it led the cluster — as a restart would, keeping the destinations, their
// recent attempts and health. A cluster's new leader calls it before Run;
// never while Run runs. Lanes restart from the log: an attempt the old
// leader had under way is made again, with the same webhook-id.
func (o *Outbox) Resync(ctx context.Context) error {
	o.flushed() // this node's own writes first
	o.mu.Lock()
	if o.running {
		o.mu.Unlock()
		return errors.New("outbox: Resync while running")
	}
	o.byID, o.timers = map[string]*item{}, schedule.Queue[schedule.Timed]{}
	o.deadIdx, o.deadCount, o.deadActive = map[string]deadRef{}, map[string]int{}, map[string]string{}
	o.segs, o.segsByNum = nil, map[uint64]*segment{}
	for _, st := range o.dests {
		st.lanes, st.ready, st.inflight, st.pending = map[string]*lane{}, nil, 0, 0
		st.window, st.singles, st.parking, st.digests = time.Time{}, 0, nil, nil
	}
	o.mu.Unlock()
	if err := o.rebuild(ctx); err != nil {
		return err
	}
	if err := o.loadDeadLetters(ctx); err != nil {
		return err
	}
	o.poke()
	return nil
}
