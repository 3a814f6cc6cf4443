package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Client calls a running nocbridge's API, as the CLI's commands on the
// daemon do (dlq). It sends the configured token on every request.
type Client struct {
	base  string
	token config.Secret
	http  *http.Client
}

// NewClient calls the API the config's http.listen serves.
func NewClient(cfg *config.Config) *Client {
	return &Client{base: "http://" + cfg.HTTP.Listen, token: cfg.HTTP.Token, http: &http.Client{Timeout: 30 * time.Second}}
}

// maxAnswer bounds what the client reads of an answer.
const maxAnswer = 16 << 20

// Call sends a request (a JSON body when body is not nil) and returns the
// answer's body; a non-2xx answer is an error carrying its message.
func (c *Client) Call(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.token.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is nocbridge running on %s? %w", strings.TrimPrefix(c.base, "http://"), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var answer struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &answer) == nil && answer.Error != "" {
			msg = answer.Error // the API's own words, without the JSON around them
		}
		return nil, &APIError{Status: resp.StatusCode, Msg: fmt.Sprintf("%s: %s", resp.Status, msg)}
	}
	return b, nil
}

// APIError is an answer other than 2xx: its status code, and the status
// line with the API's message.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }
