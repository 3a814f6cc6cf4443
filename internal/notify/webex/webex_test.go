package webex

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
	botToken = "NmZhY2Vib29rLXM3cjNhbS10b2tlbi1zZWNyZXQ"
	hookPath = "/v1/webhooks/incoming/Y2lzY29zcGFyazovL3VzL1dFQkhPT0svaDAwa1MzY3IzdA"
	roomID   = "Y2lzY29zcGFyazovL3VzL1JPT00vbm9j"
)

func activeEvent() event.Event {
	return event.Event{
		InstanceID:  "5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f",
		EventID:     "NETWORK-DEVICES-1-101",
		Name:        "Device core-sw1 is unreachable",
		EventName:   "Device unreachable",
		Description: "core-sw1 (10.0.0.1) is unreachable <@all> *now*",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Devices",
		Severity:    1,
		Source:      "icmp",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
	}
}

func resolvedEvent() event.Event {
	e := activeEvent()
	e.Status = event.StatusResolved
	e.Timestamp = e.Timestamp.Add(90 * time.Second)
	return e
}

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("noc-webex"), Event: ev, Attempt: 1}
}

// newFakeWebex answers POST /v1/messages like the REST API (200 with the
// message) and the incoming webhook at hookPath (204); queued replies
// override that.
func newFakeWebex(t *testing.T) *notifytest.Server {
	return notifytest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/messages":
			notifytest.Reply{Status: 200, Body: `{"id":"Y2lzY29zcGFyazovL3VzL01FU1NBR0UvMQ","roomId":"` + roomID + `","roomType":"group"}`}.Write(w)
		case hookPath:
			notifytest.Reply{Status: 204}.Write(w)
		default:
			notifytest.Reply{Status: 404, Body: `{"message":"The requested resource could not be found.","errors":[{"description":"The requested resource could not be found."}],"trackingId":"ROUTER_TEST"}`}.Write(w)
		}
	}))
}

func botYAML(f *notifytest.Server) string {
	return "name: noc-webex\ntype: webex\ntoken: " + botToken + "\nroom_id: " + roomID + "\napi_url: " + f.URL + "/v1\n"
}

func hookYAML(f *notifytest.Server) string {
	return "name: noc-webex\ntype: webex\nurl: " + f.URL + hookPath + "\n"
}

func newNotifier(t *testing.T, d config.Destination, dir string, logs *notifytest.Logs) *Notifier {
	t.Helper()
	return notifytest.New[*Notifier](t, New, d, notifytest.TextEnv(dir, logs))
}

// TestGolden covers both modes, firing then resolve (a new message each).
func TestGolden(t *testing.T) {
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeWebex(t)
			y, path, auth := hookYAML(f), hookPath, ""
			if mode == "bot" {
				y, path, auth = botYAML(f), "/v1/messages", "Bearer "+botToken
			}
			n := newNotifier(t, notifytest.Destination(t, y), t.TempDir(), nil)
			for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
				if err := n.Send(context.Background(), notification(ev)); err != nil {
					t.Fatalf("Send %s: %v", ev.Status, err)
				}
			}
			reqs := f.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2 (the resolve is a new message)", len(reqs))
			}
			for i, r := range reqs {
				if r.Method != http.MethodPost || r.Path != path || r.Header.Get("Authorization") != auth ||
					r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != notifytest.UserAgent {
					t.Errorf("request %d: %s %s auth=%v Content-Type=%q User-Agent=%q", i, r.Method, r.Path, r.Header.Get("Authorization") != "", r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
				}
			}
			notifytest.GoldenJSON(t, mode+"-active.json", reqs[0].Body)
			notifytest.GoldenJSON(t, mode+"-resolved.json", reqs[1].Body)
		})
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "webex.tmpl"), []byte("### {{ .Device.Name }} @ {{ .Device.Site }}\n{{ .Description }} — _{{ .Status }}_, {{ .Priority }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeWebex(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f)+"template_file: webex.tmpl\n"), dir, nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	body := f.Requests()[0].Body
	notifytest.GoldenJSON(t, "webhook-template.json", body)
	if bytes.Contains(body, []byte("<@all>")) {
		t.Errorf("event text reached the message unescaped: a device could mention everyone")
	}
}

