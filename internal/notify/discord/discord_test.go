package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

const (
	// id/token, as in https://discord.com/api/webhooks/<id>/<token>.
	hookPath = "/api/webhooks/1234567890123456789/d1sc0rdT0k3n-s3cr3t_VALUE"
)

func activeEvent() event.Event {
	return event.Event{
		InstanceID:  "5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f",
		EventID:     "NETWORK-DEVICES-2-201",
		Name:        "High CPU utilization on core-sw1",
		EventName:   "High CPU utilization",
		Description: "core-sw1 CPU at 97% @everyone **check** [phish](http://evil.example)",
		Category:    "ALERT",
		Domain:      "Availability",
		SubDomain:   "Devices",
		Severity:    2,
		Source:      "snmp",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
	}
}

func resolvedEvent() event.Event {
	e := activeEvent()
	e.Status = event.StatusResolved
	e.Timestamp = e.Timestamp.Add(5 * time.Minute)
	return e
}

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("noc-discord"), Event: ev, Attempt: 1}
}

// newFakeDiscord answers like a channel webhook: 204 for the right id and
// token, 401 Invalid Webhook Token otherwise; queued replies override that.
func newFakeDiscord(t *testing.T) *notifytest.Server {
	return notifytest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == hookPath {
			notifytest.Reply{Status: http.StatusNoContent}.Write(w)
			return
		}
		notifytest.Reply{Status: 401, Body: `{"message": "Invalid Webhook Token", "code": 50027}`}.Write(w)
	}))
}

func hookYAML(base string) string {
	return "name: noc-discord\ntype: discord\nurl: " + base + hookPath + "\n"
}

func newNotifier(t *testing.T, d config.Destination, dir string, logs *notifytest.Logs) *Notifier {
	t.Helper()
	return notifytest.New[*Notifier](t, New, d, notifytest.TextEnv(dir, logs))
}

// TestGolden: the firing embed, then the resolve as a new green embed.
func TestGolden(t *testing.T) {
	f := newFakeDiscord(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)), t.TempDir(), nil)
	for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
		if err := n.Send(context.Background(), notification(ev)); err != nil {
			t.Fatalf("Send %s: %v", ev.Status, err)
		}
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.Path != hookPath || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != notifytest.UserAgent {
			t.Errorf("request %d: %s %s Content-Type=%q User-Agent=%q", i, r.Method, r.Path, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
		}
	}
	notifytest.GoldenJSON(t, "active.json", reqs[0].Body)
	notifytest.GoldenJSON(t, "resolved.json", reqs[1].Body)

	for _, r := range reqs {
		var m message
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		if m.AllowedMentions.Parse == nil || len(m.AllowedMentions.Parse) != 0 || !bytes.Contains(r.Body, []byte(`"allowed_mentions":{"parse":[]}`)) {
			t.Errorf("allowed_mentions must be an explicitly empty parse list: %s", r.Body)
		}
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "discord.tmpl"), []byte("**{{ .Device.Name }}** in {{ .Device.Site }}: {{ .Description }}\n{{ .Priority }} · {{ .Status }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeDiscord(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)+"template_file: discord.tmpl\n"), dir, nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	body := f.Requests()[0].Body
	notifytest.GoldenJSON(t, "template.json", body)
	if bytes.Contains(body, []byte("[phish](")) {
		t.Errorf("event text became a masked link")
	}
}

