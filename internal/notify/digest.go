package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
)

// DigestPolicy is a chat destination's `digest` (SPEC 11.5): at most After
// notifications per Window go out one by one, the rest of that window as
// one digest at its end. The zero value is off.
type DigestPolicy struct {
	After  int
	Window time.Duration
}

// DefaultDigest is the policy of a chat destination without a `digest` key.
var DefaultDigest = DigestPolicy{After: 10, Window: time.Minute}

// On reports whether the policy digests at all.
func (p DigestPolicy) On() bool { return p.After > 0 && p.Window > 0 }

// String is "10 per 1m".
func (p DigestPolicy) String() string {
	return fmt.Sprintf("%d per %s", p.After, ShortDuration(p.Window))
}

// Digest is notifications sent as one message. The outbox decides what goes
// into one; a Digester only renders and sends it.
type Digest struct {
	// ID is stable for the same notifications: identical on every attempt
	// and usable as an idempotency key.
	ID string
	// Notifications are in delivery order: an alert's active before its
	// resolve.
	Notifications []Notification
	// Attempt counts from 1.
	Attempt int
}

// DigestID derives a digest's id from the webhook-ids it carries, in order.
func DigestID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "dig_" + hex.EncodeToString(h.Sum(nil))[:32]
}

// Digester is a Notifier that can fold a storm into digests: the chat types.
type Digester interface {
	Notifier
	// DigestPolicy is the destination's policy; off when its config says
	// `digest: false`.
	DigestPolicy() DigestPolicy
	// SendDigest makes one attempt, its failure classified as Send's.
	SendDigest(ctx context.Context, d Digest) error
}

// DigesterOf is n as a Digester when n digests: nil for types that never
// do (tickets, webhooks, log) and for a policy that is off.
func DigesterOf(n Notifier) Digester {
	if d, ok := n.(Digester); ok && d.DigestPolicy().On() {
		return d
	}
	return nil
}

// TakesDigest, embedded in a type's Config with the tag `yaml:"-"`, lets
// the type take the `digest` key (the chat types), which ConfigCheck.Digest
// reads. Every other type refuses the key as unknown.
type TakesDigest struct{}

func (TakesDigest) takesDigest() {}

// digestKeys is the mapping form of `digest`.
type digestKeys struct {
	After  *int             `yaml:"after"`
	Window *config.Duration `yaml:"window"`
}

// Digest checks the destination's `digest`: absent or true for the
// default, false for off, or a mapping {after, window} whose missing keys
// take the default. Problems are recorded at their line.
func (c *ConfigCheck) Digest() DigestPolicy {
	p := DefaultDigest
	n := valueNode(c.d.Node, "digest")
	switch {
	case n == nil || n.ShortTag() == "!!null":
	case n.ShortTag() == "!!bool":
		if on := true; n.Decode(&on) == nil && !on {
			return DigestPolicy{}
		}
	case n.Kind == yaml.MappingNode:
		var k digestKeys
		s := config.Strict{File: c.env.ConfigFile, Prefix: fmt.Sprintf("destination %q: digest: ", c.d.Name)}
		if errs := s.Decode(n, &k); len(errs) > 0 {
			c.errs = append(c.errs, errs...)
			return p
		}
		if k.After != nil {
			if p.After = *k.After; p.After < 1 {
				c.Bad("digest.after", "digest: after must be at least 1 (notifications sent one by one per window)")
			}
		}
		if k.Window != nil {
			if p.Window = k.Window.D(); p.Window < time.Second {
				c.Bad("digest.window", "digest: window must be at least 1s")
			}
		}
	default:
		c.Bad("digest", "digest must be a mapping {after: 10, window: 1m} or false")
	}
	return p
}

// ShortDuration is d without Go's trailing zero units: "1m", "1h30m", "90s"
// stays "1m30s".
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MaxDigestEntries is how many alerts a digest lists; the rest are counted
// and linked to nocbridge's alert list.
const MaxDigestEntries = 50

// maxEntryText bounds a name or device in a digest line, so one long name
// cannot crowd the others out of a size-limited message.
const maxEntryText = 100

// DigestEntry is one notification's line in a digest, before a type's
// markup and escaping.
type DigestEntry struct {
	Status   event.Status
	Severity int
	Priority string // "P1"
	Name     string
	Device   string
	URL      string // the alert's link
}

// DigestView is what every chat type renders for a digest.
type DigestView struct {
	ID string
	// Title is "37 more: past this room's limit of 10 notifications per 1m".
	Title   string
	Entries []DigestEntry // at most MaxDigestEntries
	// ListURL is nocbridge's alert list, linked for what is not listed.
	ListURL string
	// Latest is the time of the digest's last notification.
	Latest time.Time
	total  int
}

// NewDigestView lays out d for destination policy p.
func NewDigestView(d Digest, p DigestPolicy, externalURL string) DigestView {
	v := DigestView{
		ID:      d.ID,
		Title:   fmt.Sprintf("%d more: past this room's limit of %d notifications per %s", len(d.Notifications), p.After, ShortDuration(p.Window)),
		ListURL: strings.TrimRight(externalURL, "/") + "/api/v1/alerts",
		total:   len(d.Notifications),
	}
	if n := len(d.Notifications); n > 0 {
		v.Latest = d.Notifications[n-1].Event.Timestamp
	}
	for _, nt := range d.Notifications[:min(len(d.Notifications), MaxDigestEntries)] {
		ev := nt.Event
		v.Entries = append(v.Entries, DigestEntry{
			Status: ev.Status, Severity: ev.Severity, Priority: ev.Priority(),
			Name:   Truncate(OneLine(ev.GenericName()), maxEntryText), // the device follows
			Device: Truncate(OneLine(DeviceLabel(ev.Device)), maxEntryText),
			URL:    ev.AlertURL(externalURL),
		})
	}
	return v
}

// Lines renders the entries with line, one a line, as many as fit in
// budget as size measures them (a newline between lines counts one);
// budget <= 0 is no limit. When any entry is left out, the last line is
// more(n) for the n left out, and fits too.
func (v DigestView) Lines(budget int, size func(string) int, line func(DigestEntry) string, more func(n int) string) []string {
	lines := make([]string, len(v.Entries))
	for i, e := range v.Entries {
		lines[i] = line(e)
	}
	for k := len(lines); k >= 0; k-- {
		out := lines[:k:k]
		if left := v.total - k; left > 0 {
			out = append(out, more(left))
		}
		used := len(out) - 1 // the newlines
		for _, l := range out {
			used += size(l)
		}
		if budget <= 0 || used <= budget {
			return out
		}
	}
	return nil
}

// Markdown is the entry's line in markdown (Discord, Webex, Teams):
// "🔴 **P1** active · [Device unreachable](…) · core-sw1 (10.0.0.1)", name
// and device passed through esc.
func (e DigestEntry) Markdown(esc func(string) string) string {
	return fmt.Sprintf("%s **%s** %s · [%s](%s) · %s", StatusEmoji(e.Severity, e.Status), e.Priority, e.Status, esc(e.Name), e.URL, esc(e.Device))
}

// MarkdownMore is the line for the left entries not listed, in markdown.
func (v DigestView) MarkdownMore(left int) string {
	return fmt.Sprintf("… and %d more: [alert list](%s)", left, v.ListURL)
}
