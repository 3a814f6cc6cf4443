package notify

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestChatPosterPost(t *testing.T) {
	const token = "hook-t0ken-7731"
	for _, tc := range []struct {
		name          string
		auth          string
		status        int
		header        map[string]string
		body          string
		bodyDelay     time.Duration // what ErrorText reads from the body
		wantErr       bool
		wantRetryable bool
		wantRetry     time.Duration
		wantReason    string
	}{
		{name: "no content", status: http.StatusNoContent},
		{name: "accepted, bot auth", auth: "Bearer " + token, status: http.StatusAccepted},
		{name: "client error", status: 400, body: "bad card", wantErr: true,
			wantReason: "chat webhook 127.0.0.1: HTTP 400: explained: bad card"},
		{name: "token echoed is redacted", status: 404, body: "no hook /hooks/" + token, wantErr: true,
			wantReason: "chat webhook 127.0.0.1: HTTP 404: explained: no hook " + Redacted},
		{name: "rate limited, header delay", status: 429, header: map[string]string{"Retry-After": "7"}, wantErr: true,
			wantRetryable: true, wantRetry: 7 * time.Second, wantReason: "chat webhook 127.0.0.1: HTTP 429: explained:"},
		{name: "rate limited, body delay wins", status: 429, header: map[string]string{"Retry-After": "7"}, bodyDelay: 1500 * time.Millisecond,
			wantErr: true, wantRetryable: true, wantRetry: 1500 * time.Millisecond, wantReason: "chat webhook 127.0.0.1: HTTP 429: explained:"},
		{name: "server error", status: 503, wantErr: true, wantRetryable: true, wantReason: "chat webhook 127.0.0.1: HTTP 503: explained:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				switch {
				case r.Method != http.MethodPost || r.URL.Path != "/hooks/"+token:
					t.Errorf("request %s %s, want POST to the hook", r.Method, r.URL.Path)
				case r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != "nocbridge/test":
					t.Errorf("headers %v", r.Header)
				case r.Header.Get("Authorization") != tc.auth:
					t.Errorf("Authorization %q, want %q", r.Header.Get("Authorization"), tc.auth)
				case string(body) != `{"text":"hi"}`:
					t.Errorf("body %s", body)
				}
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL + "/hooks/" + token)
			p := NewWebhookPoster("chat webhook", u, Deps{Client: srv.Client(), UserAgent: "nocbridge/test"},
				func(body []byte) (string, time.Duration) { return "explained: " + string(body), tc.bodyDelay })
			p.Target = "chat webhook 127.0.0.1" // the port varies
			p.Authorization = tc.auth
			status, err := p.Post(context.Background(), []byte(`{"text":"hi"}`))
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Post: %v", err)
				}
				return
			}
			var ne *Error
			if !errors.As(err, &ne) {
				t.Fatalf("Post error %v, want a *notify.Error", err)
			}
			if ne.Reason != tc.wantReason || ne.Retryable != tc.wantRetryable || ne.RetryAfter != tc.wantRetry || ne.Status != tc.status {
				t.Errorf("error %+v, want reason %q, retryable %v, retry after %v", ne, tc.wantReason, tc.wantRetryable, tc.wantRetry)
			}
		})
	}
}

func TestChatPosterNetworkErrorHidesURL(t *testing.T) {
	const token = "hook-t0ken-7731"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: the connection is refused
	u, _ := url.Parse("http://" + addr + "/hooks/" + token + "?sig=" + token)
	p := NewWebhookPoster("chat webhook", u, Deps{Client: &http.Client{Timeout: 5 * time.Second}, UserAgent: "nocbridge/test"}, TextOnly(func(b []byte) string { return string(b) }))
	if want := "chat webhook http://" + addr; p.Target != want {
		t.Errorf("target %q, want %q", p.Target, want)
	}
	_, err = p.Post(context.Background(), []byte(`{}`))
	var ne *Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.Reason != p.Target+": request failed" {
		t.Fatalf("Post error %v, want a retryable request failure", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("the error text holds the webhook's token")
	}
}

func TestTextOnly(t *testing.T) {
	text, delay := TextOnly(func(b []byte) string { return strings.ToUpper(string(b)) })([]byte("busy"))
	if text != "BUSY" || delay != 0 {
		t.Errorf("TextOnly = %q, %v; want BUSY, 0", text, delay)
	}
}

func TestChatPosterSend(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, string(body))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/hook")
	p := NewWebhookPoster("chat webhook", u, Deps{Client: srv.Client(), UserAgent: "nocbridge/test"}, TextOnly(func(b []byte) string { return string(b) }))
	nt := Notification{ID: "msg_1"}
	nt.Event.Name = "Device unreachable"
	text := func(nt Notification) (string, error) { return nt.Event.Name, nil }
	message := func(text string) any { return map[string]string{"text": text} }

	status, err := p.Send(context.Background(), "chat", nt, text, message)
	if err != nil || status != http.StatusNoContent || len(got) != 1 || got[0] != `{"text":"Device unreachable"}` {
		t.Fatalf("Send = %d, %v; posted %q", status, err, got)
	}

	broken := errors.New("template: t:1: boom")
	_, err = p.Send(context.Background(), "chat", nt, func(Notification) (string, error) { return "", broken }, message)
	var ne *Error
	if !errors.As(err, &ne) || ne.Retryable || ne.Reason != "chat: rendering template_file" || !errors.Is(err, broken) {
		t.Errorf("template failure: %v, want a permanent failure wrapping it", err)
	}
	if _, err := p.Send(context.Background(), "chat", nt, text, func(string) any { return func() {} }); !errors.As(err, &ne) || ne.Reason != "chat: encoding message" {
		t.Errorf("encoding failure: %v", err)
	}
	if len(got) != 1 {
		t.Errorf("a failed rendering must not post: %q", got)
	}
}
