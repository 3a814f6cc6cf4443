package teams

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
	// The shape of a Workflows trigger URL; sig is the credential.
	flowPath  = "/workflows/0b4c7e1d9a2f4e6b8c3d5a7f9e1b2c4d/triggers/manual/paths/invoke"
	flowQuery = "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Wf51gS3cr3tS1gn4tur3"
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
		EventID:     "NETWORK-INTERFACES-2-301",
		Name:        "Interface down",
		Description: "core-sw1 GigabitEthernet1/0/1 is down",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Interfaces",
		Severity:    2,
		Source:      "trap",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      event.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
		Key:         "GigabitEthernet1/0/1",
	}
}

func resolvedEvent() event.Event {
	e := activeEvent()
	e.Status = event.StatusResolved
	e.Timestamp = e.Timestamp.Add(90 * time.Second)
	return e
}

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("noc-teams"), Event: ev, Attempt: 1}
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
	method, path, query, contentType, userAgent string
	body                                        []byte
}

type reply struct {
	status int
	header map[string]string
	body   string
}

// fakeWorkflow answers like a Workflows trigger: 202 Accepted for the right
// path and signature, 401 otherwise; queued replies override that.
type fakeWorkflow struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []request
	replies []reply
}

func newFakeWorkflow(t *testing.T) *fakeWorkflow {
	f := &fakeWorkflow{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body})
		var rep reply
		switch {
		case len(f.replies) > 0:
			rep, f.replies = f.replies[0], f.replies[1:]
		case r.URL.Path == flowPath && r.URL.Query().Get("sig") == "Wf51gS3cr3tS1gn4tur3":
			rep = reply{status: http.StatusAccepted}
		default:
			rep = reply{status: 401, body: `{"error":{"code":"DirectApiAuthorizationRequired","message":"The request must be authenticated only by Shared Access scheme."}}`}
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

func (f *fakeWorkflow) queue(r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, r)
}

func (f *fakeWorkflow) all() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func flowYAML(base string) string {
	return "name: noc-teams\ntype: teams\nurl: \"" + base + flowPath + "?" + flowQuery + "\"\n"
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

// TestGolden: the firing card, then the resolve as a card marked resolved.
func TestGolden(t *testing.T) {
	f := newFakeWorkflow(t)
	n := newNotifier(t, destination(t, flowYAML(f.URL)), t.TempDir(), nil)
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
		if r.method != http.MethodPost || r.path != flowPath || r.query != flowQuery ||
			r.contentType != "application/json" || r.userAgent != userAgent {
			t.Errorf("request %d: %s %s Content-Type=%q User-Agent=%q", i, r.method, r.path, r.contentType, r.userAgent)
		}
	}
	golden(t, "active.json", reqs[0].body)
	golden(t, "resolved.json", reqs[1].body)

	var m message
	if err := json.Unmarshal(reqs[1].body, &m); err != nil {
		t.Fatal(err)
	}
	band := m.Attachments[0].Content.Body[0].(map[string]any)
	title := band["items"].([]any)[0].(map[string]any)
	if band["style"] != "good" || title["color"] != "good" || title["text"] != "RESOLVED: Interface down" {
		t.Errorf("resolved card not marked resolved: %v", band)
	}
}