func TestRateLimit(t *testing.T) {
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeWebex(t)
			f.Queue(notifytest.Reply{Status: 429, Header: map[string]string{"Retry-After": "15"}, Body: `{"message":"Too Many Requests","trackingId":"ROUTER_429"}`})
			y := hookYAML(f)
			if mode == "bot" {
				y = botYAML(f)
			}
			n := newNotifier(t, notifytest.Destination(t, y), t.TempDir(), nil)
			err := n.Send(context.Background(), notification(activeEvent()))
			var ne *notify.Error
			if !errors.As(err, &ne) || !ne.Retryable || ne.RetryAfter != 15*time.Second || ne.Status != 429 {
				t.Fatalf("got %#v, want retryable 429 after 15s", err)
			}
			if !strings.Contains(ne.Reason, "Too Many Requests (trackingId ROUTER_429)") {
				t.Errorf("reason %q", ne.Reason)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []notifytest.StatusCase{
		{Name: "404 unknown room", Reply: notifytest.Reply{Status: 404, Body: `{"message":"Could not find a room with provided ID.","errors":[{"description":"Could not find a room with provided ID."}],"trackingId":"ROUTER_1"}`}, WantReason: "HTTP 404: Could not find a room with provided ID. (trackingId ROUTER_1)"},
		{Name: "401 bad token", Reply: notifytest.Reply{Status: 401, Body: `{"message":"The request requires a valid access token set in the Authorization request header.","errors":[{"description":"The request requires a valid access token set in the Authorization request header."}],"trackingId":"ROUTER_2"}`}, WantReason: "HTTP 401: The request requires a valid access token"},
		{Name: "400 two reasons", Reply: notifytest.Reply{Status: 400, Body: `{"message":"Invalid request","errors":[{"description":"markdown is too long"}]}`}, WantReason: "HTTP 400: Invalid request; markdown is too long"},
		{Name: "500", Reply: notifytest.Reply{Status: 500, Body: `{"message":"Internal Server Error","trackingId":"ROUTER_3"}`}, Retryable: true, WantReason: "HTTP 500: Internal Server Error (trackingId ROUTER_3)"},
		{Name: "502 html", Reply: notifytest.Reply{Status: 502, Body: "<html>bad gateway</html>"}, Retryable: true, WantReason: "HTTP 502: <html>bad gateway</html>"},
		{Name: "503 Retry-After", Reply: notifytest.Reply{Status: 503, Header: map[string]string{"Retry-After": "2"}}, Retryable: true, WantReason: "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			f := newFakeWebex(t)
			f.Queue(tt.Reply)
			n := newNotifier(t, notifytest.Destination(t, botYAML(f)), t.TempDir(), nil)
			tt.Check(t, n.Send(context.Background(), notification(activeEvent())), "webex POST "+f.URL+"/v1/messages")
		})
	}
}

func TestLongMessageTruncated(t *testing.T) {
	f := newFakeWebex(t)
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), t.TempDir(), nil)
	ev := activeEvent()
	ev.Description = strings.Repeat("Schnittstelle Gi1/0/1 ausgefallen — ünd *flapping* ", 400)
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	var m message
	if err := json.Unmarshal(f.Requests()[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Markdown) > MaxMarkdownBytes || !utf8.ValidString(m.Markdown) {
		t.Fatalf("markdown of %d bytes (valid UTF-8: %v), limit %d", len(m.Markdown), utf8.ValidString(m.Markdown), MaxMarkdownBytes)
	}
	if !strings.HasSuffix(m.Markdown, truncatedMark) || !strings.Contains(m.Markdown, "[Open alert]("+notifytest.ExternalURL+"/alerts/") {
		t.Errorf("truncated message lost its mark or its link")
	}
}

