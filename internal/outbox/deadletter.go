package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/store"
)

// deadRef locates a dead letter in its log.
type deadRef struct {
	id   string
	seq  uint64
	dest string
	// instance and active let a later resolve of the same alert see that
	// its active is dead-lettered (see blockedByDeadActive).
	instance string
	active   bool
}

func (r deadRef) laneKey() string { return r.dest + "\x00" + r.instance }

// idToken is what a webhook-id looks like (event.NotificationID); it
// becomes a subject token, so nothing else may reach a subject.
var idToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// writeDeadLetter stores the item in the dead-letter log. One subject per
// webhook-id, keeping only the last: dead-lettering twice (a crash before
// the queue recorded it) leaves one entry.
func (o *Outbox) writeDeadLetter(ctx context.Context, it *item, reason string, status int) error {
	if !idToken.MatchString(it.id) {
		return fmt.Errorf("webhook-id %q is not a valid subject token", it.id)
	}
	o.mu.Lock()
	dl := DeadLetter{
		ID: it.id, Destination: it.dest, Reason: reason, Status: status, Attempts: it.attempts,
		EnqueuedAt: it.enqueuedAt, DeadAt: o.clock.Now().UTC(), Event: it.ev,
	}
	o.mu.Unlock()
	data, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	seq, err := o.dead.Append(ctx, deadSubjectPrefix+it.id, data)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.setDeadLocked(deadRef{id: it.id, seq: seq, dest: it.dest, instance: it.ev.InstanceID, active: it.ev.Status == event.StatusActive})
	o.mu.Unlock()
	o.hist.Record(it.ev, history.Entry{At: dl.DeadAt, Kind: history.KindDeadLetter, Status: it.ev.Status, Destination: it.dest,
		Attempt: dl.Attempts, HTTPStatus: status, Detail: reason})
	return nil
}

func (o *Outbox) setDeadLocked(ref deadRef) {
	if prev, ok := o.deadIdx[ref.id]; ok {
		o.deadCount[prev.dest]--
		o.unblockLocked(prev)
	}
	o.deadIdx[ref.id] = ref
	o.deadCount[ref.dest]++
	if ref.active {
		o.deadActive[ref.laneKey()] = ref.id
	}
}

func (o *Outbox) unblockLocked(ref deadRef) {
	if ref.active && o.deadActive[ref.laneKey()] == ref.id {
		delete(o.deadActive, ref.laneKey())
	}
}

// blockedByDeadActive returns the webhook-id of the dead-lettered active
// notification of it's alert at its destination, if it is a resolve and
// there is one: delivering the resolve now and the active after a replay
// would reopen a closed alert at the receiver (SPEC 6: a resolve is never
// delivered before its active).
func (o *Outbox) blockedByDeadActive(it *item) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.blockedLocked(it)
}

func (o *Outbox) blockedLocked(it *item) (string, bool) {
	if it.ev.Status != event.StatusResolved {
		return "", false
	}
	id, ok := o.deadActive[deadRef{dest: it.dest, instance: it.ev.InstanceID}.laneKey()]
	return id, ok
}

func (o *Outbox) forgetDeadLocked(id string, seq uint64) {
	if ref, ok := o.deadIdx[id]; ok && ref.seq == seq {
		delete(o.deadIdx, id)
		o.unblockLocked(ref)
		if o.deadCount[ref.dest]--; o.deadCount[ref.dest] <= 0 {
			delete(o.deadCount, ref.dest)
		}
	}
}

