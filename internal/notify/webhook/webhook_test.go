package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// activeEvent carries a label, which the DNAC payload passes on.
func activeEvent() event.Event {
	ev := notifytest.DeviceDown()
	ev.Device.Labels = map[string]string{"vendor": "cisco"}
	return ev
}

func resolvedEvent() event.Event { return notifytest.Recovered(activeEvent()) }

func notification(ev event.Event, dest string) notify.Notification {
	return notify.Notification{ID: ev.NotificationID(dest), Event: ev, Attempt: 1}
}

func newNotifier(t *testing.T, d config.Destination, dir string) *Notifier {
	t.Helper()
	nf, err := New(d, notifytest.Env(dir, nil))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n := nf.(*Notifier)
	n.now = func() time.Time { return notifytest.AttemptTime }
	return n
}

// recorder is an httptest server that keeps every request and answers with
// the configured status.
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
	status int
	header http.Header
	body   string
}

func newRecorder(t *testing.T, status int) *recorder {
	r := &recorder{status: status, header: http.Header{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.handle))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) handle(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.bodies = append(r.bodies, b)
	for k, v := range r.header {
		w.Header()[k] = v
	}
	status, body := r.status, r.body
	r.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (r *recorder) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("server received no request")
	}
	return r.reqs[len(r.reqs)-1], r.bodies[len(r.bodies)-1]
}

func TestGoldenDNAC(t *testing.T) {
	srv := newRecorder(t, http.StatusNoContent)
	n := newNotifier(t, notifytest.Destination(t, "name: itsm-hook\ntype: webhook\nurl: "+srv.URL+"/hooks/dnac\n"), t.TempDir())
	for _, tt := range []struct {
		golden string
		ev     event.Event
	}{
		{"dnac-active.json", activeEvent()},
		{"dnac-resolved.json", resolvedEvent()},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			if err := n.Send(context.Background(), notification(tt.ev, "itsm-hook")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			_, body := srv.last(t)
			if bytes.Contains(body, []byte("\n")) {
				t.Errorf("wire body should be compact JSON")
			}
			notifytest.GoldenJSON(t, tt.golden, body)
		})
	}
}

// TestPayloadJSONTypes pins the JSON types DNA Center receivers decode into:
// a typed receiver breaks if tags becomes an array or severity a string.
func TestPayloadJSONTypes(t *testing.T) {
	srv := newRecorder(t, http.StatusOK)
	n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+srv.URL+"\n"), t.TempDir())
	ev := activeEvent()
	ev.Key = "GigabitEthernet1/0/1"
	if err := n.Send(context.Background(), notification(ev, "h")); err != nil {
		t.Fatal(err)
	}
	_, body := srv.last(t)
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"version": "string", "instanceId": "string", "eventId": "string", "namespace": "string",
		"name": "string", "description": "string", "type": "string", "category": "string",
		"domain": "string", "subDomain": "string", "severity": "number", "source": "string",
		"timestamp": "number", "tags": "string", "details": "object", "ciscoDnaEventLink": "string",
		"note": "string", "tntId": "string", "context": "string", "tenantId": "string",
	}
	for k, typ := range want {
		v, ok := p[k]
		if !ok {
			t.Errorf("payload lacks %q", k)
			continue
		}
		if got := jsonType(v); got != typ {
			t.Errorf("%s is a JSON %s, want %s", k, got, typ)
		}
	}
	for k := range p {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected top-level field %q (additions belong in details)", k)
		}
	}
	details := p["details"].(map[string]any)
	for k, v := range details {
		if jsonType(v) != "string" {
			t.Errorf("details[%q] is a JSON %s, want string", k, jsonType(v))
		}
	}
	if details["Instance"] != "GigabitEthernet1/0/1" || details["Loss Percent"] != "100" {
		t.Errorf("details lack the instance key or extra details: %v", details)
	}
	if p["timestamp"].(float64) != 1763840000000 || p["severity"].(float64) != 1 {
		t.Errorf("timestamp/severity = %v/%v", p["timestamp"], p["severity"])
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return "?"
}