func TestTruncate(t *testing.T) {
	overhead := len(truncatedMark) + len("\n```")
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"fits", "short", 10, "short"},
		{"utf-8 boundary", "ab" + strings.Repeat("ü", 30), overhead + 3, "ab" + truncatedMark},
		{"open code block closed", "```\n" + strings.Repeat("x", 50), overhead + 10, "```\nxxxxxx\n```" + truncatedMark},
		{"link not split", "see [the alert](http://127.0.0.1:9720/alerts/1234) now", overhead + 30, "see " + truncatedMark},
		{"half escape dropped", `aaaa\*` + strings.Repeat("b", 40), overhead + 5, "aaaa" + truncatedMark},
		{"whole escape kept", `aaa\*` + strings.Repeat("b", 40), overhead + 5, `aaa\*` + truncatedMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max || !utf8.ValidString(got) {
				t.Errorf("result of %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
		})
	}
}

// TestSecretsNeverLeak drives failure paths with the webhook URL's path (the
// credential) and the bot token, checking errors and every log line.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"aDAwa1MzY3IzdA", botToken}
	check := func(t *testing.T, err error, logs *notifytest.Logs) {
		t.Helper()
		notifytest.NoSecrets(t, secrets, err, logs.String())
	}
	yamlFor := func(mode, base string) string {
		if mode == "bot" {
			return "name: w\ntype: webex\ntoken: " + botToken + "\nroom_id: R1\napi_url: " + base + "/v1\n"
		}
		return "name: w\ntype: webex\nurl: " + base + hookPath + "\n"
	}
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode+" success", func(t *testing.T) {
			f := newFakeWebex(t)
			logs := &notifytest.Logs{}
			n := newNotifier(t, notifytest.Destination(t, yamlFor(mode, f.URL)), dir, logs)
			if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "webex message posted") {
				t.Fatalf("debug log not captured")
			}
			check(t, nil, logs)
		})
		t.Run(mode+" status error", func(t *testing.T) {
			f := newFakeWebex(t)
			f.Queue(notifytest.Reply{Status: 500, Body: "boom"})
			logs := &notifytest.Logs{}
			n := newNotifier(t, notifytest.Destination(t, yamlFor(mode, f.URL)), dir, logs)
			err := n.Send(context.Background(), notification(activeEvent()))
			if err == nil {
				t.Fatal("expected an error")
			}
			check(t, err, logs)
		})
		t.Run(mode, func(t *testing.T) {
			notifytest.NetworkFailures(t, secrets, func(t *testing.T, base, extra string, logs *notifytest.Logs) error {
				n := newNotifier(t, notifytest.Destination(t, yamlFor(mode, base)+extra), dir, logs)
				return n.Send(context.Background(), notification(activeEvent()))
			})
		})
	}
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: ftp://h" + hookPath + "\n",
			"url: \"http://h" + hookPath + "%zz\"\n",
			"url: http://h" + hookPath + "\ntoken: " + botToken + "\n",
			"token: \"" + botToken + " x\"\nroom_id: R\n",
		} {
			_, err := New(notifytest.Destination(t, "name: w\ntype: webex\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
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
		"hook":        "https://webexapis.com" + hookPath + "\n",
		"token":       botToken + "\n",
		"broken.tmpl": "{{ if .Name }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notifytest.ConfigCases(t, New, "name: w\ntype: webex\n", dir, []notifytest.ConfigCase{
		{Name: "neither mode", YAML: "room_id: R\n", Want: []string{`c.yaml:1: destination "w": set url (incoming webhook) or token and room_id (bot)`}},
		{Name: "unknown key", YAML: "url_file: hook\nroom: R\n", Want: []string{`c.yaml:4: destination "w": unknown key "room" (known: api_url, room_id, template_file, token, token_file, url, url_file)`}},
		{Name: "both modes", YAML: "url_file: hook\ntoken_file: token\nroom_id: R\n", Want: []string{`c.yaml:4: destination "w": set url (incoming webhook) or token and room_id (bot), not both`}},
		{Name: "token without room", YAML: "token_file: token\n", Want: []string{`c.yaml:1: destination "w": room_id is required with token`}},
		{Name: "room with webhook", YAML: "url: https://webexapis.com/x\nroom_id: R\n", Want: []string{`c.yaml:4: destination "w": room_id is for bot mode (token)`}},
		{Name: "api_url with webhook", YAML: "url: https://webexapis.com/x\napi_url: https://webexapis.com/v1\n", Want: []string{`c.yaml:4: destination "w": api_url is for bot mode (token)`}},
		{Name: "url and url_file", YAML: "url: https://webexapis.com/x\nurl_file: hook\n", Want: []string{`c.yaml:4: destination "w": url: set either the value or the _file key, not both`}},
		{Name: "token and token_file", YAML: "token: t\ntoken_file: token\nroom_id: R\n", Want: []string{`c.yaml:4: destination "w": token: set either the value or the _file key, not both`}},
		{Name: "url_file missing", YAML: "url_file: nope\n", Want: []string{`c.yaml:3: destination "w": url: reading secret file`}},
		{Name: "token_file missing", YAML: "token_file: nope\nroom_id: R\n", Want: []string{`c.yaml:3: destination "w": token: reading secret file`}},
		{Name: "url scheme", YAML: "url: webexapis.com/x\n", Want: []string{`c.yaml:3: destination "w": url must be an http or https URL`}},
		{Name: "api_url host", YAML: "token: t\nroom_id: R\napi_url: https:///v1\n", Want: []string{`c.yaml:5: destination "w": api_url is missing a host`}},
		{Name: "template parse error", YAML: "url_file: hook\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:4: destination "w": template_file: template: broken.tmpl:2: unexpected EOF`}},
		{Name: "template missing", YAML: "url_file: hook\ntemplate_file: nope.tmpl\n", Want: []string{`c.yaml:4: destination "w": template_file: open `}},
	})
}

func TestDefaultAPIURL(t *testing.T) {
	nf, err := New(notifytest.Destination(t, "name: w\ntype: webex\ntoken: t\nroom_id: R\n"), notify.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if got := nf.(*Notifier).s.endpoint.String(); got != DefaultAPIURL+"/messages" {
		t.Errorf("endpoint = %s", got)
	}
}

func TestCloseDropsIdleConnections(t *testing.T) {
	notifytest.ClosesIdleConnections(t, notifytest.Reply{Status: http.StatusNoContent}, func(base string) notify.Notifier {
		return newNotifier(t, notifytest.Destination(t, "name: w\ntype: webex\nurl: "+base+hookPath+"\n"), t.TempDir(), nil)
	}, notification(activeEvent()))
}

// TestDigestGolden: one markdown message per digest in both modes, the
// bot's to its room.
func TestDigestGolden(t *testing.T) {
	f := newFakeWebex(t)
	for mode, y := range map[string]string{"webhook": hookYAML(f), "bot": botYAML(f)} {
		t.Run(mode, func(t *testing.T) {
			want := notifytest.Want{Method: http.MethodPost, Path: hookPath, Header: map[string]string{"Authorization": "", "Content-Type": "application/json", "User-Agent": notifytest.UserAgent}}
			if mode == "bot" {
				want.Path, want.Header["Authorization"] = "/v1/messages", "Bearer "+botToken
			}
			n := newNotifier(t, notifytest.Destination(t, y), t.TempDir(), nil)
			notifytest.ServerDigestGoldens(t, mode+"-", f, want, n.SendDigest)
		})
	}
}

// TestDigestLimits: long names reach the 7,439-byte cap before 50 lines;
// the lines left out are counted and the id stays.
func TestDigestLimits(t *testing.T) {
	d := notifytest.LongDigest(60, strings.Repeat("ü", 300))
	md := renderDigest(d, notify.DefaultDigest, notifytest.ExternalURL)
	if len(md) > MaxMarkdownBytes || !strings.HasSuffix(md, "nocbridge digest `"+d.ID+"`") {
		t.Errorf("%d bytes, want at most %d ending with the id", len(md), MaxMarkdownBytes)
	}
	if listed := notifytest.Listed(t, d, strings.Split(strings.Split(md, "\n\n")[1], "\n"), notify.NewDigestView(d, notify.DefaultDigest, notifytest.ExternalURL).MarkdownMore); listed < 10 {
		t.Errorf("only %d listed", listed)
	}
}

func TestDigestKey(t *testing.T) {
	notifytest.DigestKey(t, New, "name: w\ntype: webex\ntoken: t0k3n\nroom_id: r\n")
}
