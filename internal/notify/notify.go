// Package notify defines what a destination type implements. Retries live in
// the outbox only: a Notifier makes one attempt and classifies its failure.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
)

// Notification is one event addressed to one destination.
type Notification struct {
	// ID is the webhook-id: identical on every attempt and after restarts.
	ID    string
	Event event.Event
	// Attempt counts from 1.
	Attempt int
}

// Notifier renders and sends one notification, once.
type Notifier interface {
	Send(ctx context.Context, n Notification) error
}

// Editor is a Notifier that edits the message it posted for an alert when
// the same active comes again (Slack in bot mode): it gets the updates of
// an alert's details (event.Event.Update).
type Editor interface {
	EditsMessages() bool
}

// Error is a classified delivery failure.
type Error struct {
	Retryable bool
	// RetryAfter is the delay the service asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Status is the HTTP status, 0 when there was no response.
	Status int
	// Reason is what goes into the dead letter: status and the service's own
	// error text, never a secret.
	Reason string
	Err    error
}

// Error is the reason and its cause, scrubbed and cut by the zero
// Redactor: reasons are scrubbed of the destination's secrets where they
// are made, and this keeps credential-looking text an unclassified cause
// may carry out of deliveries, dead letters and logs too.
func (e *Error) Error() string {
	s := e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return Redactor{}.Redact(s)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether err may succeed on a later attempt. Unclassified
// errors (network failures, timeouts) are retryable.
func Retryable(err error) bool {
	var ne *Error
	if errors.As(err, &ne) {
		return ne.Retryable
	}
	return err != nil
}

// RetryAfter returns the delay a service asked for, or 0.
func RetryAfter(err error) time.Duration {
	var ne *Error
	if errors.As(err, &ne) {
		return ne.RetryAfter
	}
	return 0
}

// RetryableStatus is SPEC 6: 408, 425, 429 and 5xx are retried.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly ||
		code == http.StatusTooManyRequests || code >= 500
}

// AnswerError classifies a non-2xx answer: reason
// "<target>: HTTP <code>[: <text>]" (text is the service's explanation or
// its body), scrubbed by r, retryable per SPEC 6, after retryAfter.
func AnswerError(target string, code int, text string, retryAfter time.Duration, r Redactor) *Error {
	reason := fmt.Sprintf("HTTP %d", code)
	if target != "" {
		reason = target + ": " + reason
	}
	if text = strings.TrimSpace(text); text != "" {
		reason += ": " + text
	}
	return &Error{
		Retryable:  RetryableStatus(code),
		RetryAfter: retryAfter,
		Status:     code,
		Reason:     r.Redact(reason),
	}
}

// StatusError is AnswerError for a receiver without secrets (and tests):
// reason "HTTP <code>[: <body>]".
func StatusError(code int, body []byte, retryAfter time.Duration) *Error {
	return AnswerError("", code, string(body), retryAfter, Redactor{})
}

// Env is what the core hands a destination type when building a notifier.
type Env struct {
	ExternalURL string
	UserAgent   string
	Logger      *slog.Logger
	// ConfigFile is the file the destination was declared in, for
	// FILE:LINE errors; BaseDir resolves relative paths (secrets, templates).
	ConfigFile string
	BaseDir    string
	// HTTPClient honours the destination's timeout, tls and proxy_url.
	HTTPClient *http.Client
	// State keeps small per-destination values across restarts (for
	// example Slack message timestamps per instance id).
	State StateStore
	// Warnings collects the risky settings a type finds (ConfigCheck.Warn);
	// nil drops them.
	Warnings *config.Warnings
}

// StateStore is a small durable key/value space scoped to one destination.
type StateStore interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// Factory builds a notifier from a destination's config. Config errors are
// returned as config.Errors so they carry file and line.
type Factory func(d config.Destination, env Env) (Notifier, error)