func TestSendRequest(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "itsm-password", "s3cret-pw\n")
	notifytest.WriteFile(t, dir, "signing", testSecret+"\n")
	notifytest.WriteFile(t, dir, "token", "tok-123\n")
	tests := []struct {
		name       string
		yaml       string // after url
		method     string
		auth       string
		signed     bool
		wantHeader map[string]string
	}{
		{
			name:   "defaults: POST, unsigned, no auth",
			yaml:   "",
			method: http.MethodPost,
		},
		{
			name:       "PUT, basic auth from file, secret from file, custom headers",
			yaml:       "method: PUT\nheaders: {X-Team: noc, X-Env: prod}\nbasic_auth: {username: dnac, password_file: itsm-password}\nsecret_file: signing\n",
			method:     http.MethodPut,
			auth:       "Basic ZG5hYzpzM2NyZXQtcHc=", // dnac:s3cret-pw
			signed:     true,
			wantHeader: map[string]string{"X-Team": "noc", "X-Env": "prod"},
		},
		{
			name:   "bearer inline, inline secret, lower-case method",
			yaml:   "method: post\nbearer_token: tok-abc\nsecret: " + testSecret + "\n",
			method: http.MethodPost,
			auth:   "Bearer tok-abc",
			signed: true,
		},
		{
			name:   "bearer from file",
			yaml:   "bearer_token_file: token\n",
			method: http.MethodPost,
			auth:   "Bearer tok-123",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, http.StatusAccepted)
			d := notifytest.Destination(t, "name: itsm-hook\ntype: webhook\nurl: "+srv.URL+"/hooks/dnac?tenant=7\n"+tt.yaml)
			n := newNotifier(t, d, dir)
			ev := activeEvent()
			nt := notification(ev, "itsm-hook")
			if err := n.Send(context.Background(), nt); err != nil {
				t.Fatalf("Send: %v", err)
			}
			req, body := srv.last(t)
			if req.Method != tt.method {
				t.Errorf("method = %s, want %s", req.Method, tt.method)
			}
			if req.URL.Path != "/hooks/dnac" || req.URL.RawQuery != "tenant=7" {
				t.Errorf("request URI = %s", req.URL.RequestURI())
			}
			want := map[string]string{
				"Content-Type":      "application/json",
				"User-Agent":        notifytest.UserAgent,
				"Webhook-Id":        nt.ID,
				"Webhook-Timestamp": "1763840005",
				"Authorization":     tt.auth,
			}
			for k, v := range tt.wantHeader {
				want[k] = v
			}
			for k, v := range want {
				if got := req.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			sig := req.Header.Get("Webhook-Signature")
			if tt.signed {
				if err := webhooksig.Verify(testSecret, req.Header, body, notifytest.AttemptTime, 0); err != nil {
					t.Errorf("signature %q does not verify: %v", sig, err)
				}
			} else if sig != "" {
				t.Errorf("unsigned destination sent webhook-signature %q", sig)
			}
			wantBody, _ := json.Marshal(ev.DNAC(notifytest.ExternalURL))
			if !bytes.Equal(body, wantBody) {
				t.Errorf("body = %s\nwant %s", body, wantBody)
			}
		})
	}
}

func TestWebhookIDStableAcrossAttempts(t *testing.T) {
	srv := newRecorder(t, http.StatusServiceUnavailable)
	n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+srv.URL+"\nsecret: "+testSecret+"\n"), t.TempDir())
	nt := notification(activeEvent(), "h")
	for i := 1; i <= 2; i++ {
		nt.Attempt = i
		n.now = func() time.Time { return notifytest.AttemptTime.Add(time.Duration(i) * time.Minute) }
		_ = n.Send(context.Background(), nt)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.reqs) != 2 {
		t.Fatalf("got %d requests", len(srv.reqs))
	}
	a, b := srv.reqs[0].Header, srv.reqs[1].Header
	if a.Get("Webhook-Id") != b.Get("Webhook-Id") {
		t.Errorf("webhook-id changed between attempts")
	}
	if a.Get("Webhook-Timestamp") == b.Get("Webhook-Timestamp") || a.Get("Webhook-Signature") == b.Get("Webhook-Signature") {
		t.Errorf("timestamp and signature must be per attempt")
	}
}