// loadDeadLetters indexes the dead-letter log. A dead letter whose
// notification is queued again (replayed just before a crash, or dead-lettered
// just before one) is dropped: the queued copy decides its fate.
func (o *Outbox) loadDeadLetters(ctx context.Context) error {
	err := o.dead.ReadAll(ctx, func(r store.Record) error {
		var dl DeadLetter
		if err := json.Unmarshal(r.Data, &dl); err != nil {
			o.log.Error("dead letter unreadable; skipped", "seq", r.Seq, "subject", r.Subject, "err", err)
			return nil
		}
		o.mu.Lock()
		o.setDeadLocked(deadRef{id: dl.ID, seq: r.Seq, dest: dl.Destination, instance: dl.Event.InstanceID, active: dl.Event.Status == event.StatusActive})
		o.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	o.mu.Lock()
	var requeued []string
	for id := range o.deadIdx {
		if o.byID[id] != nil {
			requeued = append(requeued, id)
		}
	}
	o.mu.Unlock()
	for _, id := range requeued {
		if err := o.deleteDead(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (o *Outbox) deleteDead(ctx context.Context, id string) error {
	// Claimed first, so that concurrent removals (a replay and the delivery
	// it led to) delete the message once.
	o.mu.Lock()
	ref, ok := o.deadIdx[id]
	if ok {
		o.forgetDeadLocked(id, ref.seq)
	}
	o.mu.Unlock()
	if !ok {
		return nil
	}
	err := o.dead.Delete(ctx, ref.seq)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		// Not found: replaced by a newer dead letter of the same id.
		return nil
	}
	o.mu.Lock()
	if _, again := o.deadIdx[id]; !again {
		o.setDeadLocked(ref)
	}
	o.mu.Unlock()
	return fmt.Errorf("removing dead letter %s: %w", id, err)
}

// dropStaleDeadLetter removes the dead letter of a notification that was
// just delivered: enqueued again with the same id (a re-dispatch after a
// crash), it no longer needs a replay.
func (o *Outbox) dropStaleDeadLetter(it *item) {
	o.mu.Lock()
	_, stale := o.deadIdx[it.id]
	o.mu.Unlock()
	if !stale {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := o.deleteDead(ctx, it.id); err != nil {
		o.log.Warn("removing the dead letter of a delivered notification", "id", it.id, "destination", it.dest, "err", err)
	}
}

// DeadLetters lists the dead letters, oldest first.
func (o *Outbox) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	out, _, err := o.DeadLetterPage(ctx, DeadLetterQuery{})
	return out, err
}

// ErrBadCursor is returned (wrapped) for a cursor DeadLetterPage did not
// give.
var ErrBadCursor = errors.New("bad dead-letter cursor")

// DeadLetterQuery selects a page of dead letters, oldest first.
type DeadLetterQuery struct {
	Destination string // "": every destination's
	Limit       int    // at most this many; 0: all of them
	Cursor      string // where the previous page ended (its next cursor)
}

// DeadLetterPage lists a page of dead letters, oldest first, and the
// cursor of the next page ("" on the last). A page reads only its own
// dead letters: the cursor is where the previous one ended in the log, so
// pages neither skip nor repeat one as others are replayed or added.
func (o *Outbox) DeadLetterPage(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, string, error) {
	after, err := parseDeadCursor(q.Cursor)
	if err != nil {
		return nil, "", err
	}
	refs := o.deadRefs(q.Destination)
	i, _ := slices.BinarySearchFunc(refs, after+1, func(r deadRef, seq uint64) int { return cmp.Compare(r.seq, seq) })
	refs = refs[i:]
	out := []DeadLetter{}
	for k, r := range refs {
		if q.Limit > 0 && len(out) == q.Limit {
			return out, store.SeqCursor('d', refs[k-1].seq), nil
		}
		dl, err := o.loadDead(ctx, r.seq)
		if errors.Is(err, ErrNotFound) {
			continue // replayed meanwhile
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, dl)
	}
	return out, "", nil
}

func parseDeadCursor(c string) (uint64, error) {
	seq, ok := store.ParseSeqCursor('d', c)
	if !ok {
		if len(c) > 64 {
			c = c[:64] + "…"
		}
		return 0, fmt.Errorf("%w: %q is not one a page of dead letters gave", ErrBadCursor, c)
	}
	return seq, nil
}

// DeadLetterCounts counts the dead letters per destination from the index,
// without reading them: for summaries (the console's overview).
func (o *Outbox) DeadLetterCounts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.deadCount)
}

// deadRefs snapshots the index in log order, for one destination or all.
func (o *Outbox) deadRefs(destination string) []deadRef {
	o.mu.Lock()
	refs := make([]deadRef, 0, len(o.deadIdx))
	for _, r := range o.deadIdx {
		if destination == "" || r.dest == destination {
			refs = append(refs, r)
		}
	}
	o.mu.Unlock()
	slices.SortFunc(refs, func(a, b deadRef) int { return cmp.Compare(a.seq, b.seq) })
	return refs
}

func (o *Outbox) loadDead(ctx context.Context, seq uint64) (DeadLetter, error) {
	var dl DeadLetter
	r, err := o.dead.Get(ctx, seq)
	if errors.Is(err, store.ErrNotFound) {
		return dl, fmt.Errorf("dead letter at sequence %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return dl, err
	}
	if err := json.Unmarshal(r.Data, &dl); err != nil {
		return dl, fmt.Errorf("dead letter at sequence %d is unreadable: %w", seq, err)
	}
	return dl, nil
}

// Replay queues a dead letter again, with the same webhook-id, a fresh
// attempt count and a fresh max_age clock, and removes it from the list.
func (o *Outbox) Replay(ctx context.Context, id string) error {
	// A notification is dead-lettered before it leaves the queue: until it
	// has, replaying would find it still queued and skip it, and the dead
	// letter would be gone with nothing left to deliver.
	var ref deadRef
	for {
		o.mu.Lock()
		var ok bool
		ref, ok = o.deadIdx[id]
		it := o.byID[id]
		var settled chan struct{}
		if ok && it != nil && it.state == itemPending && it.inFlight {
			if it.settled == nil {
				it.settled = make(chan struct{})
			}
			settled = it.settled
		}
		o.mu.Unlock()
		if !ok {
			return fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
		}
		if settled == nil {
			break
		}
		select {
		case <-settled:
		case <-ctx.Done():
			return fmt.Errorf("dead letter %s: its notification is still being dead-lettered: %w", id, ctx.Err())
		}
	}
	dl, err := o.loadDead(ctx, ref.seq)
	if err != nil {
		return fmt.Errorf("dead letter %s: %w", id, err)
	}
	o.mu.Lock()
	st := o.dests[dl.Destination]
	configured := st != nil && st.cfg != nil
	o.mu.Unlock()
	if !configured {
		return fmt.Errorf("dead letter %s: destination %q is not configured; replay it once the destination is back", id, dl.Destination)
	}
	// Told before it is queued: its first attempt may come at once.
	replay := history.Entry{At: o.clock.Now(), Kind: history.KindReplay, Status: dl.Event.Status, Destination: dl.Destination, Detail: id}
	o.hist.Record(dl.Event, replay)
	if err := o.enqueue(ctx, []*item{{id: dl.ID, dest: dl.Destination, ev: dl.Event, enqueuedAt: o.clock.Now()}}); err != nil {
		replay.At, replay.Detail = o.clock.Now(), fmt.Sprintf("%s: the replay failed, it stays a dead letter: %v", id, err)
		o.hist.Record(dl.Event, replay)
		return fmt.Errorf("replaying dead letter %s: %w", id, err)
	}
	// Once queued, the dead letter goes; if this fails, the next start
	// drops it because its notification is queued.
	if err := o.deleteDead(ctx, id); err != nil {
		return err
	}
	o.mu.Lock()
	log := o.destLocked(dl.Destination).log
	o.mu.Unlock()
	log.Info("dead letter replayed", "id", id, "event_id", dl.Event.EventID, "instance_id", dl.Event.InstanceID)
	return nil
}

// ReplayAll replays every dead letter of a destination ("" for all
// destinations) and returns how many were queued again. Dead letters of
// destinations no longer configured stay listed.
func (o *Outbox) ReplayAll(ctx context.Context, destination string) (int, error) {
	if destination != "" {
		o.mu.Lock()
		st := o.dests[destination]
		configured := st != nil && st.cfg != nil
		o.mu.Unlock()
		if !configured {
			return 0, fmt.Errorf("destination %q is not configured; replay its dead letters once it is back", destination)
		}
	}
	refs := o.deadRefs(destination)
	ids := make([]string, 0, len(refs))
	skipped := 0
	o.mu.Lock()
	for _, r := range refs {
		if st := o.dests[r.dest]; st == nil || st.cfg == nil {
			skipped++
			continue
		}
		ids = append(ids, r.id)
	}
	o.mu.Unlock()
	if skipped > 0 {
		o.log.Warn("dead letters of destinations no longer configured were not replayed", "count", skipped)
	}
	n := 0
	var errs []error
	for _, id := range ids {
		err := o.Replay(ctx, id)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrNotFound): // replayed concurrently
		default:
			errs = append(errs, err)
			if ctx.Err() != nil {
				return n, errors.Join(errs...)
			}
		}
	}
	return n, errors.Join(errs...)
}
