package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

func TestRedactor(t *testing.T) {
	tests := []struct {
		name    string
		minLen  int
		secrets []string
		in      string
		want    string
	}{
		{"replaces every occurrence", 4, []string{"s3cret"}, "a s3cret and s3cret", "a <redacted> and <redacted>"},
		{"whole URL before its parts", 2, []string{"http://h/p/tok", "/p/tok"}, "Post http://h/p/tok: /p/tok", "Post <redacted>: <redacted>"},
		{"too short to replace", 4, []string{"abc"}, "abc def", "abc def"},
		{"empty secret ignored", 0, []string{""}, "text", "text"},
	}
	for _, tt := range tests {
		if got := NewRedactor(tt.minLen, tt.secrets...).Redact(tt.in); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	r := NewRedactor(4, "tok3n")
	err := r.Error(fmt.Errorf("dial tok3n: %w", context.DeadlineExceeded))
	if err.Error() != "dial <redacted>: context deadline exceeded" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Error: %q, chain kept=%v", err, errors.Is(err, context.DeadlineExceeded))
	}
	if r.Error(nil) != nil {
		t.Error("Error(nil) must be nil")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestNetworkError(t *testing.T) {
	secret := "https://h.example/hook/s3cr3tT0ken"
	r := NewRedactor(2, secret, "/hook/s3cr3tT0ken")
	tests := []struct {
		name, what string
		err        error
		is         error
	}{
		{"canceled", "canceled", &url.Error{Op: "Post", URL: secret, Err: context.Canceled}, context.Canceled},
		{"deadline", "timeout", &url.Error{Op: "Post", URL: secret, Err: context.DeadlineExceeded}, context.DeadlineExceeded},
		{"net timeout", "timeout", &url.Error{Op: "Post", URL: secret, Err: timeoutErr{}}, nil},
		{"refused", "request failed", &url.Error{Op: "Post", URL: secret, Err: errors.New("dial " + secret + ": connection refused")}, nil},
	}
	for _, tt := range tests {
		e := NetworkError("slack webhook https://h.example", tt.err, r)
		if !e.Retryable || e.Status != 0 || e.Reason != "slack webhook https://h.example: "+tt.what {
			t.Errorf("%s: retryable=%v status=%d reason=%q", tt.name, e.Retryable, e.Status, e.Reason)
		}
		if strings.Contains(e.Error(), "s3cr3tT0ken") {
			t.Errorf("%s: the URL's token leaked into the error text", tt.name)
		}
		if tt.is != nil && !errors.Is(e, tt.is) {
			t.Errorf("%s: errors.Is(%v) lost", tt.name, tt.is)
		}
	}
}

func TestResponseError(t *testing.T) {
	now := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	r := NewRedactor(4, "k3y-value")
	tests := []struct {
		name      string
		status    int
		header    http.Header
		message   string
		retryable bool
		after     time.Duration
		reason    string
	}{
		{"permanent with message", 400, nil, "invalid k3y-value", false, 0, "POST https://x/v2: HTTP 400: invalid <redacted>"},
		{"rate limited", 429, http.Header{"Retry-After": {"7"}}, "", true, 7 * time.Second, "POST https://x/v2: HTTP 429"},
		{"server error", 503, nil, "down", true, 0, "POST https://x/v2: HTTP 503: down"},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: tt.header}
		e := ResponseError("POST https://x/v2", resp, tt.message, now, r)
		if e.Retryable != tt.retryable || e.RetryAfter != tt.after || e.Status != tt.status || e.Reason != tt.reason {
			t.Errorf("%s: got retryable=%v after=%s status=%d reason=%q", tt.name, e.Retryable, e.RetryAfter, e.Status, e.Reason)
		}
	}
}

func TestJoinFieldErrors(t *testing.T) {
	tests := []struct {
		messages []string
		fields   map[string]string
		want     string
	}{
		{[]string{"Bad request"}, nil, "Bad request"},
		{nil, map[string]string{"summary": "too long", "project": "unknown"}, "project: unknown; summary: too long"},
		{[]string{"a", "b"}, map[string]string{"f": "x"}, "a; b; f: x"},
	}
	for _, tt := range tests {
		if got := JoinFieldErrors(tt.messages, tt.fields); got != tt.want {
			t.Errorf("JoinFieldErrors(%v, %v) = %q, want %q", tt.messages, tt.fields, got, tt.want)
		}
	}
}

func TestReadErrorBodyAndDrain(t *testing.T) {
	big := strings.Repeat("e", maxErrorBody+100)
	resp := &http.Response{Body: io.NopCloser(strings.NewReader(big))}
	if got := ReadErrorBody(resp); len(got) != maxErrorBody {
		t.Errorf("ReadErrorBody read %d bytes, want %d", len(got), maxErrorBody)
	}
	body := &closeRecorder{Reader: strings.NewReader("rest")}
	DrainAndClose(body)
	if !body.closed || body.Len() != 0 {
		t.Errorf("DrainAndClose: closed=%v, %d bytes left", body.closed, body.Len())
	}
}

type closeRecorder struct {
	*strings.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestJSONAPI drives Call against a loopback server: headers, the decoded
// answer, service errors, an answer that is not JSON and a refused port.
func TestJSONAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken-value" || r.Header.Get("Accept") != "application/json" || r.Header.Get("User-Agent") != "nocbridge/test" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"bad auth"}`)
			return
		}
		switch r.URL.Path {
		case "/ok":
			body, _ := io.ReadAll(r.Body)
			if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			_, _ = fmt.Fprintf(w, `{"echo":%q}`, body)
		case "/html":
			_, _ = io.WriteString(w, "<html>login</html>")
		default:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"message":"echo t0ken-value"}`)
		}
	}))
	defer srv.Close()
	api := &JSONAPI{
		Client: srv.Client(), UserAgent: "nocbridge/test", Authorization: "Bearer t0ken-value",
		Redactor: NewRedactor(4, "t0ken-value"), AnswerName: "Test JSON", Now: time.Now,
		ServiceMessage: func(b []byte) string { return Excerpt(b) },
	}
	u := func(p string) *url.URL { x, _ := url.Parse(srv.URL + p); return x }

	var out struct{ Echo string }
	if err := api.Call(context.Background(), http.MethodPost, u("/ok"), map[string]int{"a": 1}, &out); err != nil || out.Echo != `{"a":1}` {
		t.Fatalf("POST /ok: %v, echo %q", err, out.Echo)
	}
	if err := api.Call(context.Background(), http.MethodGet, u("/ok"), nil, nil); err != nil {
		t.Fatalf("GET /ok without out: %v", err)
	}

	err := api.Call(context.Background(), http.MethodGet, u("/down"), nil, nil)
	var ne *Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.Status != 503 || ne.RetryAfter != 3*time.Second ||
		ne.Reason != "GET "+srv.URL+"/down: HTTP 503: {\"message\":\"echo <redacted>\"}" {
		t.Errorf("503: %#v", err)
	}

	err = api.Call(context.Background(), http.MethodGet, u("/html"), nil, &out)
	if !errors.As(err, &ne) || !ne.Retryable || !strings.HasSuffix(ne.Reason, ": HTTP 200: the answer is not Test JSON") {
		t.Errorf("HTML answer: %v", err)
	}

	refused := *api
	refused.Client = &http.Client{Timeout: 5 * time.Second}
	ln := httptest.NewServer(http.NotFoundHandler())
	base := ln.URL
	ln.Close()
	bad, _ := url.Parse(base + "/x?token=t0ken-value")
	err = refused.Call(context.Background(), http.MethodGet, bad, nil, nil)
	if !errors.As(err, &ne) || !ne.Retryable || ne.Status != 0 || strings.Contains(err.Error(), "t0ken-value") {
		t.Errorf("refused: %v", err)
	}
}

// TestNewJSONAPI: what the ticket types build from Prepare's deps.
func TestNewJSONAPI(t *testing.T) {
	deps := Deps{Client: &http.Client{}, UserAgent: "nocbridge/test"}
	msg := func(b []byte) string { return Excerpt(b) }
	api := NewJSONAPI(deps, "Basic abc", []string{"s3cr3t", "abc"}, msg, "Test JSON")
	if api.Client != deps.Client || api.UserAgent != "nocbridge/test" || api.Authorization != "Basic abc" ||
		api.AnswerName != "Test JSON" || api.ServiceMessage == nil || api.Now == nil {
		t.Errorf("fields not taken: %+v", api)
	}
	if got := api.Redactor.Redact("s3cr3t abc"); got != Redacted+" abc" {
		t.Errorf("Redact = %q: secrets of 4 characters or more are hidden, shorter ones kept", got)
	}
}

func TestJoinURL(t *testing.T) {
	base, msg := CheckServiceBase("https://acme.example/sub/", "")
	if msg != "" {
		t.Fatal(msg)
	}
	if got := JoinURL(base, "/api/x y", url.Values{"b": {"2"}, "a": {"1&"}}).String(); got != "https://acme.example/sub/api/x%20y?a=1%26&b=2" {
		t.Errorf("JoinURL = %s", got)
	}
	if got := JoinURL(base, "/rest", nil).String(); got != "https://acme.example/sub/rest" {
		t.Errorf("JoinURL without query = %s", got)
	}
	if base.String() != "https://acme.example/sub" {
		t.Errorf("base changed: %s", base)
	}
}

func TestEnvDeps(t *testing.T) {
	deps, err := Env{}.Deps(config.Destination{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if deps.Client == nil || deps.Client.Timeout != DefaultTimeout || deps.UserAgent != DefaultUserAgent || deps.Logger == nil {
		t.Errorf("defaults not filled: %+v", deps)
	}
	own := &http.Client{}
	deps, err = Env{HTTPClient: own, UserAgent: "ua/1"}.Deps(config.Destination{Name: "d"})
	if err != nil || deps.Client != own || deps.UserAgent != "ua/1" {
		t.Errorf("Env values must win: %+v, %v", deps, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/ca.pem", []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := config.Destination{Name: "d", Line: 7}
	d.TLS.CAFile = "ca.pem"
	_, err = Env{ConfigFile: "c.yaml", BaseDir: dir}.Deps(d)
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Line != 7 || es[0].File != "c.yaml" {
		t.Errorf("a client that cannot be built must be a config error at the destination's line: %v", err)
	}
}
