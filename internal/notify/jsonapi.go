package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxAnswer bounds a success answer decoded from a JSON API.
const maxAnswer = 1 << 20

// JSONAPI makes requests to a JSON REST API (the ticketing and alerting
// services) and classifies every failure as a *Error whose reason names the
// method and redacted URL and never holds a secret.
type JSONAPI struct {
	Client    *http.Client
	UserAgent string
	// Authorization is sent with every request when set.
	Authorization string
	Redactor      Redactor
	// ServiceMessage extracts the service's own error text from a failed
	// response's body.
	ServiceMessage func(body []byte) string
	// AnswerName names the JSON a 2xx answer must be, for the error when it
	// is not ("Jira REST JSON").
	AnswerName string
	// Now dates Retry-After given as an HTTP date.
	Now func() time.Time
}

// NewJSONAPI is the JSONAPI a type's New builds from Prepare's deps: their
// client and user agent, time.Now, and a Redactor hiding secrets (values
// under 4 characters skipped). auth is the Authorization header value ("":
// none); serviceMessage and answerName are as in JSONAPI.
func NewJSONAPI(deps Deps, auth string, secrets []string, serviceMessage func(body []byte) string, answerName string) *JSONAPI {
	return &JSONAPI{
		Client:         deps.Client,
		UserAgent:      deps.UserAgent,
		Authorization:  auth,
		Redactor:       NewRedactor(4, secrets...),
		ServiceMessage: serviceMessage,
		AnswerName:     answerName,
		Now:            time.Now,
	}
}

// JoinURL is base with path appended as given and query q: the URL of an
// API call on a base checked by CheckServiceBase (no trailing slash, no
// query). base is not changed.
func JoinURL(base *url.URL, path string, q url.Values) *url.URL {
	u := *base
	u.Path += path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return &u
}

// Call sends body (when not nil) as JSON and decodes a 2xx answer into out
// (when not nil). An answer that does not decode is a retryable failure:
// never act on an answer not understood (creating blindly could duplicate),
// and a login page or proxy hiccup may be gone next time.
func (a *JSONAPI) Call(ctx context.Context, method string, u *url.URL, body, out any) error {
	target := method + " " + RedactURL(u)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &Error{Reason: target + ": encoding request", Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return &Error{Reason: target + ": building request", Err: a.Redactor.Error(err)}
	}
	if a.Authorization != "" {
		req.Header.Set("Authorization", a.Authorization)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", a.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return NetworkError(target, err, a.Redactor)
	}
	defer DrainAndClose(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ResponseError(target, resp, a.ServiceMessage(ReadErrorBody(resp)), a.Now(), a.Redactor)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return &Error{
			Retryable: true,
			Status:    resp.StatusCode,
			Reason:    fmt.Sprintf("%s: HTTP %d: the answer is not %s", target, resp.StatusCode, a.AnswerName),
			Err:       err,
		}
	}
	return nil
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (a *JSONAPI) Close() error {
	a.Client.CloseIdleConnections()
	return nil
}
