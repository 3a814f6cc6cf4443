package discord

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
	// id/token, as in https://discord.com/api/webhooks/<id>/<token>.
	hookPath = "/api/webhooks/1234567890123456789/d1sc0rdT0k3n-s3cr3t_VALUE"
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
		EventID:     "NETWORK-DEVICES-2-201",
		Name:        "High CPU utilization",
		Description: "core-sw1 CPU at 97% @everyone **check** [phish](http://evil.example)",
		Category:    "ALERT",
		Domain:      "Availability",
		SubDomain:   "Devices",
		Severity:    2,
		Source:      "snmp",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      event.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
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
	method, path, contentType, userAgent string
	body                                 []byte
}

type reply struct {
	status int
	header map[string]string
	body   string
}

// fakeDiscord answers like a channel webhook: 204 for the right id and
// token, 401 Invalid Webhook Token otherwise; queued replies override that.
type fakeDiscord struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []request
	replies []reply
}

func newFakeDiscord(t *testing.T) *fakeDiscord {
	f := &fakeDiscord{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body})
		var rep reply
		switch {
		case len(f.replies) > 0:
			rep, f.replies = f.replies[0], f.replies[1:]
		case r.URL.Path == hookPath:
			rep = reply{status: http.StatusNoContent}
		default:
			rep = reply{status: 401, body: `{"message": "Invalid Webhook Token", "code": 50027}`}
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

func (f *fakeDiscord) queue(r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, r)
}

func (f *fakeDiscord) all() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func hookYAML(base string) string {
	return "name: noc-discord\ntype: discord\nurl: " + base + hookPath + "\n"
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

// TestGolden: the firing embed, then the resolve as a new green embed.
func TestGolden(t *testing.T) {
	f := newFakeDiscord(t)
	n := newNotifier(t, destination(t, hookYAML(f.URL)), t.TempDir(), nil)
	for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
		if err := n.Send(context.Background(), notification(ev)); err != nil {
			t.Fatalf("Send %s: %v", ev.Status, err)
		}
	}
	reqs := f.all()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.method != http.MethodPost || r.path != hookPath || r.contentType != "application/json" || r.userAgent != userAgent {
			t.Errorf("request %d: %s %s Content-Type=%q User-Agent=%q", i, r.method, r.path, r.contentType, r.userAgent)
		}
	}
	golden(t, "active.json", reqs[0].body)
	golden(t, "resolved.json", reqs[1].body)

	for _, r := range reqs {
		var m message
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		if m.AllowedMentions.Parse == nil || len(m.AllowedMentions.Parse) != 0 || !bytes.Contains(r.body, []byte(`"allowed_mentions":{"parse":[]}`)) {
			t.Errorf("allowed_mentions must be an explicitly empty parse list: %s", r.body)
		}
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "discord.tmpl"), []byte("**{{ .Device.Name }}** in {{ .Device.Site }}: {{ .Description }}\n{{ .Priority }} · {{ .Status }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeDiscord(t)
	n := newNotifier(t, destination(t, hookYAML(f.URL)+"template_file: discord.tmpl\n"), dir, nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	body := f.all()[0].body
	golden(t, "template.json", body)
	if bytes.Contains(body, []byte("[phish](")) {
		t.Errorf("event text became a masked link")
	}
}

func TestEmbedLimits(t *testing.T) {
	ev := activeEvent()
	ev.Name = strings.Repeat("N", 400)
	ev.Key = strings.Repeat("k", 2000)
	ev.Device.Site = strings.Repeat("ß", 1500)
	m := render(ev, externalURL, strings.Repeat("ü", 9000))
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
		reply reply
		want  time.Duration
	}{
		{"body retry_after wins over the header", reply{status: 429, header: map[string]string{"Retry-After": "2"}, body: `{"message": "You are being rate limited.", "retry_after": 1.337, "global": false}`}, 1337 * time.Millisecond},
		{"header only", reply{status: 429, header: map[string]string{"Retry-After": "3"}, body: "<html>cloudflare</html>"}, 3 * time.Second},
		{"global", reply{status: 429, body: `{"message": "You are being rate limited.", "retry_after": 64.57, "global": true}`}, 64570 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDiscord(t)
			f.queue(tt.reply)
			n := newNotifier(t, destination(t, hookYAML(f.URL)), t.TempDir(), nil)
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
	tests := []struct {
		name       string
		reply      reply
		retryable  bool
		wantReason string
	}{
		{"200 with wait=true", reply{status: 200, body: `{"id":"1"}`}, false, ""},
		{"404 unknown webhook", reply{status: 404, body: `{"message": "Unknown Webhook", "code": 10015}`}, false, "HTTP 404: Unknown Webhook (code 10015)"},
		{"401 bad token", reply{status: 401, body: `{"message": "Invalid Webhook Token", "code": 50027}`}, false, "HTTP 401: Invalid Webhook Token (code 50027)"},
		{"400 form body", reply{status: 400, body: `{"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}, "title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]}}}}}`}, false,
			"HTTP 400: Invalid Form Body (code 50035): embeds.0.description: Must be 4096 or fewer in length.; embeds.0.title: Must be 256 or fewer in length."},
		{"500", reply{status: 500, body: `{"message": "500: Internal Server Error", "code": 0}`}, true, "HTTP 500: 500: Internal Server Error"},
		{"502 html", reply{status: 502, body: "<html>bad gateway</html>"}, true, "HTTP 502: <html>bad gateway</html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDiscord(t)
			f.queue(tt.reply)
			n := newNotifier(t, destination(t, hookYAML(f.URL)), t.TempDir(), nil)
			err := n.Send(context.Background(), notification(activeEvent()))
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("%d must be success: %v", tt.reply.status, err)
				}
				return
			}
			var ne *notify.Error
			if !errors.As(err, &ne) {
				t.Fatalf("got %v, want *notify.Error", err)
			}
			if ne.Retryable != tt.retryable || !strings.Contains(ne.Reason, tt.wantReason) || ne.Status != tt.reply.status {
				t.Errorf("retryable=%v status=%d reason=%q, want %v %d %q", ne.Retryable, ne.Status, ne.Reason, tt.retryable, tt.reply.status, tt.wantReason)
			}
			if !strings.HasPrefix(ne.Reason, "discord webhook "+f.URL+": ") {
				t.Errorf("reason %q does not name the host (and only the host)", ne.Reason)
			}
		})
	}
}

