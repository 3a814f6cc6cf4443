// Package lograte keeps repeated log lines from flooding the journal: one
// line per key per interval, the next one saying how many were left out.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter lets one line per key through per interval. Its methods are safe
// for concurrent use.
type Limiter struct {
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex
	last     map[string]time.Time
	skipped  map[string]int
}

// New makes a Limiter.
func New(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, now: time.Now, last: map[string]time.Time{}, skipped: map[string]int{}}
}

// Log logs msg unless a line of key went out less than the interval ago;
// the next line that goes out carries "suppressed": how many did not.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		l.skipped[key]++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped[key]
	l.last[key] = now
	delete(l.skipped, key)
	if len(l.last) > 1024 { // keys are bounded in practice; stay bounded anyway
		clear(l.last)
	}
	l.mu.Unlock()
	if skipped > 0 {
		args = append(args, "suppressed", skipped)
	}
	log.Log(context.Background(), level, msg, args...)
}
