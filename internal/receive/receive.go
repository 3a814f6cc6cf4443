// Package receive is `nocbridge receive`: a webhook tester that prints every
// request it gets, verifies Standard Webhooks signatures and answers 204.
package receive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

// MaxBody is the largest body accepted; larger requests get 413.
const MaxBody = 1 << 20

// shutdownTimeout bounds how long in-flight requests may finish after ctx
// is cancelled.
const shutdownTimeout = 5 * time.Second

// Run listens on addr and serves until ctx is cancelled.
func Run(ctx context.Context, listen, secret string, out io.Writer) error {
	if err := checkSecret(secret); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	return Serve(ctx, ln, secret, out)
}

func checkSecret(secret string) error {
	if secret == "" {
		return nil
	}
	if _, err := webhooksig.ParseSecret(secret); err != nil {
		return fmt.Errorf("--secret: %w", err)
	}
	return nil
}

// Serve serves on ln (closed on return) until ctx is cancelled, then shuts
// down gracefully. An empty secret disables verification.
func Serve(ctx context.Context, ln net.Listener, secret string, out io.Writer) error {
	if err := checkSecret(secret); err != nil {
		_ = ln.Close()
		return err
	}
	p := &printer{out: out, secret: secret, now: time.Now}
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	verify := "signatures not verified (no --secret)"
	if secret != "" {
		verify = "verifying Standard Webhooks signatures"
	}
	p.printf("nocbridge receive: listening on http://%s, %s\n", ln.Addr(), verify)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutting down %s: %w", ln.Addr(), err)
	}
	return nil
}

type printer struct {
	mu     sync.Mutex // one request's block is printed whole
	out    io.Writer
	secret string
	now    func() time.Time
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// sensitive headers are shown as <redacted>: the tester's output ends up in
// terminals, tickets and chat.
func sensitive(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	l := strings.ToLower(name)
	return strings.Contains(l, "token") || strings.Contains(l, "secret") ||
		strings.Contains(l, "api-key") || strings.Contains(l, "apikey") || strings.Contains(l, "password")
}

func (p *printer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := p.now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	status := http.StatusNoContent
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		status = http.StatusRequestEntityTooLarge
	case err != nil:
		status = http.StatusBadRequest
	}

	var b strings.Builder
	fmt.Fprintf(&b, "--- %s %s %s from %s\n", received.Format(time.RFC3339Nano), r.Method, r.URL.RequestURI(), r.RemoteAddr)
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	// webhook-* first, then the rest alphabetically.
	slices.SortFunc(names, func(a, c string) int {
		wa, wc := strings.HasPrefix(strings.ToLower(a), "webhook-"), strings.HasPrefix(strings.ToLower(c), "webhook-")
		if wa != wc {
			if wa {
				return -1
			}
			return 1
		}
		return strings.Compare(a, c)
	})
	for _, k := range names {
		for _, v := range r.Header[k] {
			if sensitive(k) {
				v = "<redacted>"
			} else if strings.EqualFold(k, webhooksig.HeaderTimestamp) {
				if ts, err := strconv.ParseInt(v, 10, 64); err == nil {
					v += " (" + time.Unix(ts, 0).UTC().Format(time.RFC3339) + ")"
				}
			}
			fmt.Fprintf(&b, "%s: %s\n", strings.ToLower(k), v)
		}
	}

	switch {
	case status == http.StatusRequestEntityTooLarge:
		fmt.Fprintf(&b, "body: larger than %d bytes, refused with 413\n", MaxBody)
	case status != http.StatusNoContent:
		fmt.Fprintf(&b, "body: read error: %v\n", err)
	default:
		fmt.Fprintf(&b, "signature: %s\n", p.verify(r.Header, body, received))
		writeBody(&b, body)
	}
	p.printf("%s", b.String())
	w.WriteHeader(status)
}

func (p *printer) verify(h http.Header, body []byte, now time.Time) string {
	if p.secret == "" {
		if h.Get(webhooksig.HeaderSignature) != "" {
			return "not verified (no --secret)"
		}
		return "not signed"
	}
	if h.Get(webhooksig.HeaderSignature) == "" {
		return "not signed"
	}
	if err := webhooksig.Verify(p.secret, h, body, now, webhooksig.DefaultTolerance); err != nil {
		return "INVALID: " + err.Error()
	}
	return "valid"
}

func writeBody(b *strings.Builder, body []byte) {
	if len(body) == 0 {
		b.WriteString("body: (empty)\n")
		return
	}
	var buf bytes.Buffer
	if json.Valid(body) && json.Indent(&buf, body, "", "  ") == nil {
		b.WriteString(buf.String())
		b.WriteByte('\n')
		return
	}
	// Escape control characters: a body must not drive the terminal.
	text := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0)) {
			return r
		}
		return '\uFFFD'
	}, strings.ToValidUTF8(string(body), "\uFFFD"))
	fmt.Fprintf(b, "body (%d bytes, not JSON):\n%s\n", len(body), text)
}
