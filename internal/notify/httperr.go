package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

const (
	// maxErrorBody bounds how much of a failed response is read for the
	// reason.
	maxErrorBody = 4 << 10
	// drainLimit bounds how much more is read so the connection can be
	// reused; beyond it closing is cheaper.
	drainLimit = 256 << 10
)

// ReadErrorBody reads the start of a failed response's body, for the
// reason. A read error just shortens the excerpt: the status already
// classifies the failure.
func ReadErrorBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return b
}

// DrainAndClose reads what is left of a response body, up to a bound, and
// closes it, so the keep-alive connection goes back to the pool.
func DrainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	_ = body.Close()
}

// Redactor replaces secrets (tokens, passwords, credential-bearing URL
// parts) in text bound for errors, logs and dead letters, where a service
// or proxy echoing the request must not leak them.
type Redactor struct {
	secrets []string
}

// Redacted is what a secret is replaced with.
const Redacted = "<redacted>"

// NewRedactor hides secrets in the order given (put a whole URL before its
// parts). Values shorter than minLen are skipped: replacing "/" or a
// two-letter string would mangle unrelated text.
func NewRedactor(minLen int, secrets ...string) Redactor {
	var r Redactor
	for _, s := range secrets {
		if s != "" && len(s) >= minLen {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// Redact returns s with every secret replaced.
func (r Redactor) Redact(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	return s
}

// Error returns err with its text redacted, keeping the chain for
// errors.Is and errors.As (timeouts, cancellation). nil stays nil.
func (r Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: r.Redact(err.Error()), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (s *scrubbedError) Error() string { return s.msg }
func (s *scrubbedError) Unwrap() error { return s.err }

// NetworkError classifies a failure without a response: retryable, with
// reason "<target>: canceled|timeout|request failed". Only the cause of a
// *url.Error is kept, since it prints the whole URL (which may be the
// credential) and target already names the request; the cause is redacted
// too.
func NetworkError(target string, err error, r Redactor) *Error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	what := "request failed"
	var ne net.Error
	switch {
	case errors.Is(cause, context.Canceled):
		what = "canceled"
	case errors.Is(cause, context.DeadlineExceeded) || (errors.As(cause, &ne) && ne.Timeout()):
		what = "timeout"
	}
	return &Error{Retryable: true, Reason: target + ": " + what, Err: r.Error(cause)}
}

// ResponseError classifies a non-2xx answer of an API whose own error text
// (message) the caller extracted from the body: reason
// "<target>: HTTP <code>[: <message>]", redacted, retryable per SPEC 6, with
// the Retry-After the service asked for.
func ResponseError(target string, resp *http.Response, message string, now time.Time, r Redactor) *Error {
	reason := fmt.Sprintf("%s: HTTP %d", target, resp.StatusCode)
	if message != "" {
		reason += ": " + message
	}
	return &Error{
		Retryable:  RetryableStatus(resp.StatusCode),
		RetryAfter: RetryAfterHeader(resp.Header, now),
		Status:     resp.StatusCode,
		Reason:     r.Redact(reason),
	}
}

// JoinFieldErrors is the error text of APIs that answer general messages
// plus per-field errors: "msg1; msg2; field: error; …", fields sorted so the
// reason is stable.
func JoinFieldErrors(messages []string, fields map[string]string) string {
	parts := append([]string(nil), messages...)
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		parts = append(parts, k+": "+fields[k])
	}
	return strings.Join(parts, "; ")
}
