package schedule

import (
	"log/slog"
	"sync"
)

// Latest hands a running scheduler the newest list of targets: Set may be
// called at any time (a config reload), and the scheduler reads the list
// with Take after Changed fires. Intermediate lists are skipped, never
// queued. The zero value is ready to use.
type Latest[C any] struct {
	mu      sync.Mutex
	list    []C
	changed chan struct{} // capacity 1: one pending notice
}

func (l *Latest[C]) ch() chan struct{} {
	if l.changed == nil {
		l.changed = make(chan struct{}, 1)
	}
	return l.changed
}

// Set replaces the list (the caller hands it over) and notifies.
func (l *Latest[C]) Set(list []C) {
	l.mu.Lock()
	l.list = list
	ch := l.ch()
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default: // a notice is already pending; it will pick up this list
	}
}

// Take returns the newest list and clears a pending notice: what it
// returns is already the newest.
func (l *Latest[C]) Take() []C {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.ch():
	default:
	}
	return l.list
}

// Changed fires once after one or more Sets.
func (l *Latest[C]) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ch()
}

// Reconciler brings a scheduler's running targets (by device name) in line
// with a new target list, keeping unchanged targets as they are, so their
// schedule and what they learned survive a reload.
type Reconciler[C, T any] struct {
	Kind string // "ICMP", "SNMP": for log lines
	Name func(C) string
	// Same reports whether running can go on under want's settings; it may
	// take over what a reload renews in place (the inventory record).
	Same  func(running T, want C) bool
	Start func(C) T // builds and schedules a new target
	Stop  func(T)   // unschedules a target that is replaced or removed
	Log   *slog.Logger
}

// Apply reconciles running with want; the first of duplicate names wins.
func (r Reconciler[C, T]) Apply(running map[string]T, want []C) {
	keep := make(map[string]bool, len(want))
	var added, changed, removed int
	for _, c := range want {
		name := r.Name(c)
		if keep[name] {
			r.Log.Warn("duplicate "+r.Kind+" target ignored; the first one is used", "device", name)
			continue
		}
		keep[name] = true
		if old, ok := running[name]; ok {
			if r.Same(old, c) {
				continue
			}
			r.Stop(old)
			changed++
		} else {
			added++
		}
		running[name] = r.Start(c)
	}
	for name, t := range running {
		if !keep[name] {
			r.Stop(t)
			delete(running, name)
			removed++
		}
	}
	if added+changed+removed > 0 {
		r.Log.Info(r.Kind+" targets updated", "targets", len(running), "added", added, "changed", changed, "removed", removed)
	}
}