func TestTemplateFormat(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "itsm.tmpl", `{"summary": {{ json .Description }}, "severity": "{{ .Priority }}", "host": {{ json .Device.Name }}, "state": "{{ upper (print .Status) }}", "id": "{{ .WebhookID }}", "link": "{{ .AlertURL }}", "event": "{{ .DNAC.EventID }}"}`)
	srv := newRecorder(t, http.StatusOK)
	n := newNotifier(t, notifytest.Destination(t, "name: tpl\ntype: webhook\nurl: "+srv.URL+"\nformat: template\ntemplate_file: itsm.tmpl\n"), dir)
	ev := activeEvent()
	ev.Description = `core-sw1 "quoted"`
	nt := notification(ev, "tpl")
	if err := n.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	req, body := srv.last(t)
	want := `{"summary": "core-sw1 \"quoted\"", "severity": "P1", "host": "core-sw1", "state": "ACTIVE", "id": "` + nt.ID +
		`", "link": "http://127.0.0.1:9720/alerts/5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f", "event": "NETWORK-DEVICES-1-101"}`
	if string(body) != want {
		t.Fatalf("body = %s\nwant %s", body, want)
	}
	if req.Header.Get("Content-Type") != "application/json" || req.Header.Get("Webhook-Id") != nt.ID {
		t.Errorf("template body sent without the standard headers: %v", req.Header)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	notifytest.WriteFile(t, dir, "ca.pem", string(ca))

	tests := []struct {
		name    string
		tls     string
		wantErr string
	}{
		{"ca_file", "tls: {ca_file: ca.pem}\n", ""},
		{"insecure_skip_verify", "tls: {insecure_skip_verify: true}\n", ""},
		{"untrusted", "", "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNotifier(t, notifytest.Destination(t, "name: tls\ntype: webhook\nurl: "+srv.URL+"/x\n"+tt.tls), dir)
			err := n.Send(context.Background(), notification(activeEvent(), "tls"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Send error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if !notify.Retryable(err) {
				t.Errorf("TLS failure should be retryable (a certificate can be fixed while queued)")
			}
		})
	}
}

func TestProxy(t *testing.T) {
	type seen struct {
		method, uri, host, proxyAuth string
		body                         []byte
	}
	var mu sync.Mutex
	var got []seen
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Host, r.Header.Get("Proxy-Authorization"), b})
		mu.Unlock()
		// Answers itself: the target host is never contacted.
		w.WriteHeader(http.StatusNoContent)
	}))
	defer proxy.Close()
	proxyURL := strings.Replace(proxy.URL, "http://", "http://squid:pr0xy-pw@", 1)
	d := notifytest.Destination(t, "name: via-proxy\ntype: webhook\nurl: http://itsm.example.com/hooks/dnac\nproxy_url: "+proxyURL+"\n")
	n := newNotifier(t, d, t.TempDir())
	if err := n.Send(context.Background(), notification(activeEvent(), "via-proxy")); err != nil {
		t.Fatalf("Send through proxy: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("proxy saw %d requests", len(got))
	}
	s := got[0]
	if s.method != http.MethodPost || s.uri != "http://itsm.example.com/hooks/dnac" || s.host != "itsm.example.com" {
		t.Errorf("proxy saw %s %s (Host %s)", s.method, s.uri, s.host)
	}
	if s.proxyAuth != "Basic c3F1aWQ6cHIweHktcHc=" {
		t.Errorf("Proxy-Authorization = %q", s.proxyAuth)
	}
	if !json.Valid(s.body) {
		t.Errorf("proxied body is not JSON")
	}
}

// TestEnvironmentProxyIgnored: only proxy_url proxies; HTTP_PROXY must not
// divert a daemon's (or a test's) traffic.
func TestEnvironmentProxyIgnored(t *testing.T) {
	proxyHits := 0
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxyHits++
		mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	srv := newRecorder(t, http.StatusNoContent)
	n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+srv.URL+"\n"), t.TempDir())
	if err := n.Send(context.Background(), notification(activeEvent(), "h")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if proxyHits != 0 {
		t.Fatalf("environment proxy was used")
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	n := newNotifier(t, notifytest.Destination(t, "name: slow\ntype: webhook\nurl: "+srv.URL+"\ntimeout: 150ms\n"), t.TempDir())
	start := time.Now()
	err := n.Send(context.Background(), notification(activeEvent(), "slow"))
	var ne *notify.Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.Status != 0 {
		t.Fatalf("got %#v, want a retryable *notify.Error without status", err)
	}
	if !strings.Contains(ne.Reason, "timeout") {
		t.Errorf("reason %q does not say timeout", ne.Reason)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timeout of 150ms took %s", el)
	}
}

func TestCanceledContextIsRetryable(t *testing.T) {
	srv := newRecorder(t, http.StatusOK)
	n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+srv.URL+"\n"), t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := n.Send(ctx, notification(activeEvent(), "h"))
	if !notify.Retryable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want retryable wrapping context.Canceled", err)
	}
}

