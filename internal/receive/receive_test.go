package receive

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/testutil/logtest"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/webhook"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// syncBuffer is written by server goroutines and read by the test.
type syncBuffer = logtest.Logs

// start serves on a loopback port and returns its base URL; the server is
// stopped and its clean return checked at cleanup.
func start(t *testing.T, secret string) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, secret, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return "http://" + ln.Addr().String(), out
}

func webhookNotifier(t *testing.T, url, extra string) notify.Notifier {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("name: tester\ntype: webhook\nurl: "+url+"\n"+extra), &doc); err != nil {
		t.Fatal(err)
	}
	d := config.Destination{Name: "tester", Type: "webhook", Node: doc.Content[0], Line: 1}
	n, err := webhook.New(d, notify.Env{ExternalURL: "http://127.0.0.1:9720", UserAgent: "nocbridge/test", ConfigFile: "c.yaml", BaseDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignedWebhookFromNotifier(t *testing.T) {
	base, out := start(t, secret)
	n := webhookNotifier(t, base+"/hooks/dnac", "secret: "+secret+"\nbearer_token: very-secret-token\nheaders: {X-Team: noc, X-Api-Key: k-123456}\n")
	ev := event.Sample("", time.Now())
	if err := n.Send(context.Background(), notify.Notification{ID: ev.NotificationID("tester"), Event: ev, Attempt: 1}); err != nil {
		t.Fatalf("Send to receive server: %v", err) // also proves the 204
	}
	got := out.String()
	for _, want := range []string{
		"POST /hooks/dnac from 127.0.0.1:",
		"webhook-id: " + ev.NotificationID("tester") + "\n",
		"webhook-signature: v1,",
		"webhook-timestamp: ",
		"user-agent: nocbridge/test\n",
		"content-type: application/json\n",
		"x-team: noc\n",
		"authorization: <redacted>\n",
		"x-api-key: <redacted>\n",
		"signature: valid\n",
		"  \"eventId\": \"NETWORK-DEVICES-1-101\",\n", // pretty-printed JSON
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, leak := range []string{"very-secret-token", "k-123456"} {
		if strings.Contains(got, leak) {
			t.Errorf("output leaks a credential header value")
		}
	}
	// Order: webhook-* headers come first, before other headers.
	if strings.Index(got, "webhook-id:") > strings.Index(got, "content-type:") {
		t.Errorf("webhook-* headers should be printed first:\n%s", got)
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}

func post(t *testing.T, url string, h http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func signedHeaders(t *testing.T, id string, ts time.Time, body []byte) http.Header {
	sig, err := webhooksig.Sign(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)},
		"Webhook-Signature": {sig},
		"Content-Type":      {"application/json"},
	}
}

func TestVerification(t *testing.T) {
	body := []byte(`{"eventId":"NETWORK-DEVICES-1-101","severity":1}`)
	now := time.Now()
	tests := []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		want   string
	}{
		{"valid", secret, signedHeaders(t, "msg_1", now, body), body, "signature: valid\n"},
		{"tampered body", secret, signedHeaders(t, "msg_2", now, body), []byte(`{"eventId":"NETWORK-DEVICES-1-101","severity":5}`), "signature: INVALID: no matching v1 signature\n"},
		{"stale timestamp", secret, signedHeaders(t, "msg_3", now.Add(-time.Hour), body), body, "signature: INVALID: webhook-timestamp is too old"},
		{"not signed", secret, http.Header{"Content-Type": {"application/json"}}, body, "signature: not signed\n"},
		{"no secret given", "", signedHeaders(t, "msg_4", now, body), body, "signature: not verified (no --secret)\n"},
		{"no secret, unsigned", "", http.Header{}, body, "signature: not signed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, out := start(t, tt.secret)
			if code := post(t, base+"/x", tt.h, tt.body); code != http.StatusNoContent {
				t.Fatalf("status %d, want 204", code)
			}
			if got := out.String(); !strings.Contains(got, tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, got)
			}
		})
	}
}

func TestBodies(t *testing.T) {
	base, out := start(t, "")
	tests := []struct {
		name string
		body []byte
		code int
		want string
	}{
		{"too large", bytes.Repeat([]byte("a"), MaxBody+1), http.StatusRequestEntityTooLarge, "refused with 413"},
		{"exactly the limit", bytes.Repeat([]byte("b"), MaxBody), http.StatusNoContent, "body (1048576 bytes, not JSON)"},
		{"not JSON, control chars escaped", []byte("hello\x1b[31mred"), http.StatusNoContent, "hello\uFFFD[31mred\n"},
		{"empty", nil, http.StatusNoContent, "body: (empty)\n"},
		{"JSON pretty-printed", []byte(`{"a":[1,2]}`), http.StatusNoContent, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := post(t, base+"/"+strings.ReplaceAll(tt.name, " ", "-"), nil, tt.body); code != tt.code {
				t.Fatalf("status %d, want %d", code, tt.code)
			}
			if got := out.String(); !strings.Contains(got, tt.want) {
				t.Fatalf("output lacks %q", tt.want)
			}
		})
	}
}

func TestBadSecretAndAddress(t *testing.T) {
	err := Run(context.Background(), "127.0.0.1:0", "not-a-whsec", &syncBuffer{})
	if !errors.Is(err, webhooksig.ErrSecret) || strings.Contains(err.Error(), "not-a-whsec") {
		t.Fatalf("Run with a bad secret: %v", err)
	}
	err = Run(context.Background(), "127.0.0.1:notaport", "", &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
		t.Fatalf("Run with a bad address: %v", err)
	}
}

// signalWriter reports its first write, so the test waits for the
// "listening" line without polling.
type signalWriter struct {
	syncBuffer
	once  sync.Once
	ready chan struct{}
}

func (s *signalWriter) Write(p []byte) (int, error) {
	n, err := s.syncBuffer.Write(p)
	s.once.Do(func() { close(s.ready) })
	return n, err
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &signalWriter{ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, "127.0.0.1:0", secret, out) }()
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	if got := out.String(); !strings.Contains(got, "listening on http://127.0.0.1:") || !strings.Contains(got, "verifying") {
		t.Fatalf("first line = %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}
