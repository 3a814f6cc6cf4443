package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s", 30 * time.Second: "30s",
		90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s",
	} {
		if got := notify.ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDigestID(t *testing.T) {
	a := notify.DigestID([]string{"msg_1", "msg_2"})
	if a != notify.DigestID([]string{"msg_1", "msg_2"}) || !strings.HasPrefix(a, "dig_") || len(a) != 36 {
		t.Fatalf("DigestID = %q: want stable, dig_ and 32 hex digits", a)
	}
	for _, other := range [][]string{{"msg_2", "msg_1"}, {"msg_1"}, {"msg_1msg_2"}} {
		if notify.DigestID(other) == a {
			t.Errorf("DigestID(%v) equals DigestID(msg_1, msg_2)", other)
		}
	}
}

func TestDigestView(t *testing.T) {
	d := notifytest.Digest(60)
	v := notify.NewDigestView(d, notify.DefaultDigest, "http://nb:9720/")
	if !v.Latest.Equal(d.Notifications[59].Event.Timestamp) || v.ID != d.ID {
		t.Errorf("latest %v, id %s; want the last notification's time and the digest's id", v.Latest, v.ID)
	}
	if empty := notify.NewDigestView(notify.Digest{}, notify.DefaultDigest, ""); !empty.Latest.IsZero() || len(empty.Entries) != 0 {
		t.Errorf("an empty digest's view: %+v", empty)
	}
	if v.Title != "60 more: past this room's limit of 10 notifications per 1m" || v.ListURL != "http://nb:9720/api/v1/alerts" {
		t.Errorf("title %q, list %q", v.Title, v.ListURL)
	}
	if len(v.Entries) != notify.MaxDigestEntries {
		t.Fatalf("%d entries, want %d", len(v.Entries), notify.MaxDigestEntries)
	}
	e := v.Entries[3]
	if e.Status != event.StatusResolved || e.Priority != "P4" || e.Device != "acc-sw04 (10.0.1.4)" || e.URL != "http://nb:9720/alerts/00000000-0000-4000-8000-000000000004" {
		t.Errorf("entry %+v", e)
	}
	if got := e.Markdown(strings.ToUpper); got != "✅ **P4** resolved · [POWER SUPPLY FAILED](http://nb:9720/alerts/00000000-0000-4000-8000-000000000004) · ACC-SW04 (10.0.1.4)" {
		t.Errorf("Markdown = %q", got)
	}
	long := notify.NewDigestView(notifytest.LongDigest(1, strings.Repeat("x", 500)), notify.DefaultDigest, "")
	if n := len([]rune(long.Entries[0].Name)); n != 100 {
		t.Errorf("a 500-character name takes %d characters of a digest line, want 100", n)
	}

	// Every name is 20 bytes: 10 lines, "+50" and 10 newlines take 213.
	v = notify.NewDigestView(notifytest.LongDigest(60, strings.Repeat("n", 20)), notify.DefaultDigest, "")
	plain := func(e notify.DigestEntry) string { return e.Name }
	more := func(n int) string { return fmt.Sprintf("+%d", n) }
	size := func(s string) int { return len(s) }
	lines := v.Lines(0, size, plain, more)
	if len(lines) != 51 || lines[50] != "+10" {
		t.Fatalf("unbounded: %d lines ending %q; want 50 and +10", len(lines), lines[len(lines)-1])
	}
	if lines = v.Lines(213, size, plain, more); len(lines) != 11 || lines[10] != "+50" {
		t.Fatalf("budget 213: %d lines ending %q; want 10 and +50", len(lines), lines[len(lines)-1])
	}
	if lines = v.Lines(212, size, plain, more); len(lines) != 10 || lines[9] != "+51" {
		t.Fatalf("budget 212: %d lines ending %q; want 9 and +51", len(lines), lines[len(lines)-1])
	}
	small := notify.NewDigestView(notifytest.LongDigest(3, strings.Repeat("n", 20)), notify.DefaultDigest, "")
	if lines := small.Lines(3*21-1, size, plain, more); len(lines) != 3 {
		t.Errorf("3 lines that fit exactly: got %v", lines)
	}
	if lines := small.Lines(3*21-2, size, plain, more); len(lines) != 3 || lines[2] != "+1" {
		t.Errorf("3 lines one byte short: got %v; want two and +1", lines)
	}
}

type digestingNotifier struct{ p notify.DigestPolicy }

func (digestingNotifier) Send(context.Context, notify.Notification) error { return nil }
func (n digestingNotifier) DigestPolicy() notify.DigestPolicy             { return n.p }
func (digestingNotifier) SendDigest(context.Context, notify.Digest) error {
	return nil
}

type plainNotifier struct{}

func (plainNotifier) Send(context.Context, notify.Notification) error { return nil }

func TestDigesterOf(t *testing.T) {
	if notify.DigesterOf(plainNotifier{}) != nil {
		t.Error("a notifier without SendDigest digests")
	}
	if notify.DigesterOf(digestingNotifier{}) != nil {
		t.Error("a digester whose policy is off digests")
	}
	if notify.DigesterOf(digestingNotifier{p: notify.DefaultDigest}) == nil {
		t.Error("a digester with the default policy does not digest")
	}
}
