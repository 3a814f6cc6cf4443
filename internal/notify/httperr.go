package notify

import (
	"context"
	"errors"
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
	// reason: twice what a reason keeps, so a secret across the cut is
	// still whole when the Redactor looks for it.
	maxErrorBody = 2 * MaxReason
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

// NetworkError classifies a failure without a response: retryable, with
// reason "<target>: canceled|timeout|request failed". Only the cause of a
// *url.Error is kept, since it prints the whole URL (which may be the
// credential) and target already names the request; the cause is redacted
// too.
//
// A redirect the destination does not follow (RedirectError) is the one
// permanent failure here: reason "<target>: HTTP 307 redirect to …".
func NetworkError(target string, err error, r Redactor) *Error {
	if re, ok := errors.AsType[*RedirectError](err); ok {
		return &Error{Status: re.Status, Reason: r.Redact(target + ": " + re.Error())}
	}
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

// ResponseError is AnswerError for an API whose own error text (message)
// the caller extracted from the body, with the Retry-After the service
// asked for.
func ResponseError(target string, resp *http.Response, message string, now time.Time, r Redactor) *Error {
	return AnswerError(target, resp.StatusCode, message, RetryAfterHeader(resp.Header, now), r)
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
