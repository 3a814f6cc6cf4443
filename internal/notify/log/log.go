// Package lognotify is the `log` destination: one JSON line per notification,
// on stdout or appended to a file.
package lognotify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var _ notify.Notifier = (*Notifier)(nil)

// Notifier writes notifications as JSON lines.
type Notifier struct {
	name        string
	externalURL string
	path        string // "" for stdout

	mu   sync.Mutex
	w    io.Writer // nil until first use when writing to a file
	file *os.File
}

// Line is one log line.
type Line struct {
	WebhookID   string            `json:"webhook_id"`
	Destination string            `json:"destination"`
	Status      event.Status      `json:"status"`
	Payload     event.DNACPayload `json:"payload"`
}

// New builds a log notifier. The file is opened on the first notification,
// so `nocbridge check` never creates files; its folder must exist already.
func New(d config.Destination, env notify.Env) (notify.Notifier, error) {
	var cfg Config
	if err := notify.DecodeConfig(env, d, &cfg); err != nil {
		return nil, err
	}
	n := &Notifier{name: d.Name, externalURL: env.ExternalURL}
	switch cfg.Path {
	case "", "-", "/dev/stdout":
		n.w = os.Stdout
	default:
		p := cfg.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(env.BaseDir, p)
		}
		if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
			return nil, config.Errors{notify.ConfigError(env, d, "path", "path %s: folder %s does not exist", p, filepath.Dir(p))}
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return nil, config.Errors{notify.ConfigError(env, d, "path", "path %s is a folder", p)}
		}
		n.path = p
	}
	return n, nil
}

// Send writes one line with a single write call under the mutex, so lines
// from concurrent deliveries never interleave (and with O_APPEND, nor do
// lines from other processes appending to the same file).
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	if err := ctx.Err(); err != nil {
		return &notify.Error{Retryable: true, Reason: "log " + n.target(), Err: err}
	}
	b, err := json.Marshal(Line{
		WebhookID:   nt.ID,
		Destination: n.name,
		Status:      nt.Event.Status,
		Payload:     nt.Event.DNAC(n.externalURL),
	})
	if err != nil {
		return &notify.Error{Reason: "encoding log line", Err: err}
	}
	b = append(b, '\n')

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.w == nil {
		f, err := os.OpenFile(n.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return &notify.Error{Retryable: true, Reason: "opening " + n.target(), Err: err}
		}
		n.file, n.w = f, f
	}
	if _, err := n.w.Write(b); err != nil {
		// Reopen on the next attempt: the file may have been removed or its
		// disk remounted.
		if n.file != nil {
			_ = n.file.Close()
			n.file, n.w = nil, nil
		}
		return &notify.Error{Retryable: true, Reason: "writing " + n.target(), Err: err}
	}
	return nil
}

func (n *Notifier) target() string {
	if n.path == "" {
		return "stdout"
	}
	return n.path
}

// Close closes the file, if one was opened. Sends after Close reopen it.
func (n *Notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.file == nil {
		return nil
	}
	err := n.file.Close()
	n.file, n.w = nil, nil
	if err != nil {
		return fmt.Errorf("closing log destination %s: %w", n.path, err)
	}
	return nil
}
