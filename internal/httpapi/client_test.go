package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
)

func TestClientCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/deadletters/replay":
			var body map[string]string
			if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil || body["id"] != "msg_1" {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			_, _ = w.Write([]byte(`{"replayed":1}`))
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/deadletters":
			_, _ = w.Write([]byte(`[]`))
		case r.URL.Path == "/api/v1/refused":
			writeError(w, http.StatusBadRequest, "comment is required")
		default:
			http.Error(w, "no such thing", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := NewClient(&config.Config{HTTP: config.HTTP{Listen: strings.TrimPrefix(srv.URL, "http://"), Token: "s3cret-token"}})
	ctx := context.Background()

	if b, err := c.Call(ctx, http.MethodPost, "/api/v1/deadletters/replay", map[string]string{"id": "msg_1"}); err != nil || string(b) != `{"replayed":1}` {
		t.Errorf("replay: %q, %v", b, err)
	}
	if b, err := c.Call(ctx, http.MethodGet, "/api/v1/deadletters", nil); err != nil || string(b) != "[]" {
		t.Errorf("list: %q, %v", b, err)
	}
	_, err := c.Call(ctx, http.MethodGet, "/api/v1/nothing", nil)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such thing") {
		t.Errorf("a 404 answer: %v; want an error with the status and the message", err)
	}
	_, err = c.Call(ctx, http.MethodPost, "/api/v1/refused", map[string]string{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || err.Error() != "400 Bad Request: comment is required" {
		t.Errorf("a JSON error answer: %v; want an APIError with the status and the API's message alone", err)
	}
	down := NewClient(&config.Config{HTTP: config.HTTP{Listen: "127.0.0.1:1"}})
	if _, err := down.Call(ctx, http.MethodGet, "/api/v1/deadletters", nil); err == nil || !strings.Contains(err.Error(), "is nocbridge running on 127.0.0.1:1") {
		t.Errorf("no daemon: %v; want an error naming the address", err)
	}
}
