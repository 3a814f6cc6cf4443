package notify

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

// chatConfig takes `digest` like the chat types; plainConfig does not.
type chatConfig struct {
	URL         string `yaml:"url"`
	TakesDigest `yaml:"-"`
}

type plainConfig struct {
	URL string `yaml:"url"`
}

func TestConfigCheckDigest(t *testing.T) {
	env := Env{ConfigFile: "nocbridge.yaml"}
	for _, tc := range []struct {
		name string
		yaml string
		want DigestPolicy
		errs []string // each at its line, in order
	}{
		{name: "absent: the default", yaml: "url: x\n", want: DigestPolicy{After: 10, Window: time.Minute}},
		{name: "empty: the default", yaml: "digest:\n", want: DefaultDigest},
		{name: "true: the default", yaml: "digest: true\n", want: DefaultDigest},
		{name: "false: off", yaml: "digest: false\n", want: DigestPolicy{}},
		{name: "both keys", yaml: "digest: {after: 3, window: 30s}\n", want: DigestPolicy{After: 3, Window: 30 * time.Second}},
		{name: "one key, the other default", yaml: "digest:\n  window: 5m\n", want: DigestPolicy{After: 10, Window: 5 * time.Minute}},
		{name: "merged", yaml: "base: &b {digest: {after: 2}}\n<<: *b\n", want: DigestPolicy{After: 2, Window: time.Minute}},
		{name: "a string", yaml: "digest: off\n", want: DefaultDigest,
			errs: []string{`nocbridge.yaml:1: destination "d1": digest must be a mapping {after: 10, window: 1m} or false`}},
		{name: "unknown key", yaml: "digest:\n  after: 3\n  windw: 1m\n", want: DefaultDigest,
			errs: []string{`nocbridge.yaml:3: destination "d1": digest: unknown key "windw" (known: after, window)`}},
		{name: "wrong kinds", yaml: "digest:\n  after: ten\n  window: 60\n", want: DefaultDigest,
			errs: []string{
				`nocbridge.yaml:2: destination "d1": digest: after must be an integer, not a string`,
				`nocbridge.yaml:3: destination "d1": digest: window: invalid duration`,
			}},
		{name: "out of range", yaml: "digest:\n  after: 0\n  window: 10ms\n", want: DigestPolicy{After: 0, Window: 10 * time.Millisecond},
			errs: []string{
				`nocbridge.yaml:2: destination "d1": digest: after must be at least 1`,
				`nocbridge.yaml:3: destination "d1": digest: window must be at least 1s`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := NewConfigCheck(env, parseDest(t, tc.yaml))
			got := check.Digest()
			errs := check.Errors().Sorted()
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors %v, want %d: %v", errs, len(tc.errs), tc.errs)
			}
			for i, want := range tc.errs {
				if !strings.HasPrefix(errs[i].Error(), want) {
					t.Errorf("error %d: %s\nwant prefix %s", i, errs[i], want)
				}
			}
			if len(tc.errs) == 0 && got != tc.want {
				t.Errorf("policy %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecodeConfigDigestKey: the key is skipped for a config that takes
// digests and unknown for any other, as every key a type does not declare.
func TestDecodeConfigDigestKey(t *testing.T) {
	d := parseDest(t, "url: x\ndigest: {after: 3}\n")
	env := Env{ConfigFile: "c.yaml"}
	if err := DecodeConfig(env, d, &chatConfig{}); err != nil {
		t.Errorf("a chat config refused digest: %v", err)
	}
	err := DecodeConfig(env, d, &plainConfig{})
	if err == nil || !strings.Contains(err.Error(), `c.yaml:2: destination "d1": unknown key "digest" (known: url)`) {
		t.Errorf("a config without digests: %v; want digest an unknown key", err)
	}
	if got := config.CommonDestinationKeys; len(got) != 7 || got[len(got)-1] != "rate_limit" {
		t.Errorf("DecodeConfig changed the shared list of common keys: %v", got)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s", 30 * time.Second: "30s",
		90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDigestID(t *testing.T) {
	a := DigestID([]string{"msg_1", "msg_2"})
	if a != DigestID([]string{"msg_1", "msg_2"}) || !strings.HasPrefix(a, "dig_") || len(a) != 36 {
		t.Fatalf("DigestID = %q: want stable, dig_ and 32 hex digits", a)
	}
	for _, other := range [][]string{{"msg_2", "msg_1"}, {"msg_1"}, {"msg_1msg_2"}} {
		if DigestID(other) == a {
			t.Errorf("DigestID(%v) equals DigestID(msg_1, msg_2)", other)
		}
	}
}

func digestOf(n int) Digest {
	d := Digest{ID: "dig_test", Attempt: 1}
	for i := range n {
		st := event.StatusActive
		if i%3 == 2 {
			st = event.StatusResolved
		}
		ev := event.Event{InstanceID: fmt.Sprintf("inst-%02d", i), Name: "Device unreachable", Severity: 1 + i%5, Status: st,
			Device: inventory.Device{Name: fmt.Sprintf("sw%02d", i), Address: "10.0.0.1"}}
		d.Notifications = append(d.Notifications, Notification{ID: fmt.Sprintf("msg_%02d", i), Event: ev})
	}
	return d
}

func TestDigestView(t *testing.T) {
	v := NewDigestView(digestOf(60), DefaultDigest, "http://nb:9720/")
	if v.Title != "60 more: past this room's limit of 10 notifications per 1m" || v.ListURL != "http://nb:9720/api/v1/alerts" {
		t.Errorf("title %q, list %q", v.Title, v.ListURL)
	}
	if len(v.Entries) != MaxDigestEntries {
		t.Fatalf("%d entries, want %d", len(v.Entries), MaxDigestEntries)
	}
	e := v.Entries[2]
	if e.Status != event.StatusResolved || e.Priority != "P3" || e.Device != "sw02 (10.0.0.1)" || e.URL != "http://nb:9720/alerts/inst-02" {
		t.Errorf("entry %+v", e)
	}
	if got := e.Markdown(strings.ToUpper); got != "✅ **P3** resolved · [DEVICE UNREACHABLE](http://nb:9720/alerts/inst-02) · SW02 (10.0.0.1)" {
		t.Errorf("Markdown = %q", got)
	}

	plain := func(e DigestEntry) string { return e.Name }
	more := func(n int) string { return fmt.Sprintf("+%d", n) }
	size := func(s string) int { return len(s) }
	lines := v.Lines(0, size, plain, more)
	if len(lines) != 51 || lines[50] != "+10" {
		t.Fatalf("unbounded: %d lines ending %q; want 50 and +10", len(lines), lines[len(lines)-1])
	}
	// Each line is 18 bytes: 10 lines, "+50" and 10 newlines take 193.
	lines = v.Lines(193, size, plain, more)
	if len(lines) != 11 || lines[10] != "+50" {
		t.Fatalf("budget 193: %d lines ending %q; want 10 and +50", len(lines), lines[len(lines)-1])
	}
	if lines = v.Lines(192, size, plain, more); len(lines) != 10 || lines[9] != "+51" {
		t.Fatalf("budget 192: %d lines ending %q; want 9 and +51", len(lines), lines[len(lines)-1])
	}
	small := NewDigestView(digestOf(3), DefaultDigest, "http://nb:9720")
	if lines := small.Lines(3*19-1, size, plain, more); len(lines) != 3 {
		t.Errorf("3 lines that fit exactly: got %v", lines)
	}
	if lines := small.Lines(3*19-2, size, plain, more); len(lines) != 3 || lines[2] != "+1" {
		t.Errorf("3 lines one byte short: got %v; want two and +1", lines)
	}
}

type digestingNotifier struct{ p DigestPolicy }

func (digestingNotifier) Send(context.Context, Notification) error { return nil }
func (n digestingNotifier) DigestPolicy() DigestPolicy             { return n.p }
func (digestingNotifier) SendDigest(context.Context, Digest) error {
	return nil
}

type plainNotifier struct{}

func (plainNotifier) Send(context.Context, Notification) error { return nil }

func TestDigesterOf(t *testing.T) {
	if DigesterOf(plainNotifier{}) != nil {
		t.Error("a notifier without SendDigest digests")
	}
	if DigesterOf(digestingNotifier{}) != nil {
		t.Error("a digester whose policy is off digests")
	}
	if DigesterOf(digestingNotifier{p: DefaultDigest}) == nil {
		t.Error("a digester with the default policy does not digest")
	}
}
