package webex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	externalURL = "http://127.0.0.1:9720"
	userAgent   = "nocbridge/1.2.3"
	botToken    = "NmZhY2Vib29rLXM3cjNhbS10b2tlbi1zZWNyZXQ"
	hookPath    = "/v1/webhooks/incoming/Y2lzY29zcGFyazovL3VzL1dFQkhPT0svaDAwa1MzY3IzdA"
	roomID      = "Y2lzY29zcGFyazovL3VzL1JPT00vbm9j"
)

func destination(t *testing.T, src string) config.Destination {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("parsing test YAML: %v", err)
	}
	n := doc.Content[0]
	d := config.Destination{Node: n, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch k {
		case "name":
			d.Name = v.Value
		case "type":
			d.Type = v.Value
		case "timeout":
			dur, err := time.ParseDuration(v.Value)
			if err != nil {
				t.Fatal(err)
			}
			d.Timeout = config.Duration(dur)
		}
	}
	return d
}

func activeEvent() event.Event {
	return event.Event{
		InstanceID:  "5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f",
		EventID:     "NETWORK-DEVICES-1-101",
		Name:        "Device unreachable",
		Description: "core-sw1 (10.0.0.1) is unreachable <@all> *now*",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Devices",
		Severity:    1,
		Source:      "icmp",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      event.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
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

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type request struct {
	method, path, auth, contentType, userAgent string
	body                                       []byte
}

type reply struct {
	status int
	header map[string]string
	body   string
}

// fakeWebex answers POST /v1/messages like the REST API (200 with the
// message) and the incoming webhook at hookPath (204); queued replies
// override that.
type fakeWebex struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []request
	replies []reply
}

func newFakeWebex(t *testing.T) *fakeWebex {
	f := &fakeWebex{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body})
		var rep reply
		switch {
		case len(f.replies) > 0:
			rep, f.replies = f.replies[0], f.replies[1:]
		case r.URL.Path == "/v1/messages":
			rep = reply{status: 200, body: `{"id":"Y2lzY29zcGFyazovL3VzL01FU1NBR0UvMQ","roomId":"` + roomID + `","roomType":"group"}`}
		case r.URL.Path == hookPath:
			rep = reply{status: 204}
		default:
			rep = reply{status: 404, body: `{"message":"The requested resource could not be found.","errors":[{"description":"The requested resource could not be found."}],"trackingId":"ROUTER_TEST"}`}
		}
		f.mu.Unlock()
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeWebex) queue(r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, r)
}

func (f *fakeWebex) all() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func botYAML(f *fakeWebex) string {
	return "name: noc-webex\ntype: webex\ntoken: " + botToken + "\nroom_id: " + roomID + "\napi_url: " + f.URL + "/v1\n"
}

func hookYAML(f *fakeWebex) string {
	return "name: noc-webex\ntype: webex\nurl: " + f.URL + hookPath + "\n"
}

