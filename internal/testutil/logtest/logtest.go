// Package logtest captures what a component logs, for tests to read.
package logtest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Logs collects log output; safe for concurrent use (slog writes from many
// goroutines).
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TextLogger logs into l as text, at every level.
func (l *Logs) TextLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// JSONLogger logs into l as JSON lines, at every level.
func (l *Logs) JSONLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