func TestStatusClassification(t *testing.T) {
	httpDate := notifytest.AttemptTime.Add(42 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		retryable  bool
		wantAfter  time.Duration
		wantReason string
	}{
		{"200", 200, "", "", false, 0, ""},
		{"204", 204, "", "", false, 0, ""},
		{"503 with Retry-After seconds", 503, "7", "maintenance", true, 7 * time.Second, "HTTP 503: maintenance"},
		{"429 with Retry-After date", 429, httpDate, "slow down", true, 42 * time.Second, "HTTP 429: slow down"},
		{"408", 408, "", "", true, 0, "HTTP 408"},
		{"425", 425, "", "", true, 0, "HTTP 425"},
		{"500", 500, "", "boom", true, 0, "HTTP 500: boom"},
		{"400 with body", 400, "", `{"error":"field severity: expected string"}`, false, 0, `HTTP 400: {"error":"field severity: expected string"}`},
		{"404", 404, "", "no such hook", false, 0, "HTTP 404: no such hook"},
		{"401", 401, "", "", false, 0, "HTTP 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, tt.status)
			srv.body = tt.body
			if tt.retryAfter != "" {
				srv.header.Set("Retry-After", tt.retryAfter)
			}
			n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+srv.URL+"/hook\n"), t.TempDir())
			err := n.Send(context.Background(), notification(activeEvent(), "h"))
			if tt.status < 300 {
				if err != nil {
					t.Fatalf("%d: %v", tt.status, err)
				}
				return
			}
			ne := notifytest.Classified{Status: tt.status, Retryable: tt.retryable, RetryAfter: tt.wantAfter, Reason: tt.wantReason}.Check(t, err)
			if !strings.Contains(ne.Reason, "POST "+srv.URL+"/hook") {
				t.Errorf("reason %q lacks the destination URL", ne.Reason)
			}
		})
	}
}