func newNotifier(t *testing.T, d config.Destination, dir string, logs *logBuffer) *Notifier {
	t.Helper()
	env := notify.Env{ExternalURL: externalURL, UserAgent: userAgent, ConfigFile: "nocbridge.yaml", BaseDir: dir}
	if logs != nil {
		env.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	nf, err := New(d, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n := nf.(*Notifier)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	var g any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got)
	}
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(g); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run with -update to create): %v", err)
	}
	var w any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("golden %s is not JSON: %v", path, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body differs from %s:\n%s", path, got)
	}
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
			n := newNotifier(t, destination(t, y), t.TempDir(), nil)
			for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
				if err := n.Send(context.Background(), notification(ev)); err != nil {
					t.Fatalf("Send %s: %v", ev.Status, err)
				}
			}
			reqs := f.all()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2 (the resolve is a new message)", len(reqs))
			}
			for i, r := range reqs {
				if r.method != http.MethodPost || r.path != path || r.auth != auth ||
					r.contentType != "application/json" || r.userAgent != userAgent {
					t.Errorf("request %d: %s %s auth=%v Content-Type=%q User-Agent=%q", i, r.method, r.path, r.auth != "", r.contentType, r.userAgent)
				}
			}
			golden(t, mode+"-active.json", reqs[0].body)
			golden(t, mode+"-resolved.json", reqs[1].body)
		})
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "webex.tmpl"), []byte("### {{ .Device.Name }} @ {{ .Device.Site }}\n{{ .Description }} — _{{ .Status }}_, {{ .Priority }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeWebex(t)
	n := newNotifier(t, destination(t, hookYAML(f)+"template_file: webex.tmpl\n"), dir, nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	body := f.all()[0].body
	golden(t, "webhook-template.json", body)
	if bytes.Contains(body, []byte("<@all>")) {
		t.Errorf("event text reached the message unescaped: a device could mention everyone")
	}
}

func TestRateLimit(t *testing.T) {
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeWebex(t)
			f.queue(reply{status: 429, header: map[string]string{"Retry-After": "15"}, body: `{"message":"Too Many Requests","trackingId":"ROUTER_429"}`})
			y := hookYAML(f)
			if mode == "bot" {
				y = botYAML(f)
			}
			n := newNotifier(t, destination(t, y), t.TempDir(), nil)
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
	tests := []struct {
		name       string
		reply      reply
		retryable  bool
		wantReason string
	}{
		{"404 unknown room", reply{status: 404, body: `{"message":"Could not find a room with provided ID.","errors":[{"description":"Could not find a room with provided ID."}],"trackingId":"ROUTER_1"}`}, false, "HTTP 404: Could not find a room with provided ID. (trackingId ROUTER_1)"},
		{"401 bad token", reply{status: 401, body: `{"message":"The request requires a valid access token set in the Authorization request header.","errors":[{"description":"The request requires a valid access token set in the Authorization request header."}],"trackingId":"ROUTER_2"}`}, false, "HTTP 401: The request requires a valid access token"},
		{"400 two reasons", reply{status: 400, body: `{"message":"Invalid request","errors":[{"description":"markdown is too long"}]}`}, false, "HTTP 400: Invalid request; markdown is too long"},
		{"500", reply{status: 500, body: `{"message":"Internal Server Error","trackingId":"ROUTER_3"}`}, true, "HTTP 500: Internal Server Error (trackingId ROUTER_3)"},
		{"502 html", reply{status: 502, body: "<html>bad gateway</html>"}, true, "HTTP 502: <html>bad gateway</html>"},
		{"503 Retry-After", reply{status: 503, header: map[string]string{"Retry-After": "2"}}, true, "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeWebex(t)
			f.queue(tt.reply)
			n := newNotifier(t, destination(t, botYAML(f)), t.TempDir(), nil)
			err := n.Send(context.Background(), notification(activeEvent()))
			var ne *notify.Error
			if !errors.As(err, &ne) {
				t.Fatalf("got %v, want *notify.Error", err)
			}
			if ne.Retryable != tt.retryable || !strings.Contains(ne.Reason, tt.wantReason) || ne.Status != tt.reply.status {
				t.Errorf("retryable=%v status=%d reason=%q, want %v %d %q", ne.Retryable, ne.Status, ne.Reason, tt.retryable, tt.reply.status, tt.wantReason)
			}
			if !strings.HasPrefix(ne.Reason, "webex POST "+f.URL+"/v1/messages: ") {
				t.Errorf("reason %q does not name the endpoint", ne.Reason)
			}
		})
	}
}

