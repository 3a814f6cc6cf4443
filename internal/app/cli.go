package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// ErrUsage marks a command-line mistake (exit code 1).
var ErrUsage = ctl.ErrUsage

// TestNotify sends one sample event to one destination through its real
// notifier and prints the outcome.
func TestNotify(ctx context.Context, path, version, destination, eventID string, out io.Writer) error {
	gen, err := load(path, version, slog.Default(), nil)
	if err != nil {
		return err
	}
	defer gen.notifiers.Close(slog.Default())
	n, ok := gen.notifiers[destination]
	if !ok {
		return fmt.Errorf("%w: no destination %q in %s", ErrUsage, destination, path)
	}
	var timeout time.Duration
	for _, d := range gen.destinations {
		if d.Name == destination {
			timeout = d.Timeout
		}
	}
	ev := event.Sample(eventID, time.Now())
	id := ev.NotificationID(destination)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err = n.Send(ctx, notify.Notification{ID: id, Event: ev, Attempt: 1})
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		kind := "permanent: the outbox would dead-letter it"
		if notify.Retryable(err) {
			kind = "retryable: the outbox would retry it"
		}
		fmt.Fprintf(out, "%s: FAILED after %v (%s): %v\n", destination, took, kind, err)
		return fmt.Errorf("test notification to %s failed", destination)
	}
	fmt.Fprintf(out, "%s: delivered %s (webhook-id %s) in %v\n", destination, ev.EventID, id, took)
	return nil
}
