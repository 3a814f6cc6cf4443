package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// ChatPoster posts one JSON message to a chat service (a webhook whose URL
// is the credential, or a bot API) and classifies the outcome.
type ChatPoster struct {
	URL *url.URL
	// Target names the endpoint in reasons without its secret parts
	// ("discord webhook https://discord.com").
	Target    string
	Client    *http.Client
	UserAgent string
	// Authorization is sent when set (bot modes).
	Authorization string
	Redactor      Redactor
	// ErrorText is the service's explanation in a failed response's body
	// (or the raw excerpt), and the delay it asks for when the body says so
	// more precisely than Retry-After; 0 falls back to the header.
	ErrorText func(body []byte) (text string, retryAfter time.Duration)
}

// NewWebhookPoster is a ChatPoster for a webhook URL that is itself the
// credential: the target shows scheme and host only, and every part of the
// URL that could carry the token is redacted.
func NewWebhookPoster(service string, u *url.URL, deps Deps, errorText func([]byte) (string, time.Duration)) *ChatPoster {
	return &ChatPoster{
		URL:       u,
		Target:    service + " " + u.Scheme + "://" + u.Host,
		Client:    deps.Client,
		UserAgent: deps.UserAgent,
		Redactor:  NewRedactor(2, u.String(), u.RawQuery, u.EscapedPath(), u.Path),
		ErrorText: errorText,
	}
}

// Send is a chat type's Send: text renders the notification's main text
// (ChatText, or the type's own), message wraps it in the JSON body, which
// is posted once (Post). Rendering fails only on a template, and then on
// every retry too: a permanent *Error "<service>: rendering template_file".
func (p *ChatPoster) Send(ctx context.Context, service string, nt Notification, text func(Notification) (string, error), message func(text string) any) (int, error) {
	t, err := text(nt)
	if err != nil {
		return 0, &Error{Reason: service + ": rendering template_file", Err: err}
	}
	return p.PostJSON(ctx, service, message(t))
}

// PostJSON encodes message and posts it once (Post). A digest goes this
// way: the service's message, with no notification's text to render.
func (p *ChatPoster) PostJSON(ctx context.Context, service string, message any) (int, error) {
	payload, err := json.Marshal(message)
	if err != nil {
		return 0, &Error{Reason: service + ": encoding message", Err: err}
	}
	return p.Post(ctx, payload)
}

// Post sends payload once and returns the 2xx status. A failure is a *Error
// with reason "<target>: …": without a response per NetworkError, with one
// per AnswerError over the service's explanation (SPEC 6), redacted.
func (p *ChatPoster) Post(ctx context.Context, payload []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL.String(), bytes.NewReader(payload))
	if err != nil {
		return 0, &Error{Reason: p.Target + ": building request", Err: p.Redactor.Error(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", p.UserAgent)
	if p.Authorization != "" {
		req.Header.Set("Authorization", p.Authorization)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, NetworkError(p.Target, err, p.Redactor)
	}
	defer DrainAndClose(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	text, retryAfter := p.ErrorText(ReadErrorBody(resp))
	if retryAfter == 0 {
		retryAfter = RetryAfterHeader(resp.Header, time.Now())
	}
	// Services may echo the request, webhook path included.
	return resp.StatusCode, AnswerError(p.Target, resp.StatusCode, text, retryAfter, p.Redactor)
}

// TextOnly adapts an ErrorText for a service whose error body gives no
// retry delay: Retry-After alone decides.
func TextOnly(errorText func(body []byte) string) func([]byte) (string, time.Duration) {
	return func(body []byte) (string, time.Duration) { return errorText(body), 0 }
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (p *ChatPoster) Close() error {
	p.Client.CloseIdleConnections()
	return nil
}