// TestSecretsNeverLeak: the webhook token in the URL's path must stay out of
// errors and logs on every path.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"d1sc0rdT0k3n-s3cr3t_VALUE", "1234567890123456789/"}
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
	t.Run("success", func(t *testing.T) {
		f := newFakeDiscord(t)
		logs := &logBuffer{}
		n := newNotifier(t, destination(t, hookYAML(f.URL)), dir, logs)
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
		f.queue(reply{status: 500, body: "boom"})
		logs := &logBuffer{}
		n := newNotifier(t, destination(t, hookYAML(f.URL)), dir, logs)
		err := n.Send(context.Background(), notification(activeEvent()))
		if err == nil {
			t.Fatal("expected an error")
		}
		check(t, err, logs)
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + ln.Addr().String()
		_ = ln.Close()
		logs := &logBuffer{}
		n := newNotifier(t, destination(t, hookYAML(base)), dir, logs)
		err = n.Send(context.Background(), notification(activeEvent()))
		if !notify.Retryable(err) {
			t.Fatalf("got %v, want retryable", err)
		}
		check(t, err, logs)
	})
	t.Run("timeout", func(t *testing.T) {
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
		n := newNotifier(t, destination(t, hookYAML(srv.URL)+"timeout: 200ms\n"), dir, logs)
		err := n.Send(context.Background(), notification(activeEvent()))
		var ne *notify.Error
		if !errors.As(err, &ne) || !ne.Retryable || !strings.Contains(ne.Reason, "timeout") {
			t.Fatalf("got %v, want a retryable timeout", err)
		}
		check(t, err, logs)
	})
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: ftp://discord.com" + hookPath + "\n",
			"url: \"https://discord.com" + hookPath + "\\x7f\"\n",
		} {
			_, err := New(destination(t, "name: d\ntype: discord\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
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
		"hook":        "https://discord.com" + hookPath + "\n",
		"empty":       "  \n",
		"broken.tmpl": "ok\n{{ end }}\n",
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
		{"missing url", "", []string{`c.yaml:1: destination "d": url is required`}},
		{"unknown key", "url_file: hook\nusername: bot\n", []string{`c.yaml:4: destination "d": unknown key "username" (known: template_file, url, url_file)`}},
		{"url and url_file", "url: https://discord.com/x\nurl_file: hook\n", []string{`c.yaml:4: destination "d": url: set either the value or the _file key, not both`}},
		{"url_file missing", "url_file: nope\n", []string{`c.yaml:3: destination "d": url: reading secret file`}},
		{"url_file empty", "url_file: empty\n", []string{`c.yaml:3: destination "d": url: secret file ` + filepath.Join(dir, "empty") + ` is empty`}},
		{"scheme", "url: discord.com/api/webhooks/1/x\n", []string{`c.yaml:3: destination "d": url must be an http or https URL`}},
		{"broken template", "url_file: hook\ntemplate_file: broken.tmpl\n", []string{`c.yaml:4: destination "d": template_file: template: broken.tmpl:2: unexpected {{end}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(destination(t, "name: d\ntype: discord\n"+tt.yaml), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
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
	n := newNotifier(t, destination(t, hookYAML(srv.URL)), t.TempDir(), nil)
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
