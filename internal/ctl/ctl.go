// Package ctl is the command line's side of the commands that act on a
// running daemon through its API (`nocbridge dlq`, `nocbridge silence`):
// flags become requests, answers become tables or JSON. The daemon holds
// the store; these never open it.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/httpapi"
	"github.com/nocbridge/nocbridge/internal/mute"
)

// ErrUsage marks a command-line mistake or a request the daemon refused
// (exit code 1).
var ErrUsage = errors.New("usage")

// DeadLetters lists (all of them) or replays dead letters through the
// running daemon's API (the daemon holds the store).
func DeadLetters(ctx context.Context, path, action, id, destination string, out io.Writer) error {
	return DLQ(ctx, path, DLQCommand{Action: action, ID: id, Destination: destination}, out, io.Discard)
}

// DLQCommand is one `nocbridge dlq list|replay`.
type DLQCommand struct {
	Action      string // list | replay
	ID          string // replay only this one
	Destination string // list or replay only this destination's
	// list: a page of at most Limit (0: all of them), from Cursor.
	Limit  int
	Cursor string
}

// DLQ lists or replays dead letters through the running daemon's API.
// list writes the API's JSON array to out; when a next page exists, the
// command that lists it goes to info (stderr), so out stays one JSON
// document.
func DLQ(ctx context.Context, path string, c DLQCommand, out, info io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	client := httpapi.NewClient(cfg)
	var b []byte
	switch c.Action {
	case "list", "":
		if c.Limit < 0 {
			return fmt.Errorf("%w: dlq list --limit %d: want a positive number (0: all of them)", ErrUsage, c.Limit)
		}
		q := url.Values{}
		if c.Destination != "" {
			q.Set("destination", c.Destination)
		}
		if c.Limit > 0 {
			q.Set("limit", strconv.Itoa(c.Limit))
		}
		if c.Cursor != "" {
			q.Set("cursor", c.Cursor)
		}
		var hdr http.Header
		b, hdr, err = client.Get(ctx, "/api/v1/deadletters?"+q.Encode())
		if apiErr, ok := errors.AsType[*httpapi.APIError](err); ok && apiErr.Status == http.StatusBadRequest {
			return refused{err}
		}
		if next := hdr.Get("X-Next-Cursor"); err == nil && next != "" {
			more := ""
			if c.Destination != "" {
				more = " --destination " + c.Destination
			}
			defer fmt.Fprintf(info, "next page: nocbridge dlq list%s --limit %d --cursor %s\n", more, c.Limit, next)
		}
	case "replay":
		b, err = client.Call(ctx, http.MethodPost, "/api/v1/deadletters/replay", map[string]string{"id": c.ID, "destination": c.Destination})
	default:
		return fmt.Errorf("%w: dlq %q: want list or replay", ErrUsage, c.Action)
	}
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// SilenceCommand is one `nocbridge silence add|list|expire`.
type SilenceCommand struct {
	Action string // add | list | expire
	ID     string // expire
	// add: what to silence, from when, until when, and why.
	Match        config.Match
	For          time.Duration
	Until, Start string // RFC 3339; empty when not given
	Comment      string
	CreatedBy    string
	// list: a table for people rather than the API's JSON.
	Table bool
}

// Silence adds, lists or expires silences through the running daemon's API
// (the daemon holds the store).
func Silence(ctx context.Context, path string, c SilenceCommand, out io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	client := httpapi.NewClient(cfg)
	switch c.Action {
	case "add":
		n, err := c.newSilence()
		if err != nil {
			return err
		}
		var sl mute.Silence
		if err := callJSON(ctx, client, http.MethodPost, "/api/v1/silences", n, &sl); err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, sl.ID) // alone, for scripts: id=$(nocbridge silence add …)
		return err
	case "list", "":
		b, err := client.Call(ctx, http.MethodGet, "/api/v1/silences", nil)
		if err != nil {
			return err
		}
		if !c.Table {
			_, err = out.Write(b)
			return err
		}
		var list []mute.Silence
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("reading the daemon's answer: %w", err)
		}
		return silenceTable(out, list)
	case "expire":
		if c.ID == "" {
			return fmt.Errorf("%w: silence expire needs the silence's ID", ErrUsage)
		}
		var sl mute.Silence
		if err := callJSON(ctx, client, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(c.ID), nil, &sl); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "silence %s expired at %s\n", sl.ID, sl.EndsAt.Local().Format(time.RFC3339))
		return err
	}
	return fmt.Errorf("%w: silence %q: want add, list or expire", ErrUsage, c.Action)
}

// newSilence is the request an `add` makes; flag mistakes are ErrUsage.
func (c SilenceCommand) newSilence() (mute.NewSilence, error) {
	n := mute.NewSilence{Match: c.Match, Duration: mute.Duration(c.For), Comment: c.Comment, CreatedBy: c.CreatedBy}
	switch {
	case c.Match.Empty():
		return n, fmt.Errorf("%w: say what to silence: --device, --site, --role, --label or --event-id (--device '*' is every device)", ErrUsage)
	case (c.For != 0) == (c.Until != ""):
		return n, fmt.Errorf("%w: give --for or --until, one of them", ErrUsage)
	}
	for _, t := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--until", c.Until, &n.EndsAt}, {"--start", c.Start, &n.StartsAt}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return n, fmt.Errorf("%w: %s %q: want an RFC 3339 time such as 2026-12-12T22:00:00+01:00", ErrUsage, t.flag, t.v)
		}
		*t.dst = v
	}
	return n, nil
}

// callJSON calls the API and decodes its answer into out. An answer the API
// refused (4xx) is the user's mistake: exit code 1.
func callJSON(ctx context.Context, c *httpapi.Client, method, path string, body, out any) error {
	b, err := c.Call(ctx, method, path, body)
	if apiErr, ok := errors.AsType[*httpapi.APIError](err); ok && apiErr.Status/100 == 4 {
		return refused{err}
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	return nil
}

// refused is a request the daemon turned down; it counts as ErrUsage.
type refused struct{ error }

func (r refused) Unwrap() []error { return []error{r.error, ErrUsage} }

// silenceTable writes silences as aligned columns, times in local time.
func silenceTable(out io.Writer, list []mute.Silence) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSTARTS\tENDS\tMATCH\tCREATED BY\tCOMMENT")
	const at = "2006-01-02 15:04 MST"
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, s.StartsAt.Local().Format(at), s.EndsAt.Local().Format(at),
			s.Match, s.CreatedBy, strings.ReplaceAll(s.Comment, "\n", " "))
	}
	return tw.Flush()
}