func TestEmbedLimits(t *testing.T) {
	ev := activeEvent()
	ev.Name = strings.Repeat("N", 400)
	ev.Key = strings.Repeat("k", 2000)
	ev.Device.Site = strings.Repeat("ß", 1500)
	m := render(ev, notifytest.ExternalURL, strings.Repeat("ü", 9000))
	e := m.Embeds[0]
	count := utf8.RuneCountInString
	total := count(e.Title) + count(e.Description) + count(e.Footer.Text)
	if count(e.Title) > maxTitle || count(e.Description) > maxDescription || len(e.Fields) > maxFields {
		t.Errorf("title %d, description %d, %d fields", count(e.Title), count(e.Description), len(e.Fields))
	}
	for _, f := range e.Fields {
		if count(f.Name) > maxFieldName || count(f.Value) > maxFieldValue {
			t.Errorf("field %q: value of %d characters", f.Name, count(f.Value))
		}
		total += count(f.Name) + count(f.Value)
	}
	if total > maxEmbedTotal {
		t.Errorf("embed of %d characters, limit %d", total, maxEmbedTotal)
	}
	if !strings.HasSuffix(e.Description, truncatedMark) || count(e.Description) < 100 {
		t.Errorf("description should be cut to the room left, got %d characters", count(e.Description))
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"ünïcödé text", 5, "ünïc…"},
		{`abc\*def`, 5, "abc…"}, // never half an escape
		{`ab\*def`, 5, `ab\*…`},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.max); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name  string
		reply notifytest.Reply
		want  time.Duration
	}{
		{"body retry_after wins over the header", notifytest.Reply{Status: 429, Header: map[string]string{"Retry-After": "2"}, Body: `{"message": "You are being rate limited.", "retry_after": 1.337, "global": false}`}, 1337 * time.Millisecond},
		{"header only", notifytest.Reply{Status: 429, Header: map[string]string{"Retry-After": "3"}, Body: "<html>cloudflare</html>"}, 3 * time.Second},
		{"global", notifytest.Reply{Status: 429, Body: `{"message": "You are being rate limited.", "retry_after": 64.57, "global": true}`}, 64570 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDiscord(t)
			f.Queue(tt.reply)
			n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)), t.TempDir(), nil)
			err := n.Send(context.Background(), notification(activeEvent()))
			var ne *notify.Error
			if !errors.As(err, &ne) || !ne.Retryable || ne.Status != 429 {
				t.Fatalf("got %#v, want a retryable 429", err)
			}
			if ne.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %s, want %s", ne.RetryAfter, tt.want)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []notifytest.StatusCase{
		{Name: "200 with wait=true", Reply: notifytest.Reply{Status: 200, Body: `{"id":"1"}`}},
		{Name: "404 unknown webhook", Reply: notifytest.Reply{Status: 404, Body: `{"message": "Unknown Webhook", "code": 10015}`}, WantReason: "HTTP 404: Unknown Webhook (code 10015)"},
		{Name: "401 bad token", Reply: notifytest.Reply{Status: 401, Body: `{"message": "Invalid Webhook Token", "code": 50027}`}, WantReason: "HTTP 401: Invalid Webhook Token (code 50027)"},
		{Name: "400 form body", Reply: notifytest.Reply{Status: 400, Body: `{"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}, "title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]}}}}}`}, WantReason: "HTTP 400: Invalid Form Body (code 50035): embeds.0.description: Must be 4096 or fewer in length.; embeds.0.title: Must be 256 or fewer in length."},
		{Name: "500", Reply: notifytest.Reply{Status: 500, Body: `{"message": "500: Internal Server Error", "code": 0}`}, Retryable: true, WantReason: "HTTP 500: 500: Internal Server Error"},
		{Name: "502 html", Reply: notifytest.Reply{Status: 502, Body: "<html>bad gateway</html>"}, Retryable: true, WantReason: "HTTP 502: <html>bad gateway</html>"},
	}
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			f := newFakeDiscord(t)
			f.Queue(tt.Reply)
			n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)), t.TempDir(), nil)
			tt.Check(t, n.Send(context.Background(), notification(activeEvent())), "discord webhook "+f.URL)
		})
	}
}

