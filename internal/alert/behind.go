package alert

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// writeBehind holds the store writes that no transition waits for: after a
// batch is dispatched, its instances written to their own keys, then its
// journal entry deleted (journal.go).
//
// Writes land one at a time, in the order they were queued; a write of a
// key replaces one of the same key that has not started, so it only ever
// lands earlier. Hence a journal entry is deleted only once everything
// queued before it has landed. A write that fails is retried, holding up
// the ones behind it, until it succeeds or the writer drains; what is left
// then stays in the journal and is replayed at the next start.
type writeBehind struct {
	store Store
	log   *slog.Logger

	mu        sync.Mutex
	queue     []*behindWrite // oldest first
	byKey     map[string]*behindWrite
	idle      chan struct{} // non-nil while the writer runs; closed when it ends
	draining  chan struct{} // closed by drain: failed writes are not retried
	drainOnce sync.Once
}

type behindWrite struct {
	key     string
	value   []byte // nil deletes the key
	eventID string // the instance's, for the log
	device  string
	started bool
}

// Retry backoff of a failed write.
const (
	behindRetryInitial = 100 * time.Millisecond
	behindRetryMax     = 5 * time.Second
)

func newWriteBehind(store Store, log *slog.Logger) *writeBehind {
	return &writeBehind{store: store, log: log, byKey: map[string]*behindWrite{}, draining: make(chan struct{})}
}

// put queues a write of value under key; a nil value deletes the key.
func (w *writeBehind) put(key string, value []byte, eventID, device string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if q := w.byKey[key]; q != nil && !q.started {
		q.value = value
		return
	}
	q := &behindWrite{key: key, value: value, eventID: eventID, device: device}
	w.queue = append(w.queue, q)
	w.byKey[key] = q
	if w.idle == nil {
		w.idle = make(chan struct{})
		go w.run(w.idle)
	}
}

// queued reports whether a write of key is queued or under way.
func (w *writeBehind) queued(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byKey[key] != nil
}

// drain returns once every queued write has landed, or a write failed once
// more and the rest were left to the journal.
func (w *writeBehind) drain() {
	w.drainOnce.Do(func() { close(w.draining) })
	w.mu.Lock()
	idle := w.idle
	w.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// rearm undoes drain once it has returned, for a manager that runs again
// (a cluster node leading another term): failed writes are retried again.
func (w *writeBehind) rearm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.idle == nil {
		w.draining, w.drainOnce = make(chan struct{}), sync.Once{}
	}
}

func (w *writeBehind) run(idle chan struct{}) {
	defer close(idle)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.queue, w.idle = nil, nil
			w.mu.Unlock()
			return
		}
		q := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		q.started = true
		w.mu.Unlock()

		ok := w.writeRetrying(q)

		w.mu.Lock()
		if w.byKey[q.key] == q {
			delete(w.byKey, q.key)
		}
		if !ok {
			left := len(w.queue)
			clear(w.byKey)
			w.queue, w.idle = nil, nil
			w.mu.Unlock()
			w.log.Error("alert state writes abandoned while stopping; the alert journal keeps them for the next start", "left", left+1)
			return
		}
		w.mu.Unlock()
	}
}

// writeRetrying writes q until it succeeds (true) or fails while draining.
// It logs the first failure and the recovery, not every retry.
func (w *writeBehind) writeRetrying(q *behindWrite) bool {
	w.mu.Lock()
	draining := w.draining
	w.mu.Unlock()
	delay := behindRetryInitial
	for attempt := 1; ; attempt++ {
		err := w.write(q)
		if err == nil {
			if attempt > 1 {
				w.log.Info("alert state write succeeded after failures", "event_id", q.eventID, "device", q.device, "key", q.key, "attempts", attempt)
			}
			return true
		}
		if attempt == 1 {
			w.log.Error("alert state write failed; retrying, later writes wait", "event_id", q.eventID, "device", q.device, "key", q.key, "err", err)
		}
		select {
		case <-draining:
			return false
		case <-time.After(delay):
		}
		delay = min(2*delay, behindRetryMax)
	}
}

func (w *writeBehind) write(q *behindWrite) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if q.value == nil {
		return w.store.Delete(ctx, q.key)
	}
	return w.store.Put(ctx, q.key, q.value)
}