func TestLongMessageTruncated(t *testing.T) {
	f := newFakeWebex(t)
	n := newNotifier(t, destination(t, botYAML(f)), t.TempDir(), nil)
	ev := activeEvent()
	ev.Description = strings.Repeat("Schnittstelle Gi1/0/1 ausgefallen — ünd *flapping* ", 400)
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	var m message
	if err := json.Unmarshal(f.all()[0].body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Markdown) > MaxMarkdownBytes || !utf8.ValidString(m.Markdown) {
		t.Fatalf("markdown of %d bytes (valid UTF-8: %v), limit %d", len(m.Markdown), utf8.ValidString(m.Markdown), MaxMarkdownBytes)
	}
	if !strings.HasSuffix(m.Markdown, truncatedMark) || !strings.Contains(m.Markdown, "[Open alert]("+externalURL+"/alerts/") {
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
	check := func(t *testing.T, err error, logs *logBuffer) {
		t.Helper()
		texts := []string{logs.String()}
		if err != nil {
			texts = append(texts, err.Error())
			var ne *notify.Error
			if errors.As(err, &ne) {
				texts = append(texts, ne.Reason)
			}
		}
		for _, txt := range texts {
			for _, s := range secrets {
				if strings.Contains(txt, s) {
					t.Fatalf("error or log text leaks a secret") // deliberately not printing it
				}
			}
		}
	}
	yamlFor := func(mode, base string) string {
		if mode == "bot" {
			return "name: w\ntype: webex\ntoken: " + botToken + "\nroom_id: R1\napi_url: " + base + "/v1\ntimeout: 200ms\n"
		}
		return "name: w\ntype: webex\nurl: " + base + hookPath + "\ntimeout: 200ms\n"
	}
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode+" success", func(t *testing.T) {
			f := newFakeWebex(t)
			logs := &logBuffer{}
			n := newNotifier(t, destination(t, yamlFor(mode, f.URL)), dir, logs)
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
			f.queue(reply{status: 500, body: "boom"})
			logs := &logBuffer{}
			n := newNotifier(t, destination(t, yamlFor(mode, f.URL)), dir, logs)
			err := n.Send(context.Background(), notification(activeEvent()))
			if err == nil {
				t.Fatal("expected an error")
			}
			check(t, err, logs)
		})
		t.Run(mode+" connection refused", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			base := "http://" + ln.Addr().String()
			_ = ln.Close()
			logs := &logBuffer{}
			n := newNotifier(t, destination(t, yamlFor(mode, base)), dir, logs)
			err = n.Send(context.Background(), notification(activeEvent()))
			if !notify.Retryable(err) {
				t.Fatalf("got %v, want retryable", err)
			}
			check(t, err, logs)
		})
		t.Run(mode+" timeout", func(t *testing.T) {
			done := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-done:
				case <-r.Context().Done():
				}
			}))
			defer srv.Close()
			defer close(done)
			logs := &logBuffer{}
			n := newNotifier(t, destination(t, yamlFor(mode, srv.URL)), dir, logs)
			err := n.Send(context.Background(), notification(activeEvent()))
			var ne *notify.Error
			if !errors.As(err, &ne) || !ne.Retryable || !strings.Contains(ne.Reason, "timeout") {
				t.Fatalf("got %v, want a retryable timeout", err)
			}
			check(t, err, logs)
		})
	}
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: ftp://h" + hookPath + "\n",
			"url: \"http://h" + hookPath + "%zz\"\n",
			"url: http://h" + hookPath + "\ntoken: " + botToken + "\n",
			"token: \"" + botToken + " x\"\nroom_id: R\n",
		} {
			_, err := New(destination(t, "name: w\ntype: webex\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
			if err == nil {
				t.Fatalf("%q: expected an error", y)
			}
			check(t, err, &logBuffer{})
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
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"neither mode", "room_id: R\n", []string{`c.yaml:1: destination "w": set url (incoming webhook) or token and room_id (bot)`}},
		{"unknown key", "url_file: hook\nroom: R\n", []string{`c.yaml:4: destination "w": unknown key "room" (known: api_url, room_id, template_file, token, token_file, url, url_file)`}},
		{"both modes", "url_file: hook\ntoken_file: token\nroom_id: R\n", []string{`c.yaml:4: destination "w": set url (incoming webhook) or token and room_id (bot), not both`}},
		{"token without room", "token_file: token\n", []string{`c.yaml:1: destination "w": room_id is required with token`}},
		{"room with webhook", "url: https://webexapis.com/x\nroom_id: R\n", []string{`c.yaml:4: destination "w": room_id is for bot mode (token)`}},
		{"api_url with webhook", "url: https://webexapis.com/x\napi_url: https://webexapis.com/v1\n", []string{`c.yaml:4: destination "w": api_url is for bot mode (token)`}},
		{"url and url_file", "url: https://webexapis.com/x\nurl_file: hook\n", []string{`c.yaml:4: destination "w": url: set either the value or the _file key, not both`}},
		{"token and token_file", "token: t\ntoken_file: token\nroom_id: R\n", []string{`c.yaml:4: destination "w": token: set either the value or the _file key, not both`}},
		{"url_file missing", "url_file: nope\n", []string{`c.yaml:3: destination "w": url: reading secret file`}},
		{"token_file missing", "token_file: nope\nroom_id: R\n", []string{`c.yaml:3: destination "w": token: reading secret file`}},
		{"url scheme", "url: webexapis.com/x\n", []string{`c.yaml:3: destination "w": url must be an http or https URL`}},
		{"api_url host", "token: t\nroom_id: R\napi_url: https:///v1\n", []string{`c.yaml:5: destination "w": api_url is missing a host`}},
		{"template parse error", "url_file: hook\ntemplate_file: broken.tmpl\n", []string{`c.yaml:4: destination "w": template_file: template: broken.tmpl:2: unexpected EOF`}},
		{"template missing", "url_file: hook\ntemplate_file: nope.tmpl\n", []string{`c.yaml:4: destination "w": template_file: open `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(destination(t, "name: w\ntype: webex\n"+tt.yaml), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v (%T), want config.Errors", err, err)
			}
			if len(es) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(es), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d:\n %s\nwant prefix\n %s", i, es[i], w)
				}
			}
		})
	}
}

func TestDefaultAPIURL(t *testing.T) {
	nf, err := New(destination(t, "name: w\ntype: webex\ntoken: t\nroom_id: R\n"), notify.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if got := nf.(*Notifier).s.endpoint.String(); got != DefaultAPIURL+"/messages" {
		t.Errorf("endpoint = %s", got)
	}
}

func TestCloseDropsIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	defer srv.Close()
	n := newNotifier(t, destination(t, "name: w\ntype: webex\nurl: "+srv.URL+hookPath+"\n"), t.TempDir(), nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("keep-alive connection still open after Close")
	}
}