func TestSeverityColours(t *testing.T) {
	for sev, want := range map[int]string{1: "attention", 2: "attention", 3: "warning", 4: "accent", 5: "default"} {
		ev := activeEvent()
		ev.Severity = sev
		if got := severityStyle(ev); got != want {
			t.Errorf("severity %d: %s, want %s", sev, got, want)
		}
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "teams.tmpl"), []byte("**{{ .Device.Name }}** ({{ .Device.Site }}): {{ .Description }} on {{ .Key }} — {{ .Status }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeWorkflow(t)
	n := newNotifier(t, destination(t, flowYAML(f.URL)+"template_file: teams.tmpl\n"), dir, nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	golden(t, "template.json", f.all()[0].body)
}

func TestLongTextTruncated(t *testing.T) {
	f := newFakeWorkflow(t)
	n := newNotifier(t, destination(t, flowYAML(f.URL)), t.TempDir(), nil)
	ev := activeEvent()
	ev.Description = strings.Repeat("Schnittstelle ausgefallen — ü ", 2000)
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	var m message
	body := f.all()[0].body
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	text := m.Attachments[0].Content.Body[1].(map[string]any)["text"].(string)
	if len(text) > MaxTextBytes || !utf8.ValidString(text) || !strings.HasSuffix(text, truncatedMark) {
		t.Errorf("text of %d bytes (valid UTF-8 %v), limit %d", len(text), utf8.ValidString(text), MaxTextBytes)
	}
	if len(body) > 28<<10 {
		t.Errorf("message of %d bytes exceeds Teams' 28 KB", len(body))
	}
}

func TestRateLimit(t *testing.T) {
	f := newFakeWorkflow(t)
	f.queue(reply{status: 429, header: map[string]string{"Retry-After": "30"}, body: `{"error":{"code":"WorkflowRequestsThrottled","message":"Number of workflow requests exceeded the limit."}}`})
	n := newNotifier(t, destination(t, flowYAML(f.URL)), t.TempDir(), nil)
	err := n.Send(context.Background(), notification(activeEvent()))
	var ne *notify.Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.RetryAfter != 30*time.Second || ne.Status != 429 {
		t.Fatalf("got %#v, want retryable 429 after 30s", err)
	}
	if !strings.Contains(ne.Reason, "WorkflowRequestsThrottled: Number of workflow requests exceeded the limit.") {
		t.Errorf("reason %q", ne.Reason)
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name       string
		reply      reply
		retryable  bool
		wantReason string
	}{
		{"200 ok", reply{status: 200}, false, ""},
		{"202 accepted", reply{status: 202}, false, ""},
		{"400 schema", reply{status: 400, body: `{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}`}, false, "HTTP 400: TriggerInputSchemaMismatch: The input body for trigger"},
		{"401 bad signature", reply{status: 401, body: `{"error":{"code":"DirectApiInvalidAuthorizationSignature","message":"The provided SAS signature is invalid."}}`}, false, "HTTP 401: DirectApiInvalidAuthorizationSignature"},
		{"404 deleted flow", reply{status: 404, body: `{"error":{"code":"WorkflowNotFound","message":"The workflow was not found."}}`}, false, "HTTP 404: WorkflowNotFound"},
		{"500", reply{status: 500, body: `{"error":{"message":"Internal error"}}`}, true, "HTTP 500: Internal error"},
		{"502 text", reply{status: 502, body: "Bad Gateway"}, true, "HTTP 502: Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeWorkflow(t)
			f.queue(tt.reply)
			n := newNotifier(t, destination(t, flowYAML(f.URL)), t.TempDir(), nil)
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
			if !strings.HasPrefix(ne.Reason, "teams workflow "+f.URL+": ") {
				t.Errorf("reason %q does not name the host (and only the host)", ne.Reason)
			}
		})
	}
}

// TestSecretsNeverLeak: the trigger URL's signature and path must stay out
// of errors and logs on every path.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"Wf51gS3cr3tS1gn4tur3", "0b4c7e1d9a2f4e6b8c3d5a7f9e1b2c4d"}
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
		f := newFakeWorkflow(t)
		logs := &logBuffer{}
		n := newNotifier(t, destination(t, flowYAML(f.URL)), dir, logs)
		if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "teams card accepted") {
			t.Fatalf("debug log not captured")
		}
		check(t, nil, logs)
	})
	t.Run("status error", func(t *testing.T) {
		f := newFakeWorkflow(t)
		f.queue(reply{status: 500, body: "boom"})
		logs := &logBuffer{}
		n := newNotifier(t, destination(t, flowYAML(f.URL)), dir, logs)
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
		n := newNotifier(t, destination(t, flowYAML(base)), dir, logs)
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
		n := newNotifier(t, destination(t, flowYAML(srv.URL)+"timeout: 200ms\n"), dir, logs)
		err := n.Send(context.Background(), notification(activeEvent()))
		var ne *notify.Error
		if !errors.As(err, &ne) || !ne.Retryable || !strings.Contains(ne.Reason, "timeout") {
			t.Fatalf("got %v, want a retryable timeout", err)
		}
		check(t, err, logs)
	})
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: \"ftp://h" + flowPath + "?" + flowQuery + "\"\n",
			"url: \"http://h" + flowPath + "?" + flowQuery + "%zz\\x7f\"\n",
		} {
			_, err := New(destination(t, "name: t\ntype: teams\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
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
		"flow":        "https://prod-00.westeurope.logic.azure.com" + flowPath + "?" + flowQuery + "\n",
		"broken.tmpl": "{{ .Name | nosuchfunc }}\n",
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
		{"missing url", "template_file: x\n", []string{`c.yaml:1: destination "t": url is required`, `c.yaml:3: destination "t": template_file: open `}},
		{"unknown key", "url_file: flow\nwebhook_url: x\n", []string{`c.yaml:4: destination "t": unknown key "webhook_url" (known: template_file, url, url_file)`}},
		{"url and url_file", "url: https://x.logic.azure.com/w\nurl_file: flow\n", []string{`c.yaml:4: destination "t": url: set either the value or the _file key, not both`}},
		{"url_file missing", "url_file: nope\n", []string{`c.yaml:3: destination "t": url: reading secret file`}},
		{"scheme", "url: x.logic.azure.com/w\n", []string{`c.yaml:3: destination "t": url must be an http or https URL`}},
		{"host", "url: https:///w\n", []string{`c.yaml:3: destination "t": url is missing a host`}},
		{"broken template", "url_file: flow\ntemplate_file: broken.tmpl\n", []string{`c.yaml:4: destination "t": template_file: template: broken.tmpl:1: function "nosuchfunc" not defined`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(destination(t, "name: t\ntype: teams\n"+tt.yaml), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
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
		w.WriteHeader(http.StatusAccepted)
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
	n := newNotifier(t, destination(t, flowYAML(srv.URL)), t.TempDir(), nil)
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