// TestSecretsNeverLeak: the webhook token in the URL's path must stay out of
// errors and logs on every path.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"d1sc0rdT0k3n-s3cr3t_VALUE", "1234567890123456789/"}
	check := func(t *testing.T, err error, logs *notifytest.Logs) {
		t.Helper()
		notifytest.NoSecrets(t, secrets, err, logs.String())
	}
	t.Run("success", func(t *testing.T) {
		f := newFakeDiscord(t)
		logs := &notifytest.Logs{}
		n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)), dir, logs)
		if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "discord embed posted") {
			t.Fatalf("debug log not captured")
		}
		check(t, nil, logs)
	})
	t.Run("status error", func(t *testing.T) {
		f := newFakeDiscord(t)
		f.Queue(notifytest.Reply{Status: 500, Body: "boom"})
		logs := &notifytest.Logs{}
		n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)), dir, logs)
		err := n.Send(context.Background(), notification(activeEvent()))
		if err == nil {
			t.Fatal("expected an error")
		}
		check(t, err, logs)
	})
	notifytest.NetworkFailures(t, secrets, func(t *testing.T, base, extra string, logs *notifytest.Logs) error {
		n := newNotifier(t, notifytest.Destination(t, hookYAML(base)+extra), dir, logs)
		return n.Send(context.Background(), notification(activeEvent()))
	})
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: ftp://discord.com" + hookPath + "\n",
			"url: \"https://discord.com" + hookPath + "\\x7f\"\n",
		} {
			_, err := New(notifytest.Destination(t, "name: d\ntype: discord\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
			if err == nil {
				t.Fatalf("%q: expected an error", y)
			}
			check(t, err, &notifytest.Logs{})
		}
	})
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"hook":        "https://discord.com" + hookPath + "\n",
		"empty":       "  \n",
		"broken.tmpl": "ok\n{{ end }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notifytest.ConfigCases(t, New, "name: d\ntype: discord\n", dir, []notifytest.ConfigCase{
		{Name: "missing url", YAML: "", Want: []string{`c.yaml:1: destination "d": url is required`}},
		{Name: "unknown key", YAML: "url_file: hook\nusername: bot\n", Want: []string{`c.yaml:4: destination "d": unknown key "username" (known: template_file, url, url_file)`}},
		{Name: "url and url_file", YAML: "url: https://discord.com/x\nurl_file: hook\n", Want: []string{`c.yaml:4: destination "d": url: set either the value or the _file key, not both`}},
		{Name: "url_file missing", YAML: "url_file: nope\n", Want: []string{`c.yaml:3: destination "d": url: reading secret file`}},
		{Name: "url_file empty", YAML: "url_file: empty\n", Want: []string{`c.yaml:3: destination "d": url: secret file ` + filepath.Join(dir, "empty") + ` is empty`}},
		{Name: "scheme", YAML: "url: discord.com/api/webhooks/1/x\n", Want: []string{`c.yaml:3: destination "d": url must be an http or https URL`}},
		{Name: "broken template", YAML: "url_file: hook\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:4: destination "d": template_file: template: broken.tmpl:2: unexpected {{end}}`}},
	})
}

func TestCloseDropsIdleConnections(t *testing.T) {
	notifytest.ClosesIdleConnections(t, notifytest.Reply{Status: http.StatusNoContent}, func(base string) notify.Notifier {
		return newNotifier(t, notifytest.Destination(t, hookYAML(base)), t.TempDir(), nil)
	}, notification(activeEvent()))
}

// TestDigestGolden: one embed listing the alerts, posted like any embed.
func TestDigestGolden(t *testing.T) {
	f := newFakeDiscord(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f.URL)), t.TempDir(), nil)
	want := notifytest.Want{Method: http.MethodPost, Path: hookPath, Header: map[string]string{"Content-Type": "application/json", "User-Agent": notifytest.UserAgent}}
	notifytest.ServerDigestGoldens(t, "", f, want, n.SendDigest)
}

// TestDigestLimits: long names fill the description before 50 lines; the
// lines left out are counted, and the embed stays within Discord's limits.
func TestDigestLimits(t *testing.T) {
	d := notifytest.LongDigest(60, strings.Repeat("n", 300))
	e := renderDigest(d, notify.DefaultDigest, notifytest.ExternalURL).Embeds[0]
	count := utf8.RuneCountInString
	if count(e.Description) > maxDescription || count(e.Title)+count(e.Description)+count(e.Footer.Text) > maxEmbedTotal {
		t.Errorf("title %d, description %d, footer %d characters", count(e.Title), count(e.Description), count(e.Footer.Text))
	}
	if listed := notifytest.Listed(t, d, strings.Split(e.Description, "\n"), notify.NewDigestView(d, notify.DefaultDigest, notifytest.ExternalURL).MarkdownMore); listed < 10 {
		t.Errorf("only %d listed", listed)
	}
}

func TestDigestKey(t *testing.T) {
	notifytest.DigestKey(t, New, hookYAML("https://discord.com"))
}
