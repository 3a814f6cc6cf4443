package schedule

import (
	"container/heap"
	"time"
)

// Due is what a Queue orders an element by. Embed it in the element
// (a pointer type) to make it queueable; its zero value is "not queued".
type Due struct {
	at  time.Time
	idx int // position in the queue plus one; 0 when not queued
}

// At is when the element falls due (as last queued).
func (d *Due) At() time.Time { return d.at }

// Queued reports whether the element is in a queue.
func (d *Due) Queued() bool { return d.idx > 0 }

func (d *Due) due() *Due { return d }

// Timed is satisfied by pointers to structs that embed Due.
type Timed interface{ due() *Due }

// Queue is a min-heap of elements by due time, with O(log n) insertion,
// rescheduling and removal: the one timer heap of the ICMP and SNMP
// schedulers and the outbox. It is not safe for concurrent use.
type Queue[T Timed] struct{ h elems[T] }

// Len is the number of queued elements.
func (q *Queue[T]) Len() int { return len(q.h) }

// Set queues x to fall due at at, or moves it there if it is queued.
func (q *Queue[T]) Set(x T, at time.Time) {
	d := x.due()
	d.at = at
	if d.idx > 0 {
		heap.Fix(&q.h, d.idx-1)
		return
	}
	heap.Push(&q.h, x)
}

// Remove takes x out of the queue; it does nothing if x is not queued.
func (q *Queue[T]) Remove(x T) {
	if d := x.due(); d.idx > 0 {
		heap.Remove(&q.h, d.idx-1)
	}
}

// Peek returns the element due first.
func (q *Queue[T]) Peek() (T, bool) {
	if len(q.h) == 0 {
		var zero T
		return zero, false
	}
	return q.h[0], true
}

// Next is when the first element falls due; false when the queue is empty.
func (q *Queue[T]) Next() (time.Time, bool) {
	if len(q.h) == 0 {
		return time.Time{}, false
	}
	return q.h[0].due().at, true
}

// PopDue removes and returns the first element if it is due at now.
func (q *Queue[T]) PopDue(now time.Time) (T, bool) {
	if len(q.h) == 0 || q.h[0].due().at.After(now) {
		var zero T
		return zero, false
	}
	return heap.Pop(&q.h).(T), true
}

// elems implements heap.Interface and keeps each element's index.
type elems[T Timed] []T

func (h elems[T]) Len() int           { return len(h) }
func (h elems[T]) Less(i, j int) bool { return h[i].due().at.Before(h[j].due().at) }
func (h elems[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].due().idx, h[j].due().idx = i+1, j+1
}

func (h *elems[T]) Push(x any) {
	t := x.(T)
	*h = append(*h, t)
	t.due().idx = len(*h)
}

func (h *elems[T]) Pop() any {
	old := *h
	t := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	t.due().idx = 0
	return t
}