// TestSecretsNeverInErrors drives every failure path with secrets in the URL
// (userinfo, query), the auth header and the signing key.
func TestSecretsNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"urlpass99", "qtoken77", "bearer-xyz-55", testSecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("expected an error")
		}
		var ne *notify.Error
		texts := []string{err.Error(), strings.ReplaceAll(err.Error(), "%", "")}
		if errors.As(err, &ne) {
			texts = append(texts, ne.Reason)
		}
		for _, txt := range texts {
			for _, s := range secrets {
				if strings.Contains(txt, s) {
					t.Fatalf("error text leaks a secret") // deliberately not printing it
				}
			}
		}
	}
	withSecrets := func(base string) string {
		return strings.Replace(base, "http://", "http://user:urlpass99@", 1) + "/hook?token=qtoken77"
	}
	extra := "bearer_token: bearer-xyz-55\nsecret: " + testSecret + "\n"

	t.Run("status error", func(t *testing.T) {
		srv := newRecorder(t, 500)
		srv.body = "internal"
		n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+withSecrets(srv.URL)+"\n"+extra), dir)
		check(t, n.Send(context.Background(), notification(activeEvent(), "h")))
	})
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+withSecrets(u)+"\n"+extra), dir)
		err := n.Send(context.Background(), notification(activeEvent(), "h"))
		check(t, err)
		if !notify.Retryable(err) {
			t.Errorf("connection refused must be retryable")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv := notifytest.HangingServer(t)
		n := newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+withSecrets(srv.URL)+"\ntimeout: 100ms\n"+extra), dir)
		check(t, n.Send(context.Background(), notification(activeEvent(), "h")))
	})
	t.Run("config error", func(t *testing.T) {
		_, err := New(notifytest.Destination(t, "name: h\ntype: webhook\nurl: ftp://user:urlpass99@host/x?token=qtoken77\nbearer_token: bearer-xyz-55\nsecret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
		check(t, err)
	})
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "broken.tmpl", "{\n  \"a\": {{ .Name }\n}\n")
	notifytest.WriteFile(t, dir, "missing-field.tmpl", `{"a": "{{ .NoSuchField }}"}`)
	notifytest.WriteFile(t, dir, "plain-secret", "not-a-whsec\n")
	notifytest.ConfigCases(t, New, "name: h\ntype: webhook\n", dir, []notifytest.ConfigCase{
		{Name: "missing url", YAML: "method: POST\n", Want: []string{`c.yaml:1: destination "h": url is required`}},
		{Name: "bad scheme", YAML: "url: ftp://host/x\n", Want: []string{`c.yaml:3: destination "h": url ftp://host/x: scheme must be http or https`}},
		{Name: "no host", YAML: "url: http:///x\n", Want: []string{`c.yaml:3: destination "h": url http:///x: missing host`}},
		{Name: "method", YAML: "url: http://h/\nmethod: DELETE\n", Want: []string{`c.yaml:4: destination "h": method "DELETE": must be POST or PUT`}},
		{Name: "unknown key", YAML: "url: http://h/\nsecrte: x\n", Want: []string{`c.yaml:4: destination "h": unknown key "secrte" (known: basic_auth, bearer_token`}},
		{Name: "unknown nested key", YAML: "url: http://h/\nbasic_auth:\n  username: u\n  pasword: p\n", Want: []string{`c.yaml:6: destination "h": unknown key "pasword" in basic_auth (known: password, password_file, username)`}},
		{Name: "secret not whsec", YAML: "url: http://h/\nsecret: abc123\n", Want: []string{`c.yaml:4: destination "h": secret: secret must be whsec_ followed by base64`}},
		{Name: "secret file not whsec", YAML: "url: http://h/\nsecret_file: plain-secret\n", Want: []string{`c.yaml:4: destination "h": secret: secret must be whsec_`}},
		{Name: "secret file missing", YAML: "url: http://h/\nsecret_file: nope\n", Want: []string{`c.yaml:4: destination "h": secret: reading secret file`}},
		{Name: "secret and file", YAML: "url: http://h/\nsecret: " + testSecret + "\nsecret_file: plain-secret\n", Want: []string{`c.yaml:5: destination "h": secret: set either the value or the _file key, not both`}},
		{Name: "basic and bearer", YAML: "url: http://h/\nbasic_auth: {username: u, password: p}\nbearer_token: t\n", Want: []string{`c.yaml:5: destination "h": set basic_auth or bearer_token, not both`}},
		{Name: "basic without username", YAML: "url: http://h/\nbasic_auth: {password: p}\n", Want: []string{`c.yaml:4: destination "h": basic_auth.username is required`}},
		{Name: "reserved header", YAML: "url: http://h/\nheaders:\n  webhook-id: x\n  content-type: text/plain\n", Want: []string{
			`c.yaml:5: destination "h": header webhook-id is set by nocbridge`,
			`c.yaml:6: destination "h": header content-type is set by nocbridge`}},
		{Name: "authorization with auth", YAML: "url: http://h/\nbearer_token: t\nheaders: {Authorization: x}\n", Want: []string{`c.yaml:5: destination "h": header Authorization conflicts with basic_auth/bearer_token`}},
		{Name: "bad header name", YAML: "url: http://h/\nheaders: {\"X Bad\": x}\n", Want: []string{`c.yaml:4: destination "h": header name "X Bad" is not a valid HTTP header name`}},
		{Name: "template without file", YAML: "url: http://h/\nformat: template\n", Want: []string{`c.yaml:4: destination "h": format template needs template_file`}},
		{Name: "template_file without format", YAML: "url: http://h/\ntemplate_file: x.tmpl\n", Want: []string{`c.yaml:4: destination "h": template_file needs format: template`}},
		{Name: "bad format", YAML: "url: http://h/\nformat: xml\n", Want: []string{`c.yaml:4: destination "h": format "xml": must be dnac or template`}},
		{Name: "template parse error", YAML: "url: http://h/\nformat: template\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:5: destination "h": template_file: template: broken.tmpl:2: unexpected "}" in operand`}},
		{Name: "template missing field", YAML: "url: http://h/\nformat: template\ntemplate_file: missing-field.tmpl\n", Want: []string{`c.yaml:5: destination "h": template_file: ` + filepath.Join(dir, "missing-field.tmpl") + `: template: missing-field.tmpl:1:`}},
		{Name: "several at once", YAML: "url: gopher://h/\nmethod: GET\nformat: xml\n", Want: []string{
			`c.yaml:3: destination "h": url gopher://h/`,
			`c.yaml:4: destination "h": method "GET"`,
			`c.yaml:5: destination "h": format "xml"`}},
		{Name: "wrong value type", YAML: "url: http://h/\nheaders: [a, b]\n", Want: []string{`c.yaml:4: destination "h": headers must be a mapping, not a list`}},
	})
}

func TestValidConfigs(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "ok.tmpl", `{"text": {{ json .Description }}}`)
	for _, y := range []string{
		"url: https://itsm.example.com/hooks/dnac\n",
		"url: http://h/\ntimeout: 5s\nretry: {initial: 1s}\nrate_limit: 2\nformat: dnac\n",
		"url: http://h/\nformat: template\ntemplate_file: ok.tmpl\nheaders: {Authorization: Token abc}\n",
	} {
		if _, err := New(notifytest.Destination(t, "name: h\ntype: webhook\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir}); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}

func TestCloseDropsIdleConnections(t *testing.T) {
	notifytest.ClosesIdleConnections(t, notifytest.Reply{Status: http.StatusNoContent}, func(base string) notify.Notifier {
		return newNotifier(t, notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+base+"\n"), t.TempDir())
	}, notification(activeEvent(), "h"))
}
