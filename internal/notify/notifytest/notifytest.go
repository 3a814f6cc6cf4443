// Package notifytest is what the destination types' tests share: parsing a
// destination from YAML, a recording fake server on loopback, golden-file
// comparison with -update, log capture and the secret-leak assertion. Only
// _test.go files import it.
package notifytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
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

	"github.com/nocbridge/nocbridge/internal/testutil/logtest"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Destination parses one destination mapping as the config loader would:
// the node and its line, plus the common keys tests set (name, type,
// timeout, proxy_url, follow_redirects, tls).
func Destination(t testing.TB, src string) config.Destination {
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
		case "proxy_url":
			d.ProxyURL = v.Value
		case "follow_redirects":
			d.FollowRedirects = v.Value
		case "tls":
			if err := v.Decode(&d.TLS); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d
}

// WriteFile writes a test file (a secret, a template) into dir.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Logs captures what a notifier logs; safe for concurrent use.
type Logs = logtest.Logs

// Request is one request a Server received.
type Request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// Reply is a canned answer.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
}

// Write sends the reply. A body that looks like JSON is labelled so, as the
// real services do, unless Header sets a Content-Type.
func (r Reply) Write(w http.ResponseWriter) {
	if strings.HasPrefix(r.Body, "{") {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range r.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(r.Status)
	_, _ = io.WriteString(w, r.Body)
}

// Server is an httptest server on loopback that records every request.
// Queued replies answer first, in order; then the fallback handler.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
	replies  []Reply
}

// NewServer starts a recording server, closed when the test ends. fallback
// sees each request with its body still readable.
func NewServer(t testing.TB, fallback http.Handler) *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		var queued *Reply
		if len(s.replies) > 0 {
			queued = &s.replies[0]
			s.replies = s.replies[1:]
		}
		s.mu.Unlock()
		if queued != nil {
			queued.Write(w)
			return
		}
		fallback.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// Queue makes r the answer to the next request not yet answered by an
// earlier queued reply.
func (s *Server) Queue(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, r)
}

// Requests returns what the server received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Last is the latest request; none is a test failure.
func (s *Server) Last(t testing.TB) Request {
	t.Helper()
	reqs := s.Requests()
	if len(reqs) == 0 {
		t.Fatal("server received no request")
	}
	return reqs[len(reqs)-1]
}

// Reset forgets the requests received so far.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// GoldenJSON compares got with testdata/<name> as JSON values, so that
// indentation does not matter. With -update it first rewrites the file,
// indented, with <, > and & left readable.
func GoldenJSON(t testing.TB, name string, got []byte) {
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

// Golden compares got with testdata/<name> byte for byte (for formats that
// are not one JSON value); -update rewrites the file first.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n got: %s\nwant: %s", path, got, want)
	}
}

// NoSecrets fails the test if a secret appears in err's text, in its
// *notify.Error reason, or in logs. The failure names where and which
// secret by index, never the secret itself.
func NoSecrets(t testing.TB, secrets []string, err error, logs string) {
	t.Helper()
	texts := map[string]string{"logs": logs}
	if err != nil {
		texts["error text"] = err.Error()
		var ne *notify.Error
		if errors.As(err, &ne) {
			texts["dead-letter reason"] = ne.Reason
		}
	}
	for where, txt := range texts {
		for i, s := range secrets {
			if s != "" && strings.Contains(txt, s) {
				t.Fatalf("secret #%d leaked into the %s", i, where) // deliberately not printing it
			}
		}
	}
}

// RefusedURL is the base URL of a loopback port nothing listens on.
func RefusedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	_ = ln.Close()
	return base
}

// HangingServer accepts requests and never answers them, until the client
// gives up or the test ends: for timeout tests.
func HangingServer(t testing.TB) *httptest.Server {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	// Cleanups run last-in first-out: release handlers, then close.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv
}

// ConnTrackingServer serves h and reports on closed each connection the
// server sees closed, to prove a notifier's Close drops idle keep-alives.
func ConnTrackingServer(t testing.TB, h http.Handler) (srv *httptest.Server, closed <-chan struct{}) {
	ch := make(chan struct{}, 1)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, ch
}

// WaitClosed fails the test unless a connection closes within 5 seconds.
func WaitClosed(t testing.TB, closed <-chan struct{}) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("keep-alive connection still open after Close")
	}
}
