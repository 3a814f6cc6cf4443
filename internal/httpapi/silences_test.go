package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/mute"
)

// fakeSilences answers like mute.Set (whose validation mute's tests cover):
// a request without comment is invalid, "fail" in the comment is a store
// failure, and only sil-1 exists.
type fakeSilences struct {
	mu    sync.Mutex
	added []mute.NewSilence
	ended []string
}

var silence1 = mute.Silence{ID: "sil-1", Match: config.Match{Selector: config.Selector{Devices: []string{"core-sw1"}}},
	StartsAt: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), EndsAt: time.Date(2026, 6, 1, 14, 0, 0, 0, time.UTC),
	Comment: "CHG-1", CreatedBy: "alice", CreatedAt: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), State: mute.Active}

func (f *fakeSilences) Add(_ context.Context, n mute.NewSilence) (mute.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case n.Comment == "":
		return mute.Silence{}, fmt.Errorf("%w: comment is required", mute.ErrInvalid)
	case strings.Contains(n.Comment, "fail"):
		return mute.Silence{}, errors.New("storing silence: disk full")
	}
	f.added = append(f.added, n)
	sl := silence1
	sl.Match, sl.Comment, sl.CreatedBy = n.Match, n.Comment, n.CreatedBy
	return sl, nil
}

func (f *fakeSilences) List() []mute.Silence { return []mute.Silence{silence1} }

func (f *fakeSilences) Expire(_ context.Context, id string) (mute.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != silence1.ID {
		return mute.Silence{}, fmt.Errorf("silence %q: %w", id, mute.ErrNotFound)
	}
	f.ended = append(f.ended, id)
	sl := silence1
	sl.State = mute.Expired
	return sl, nil
}

func newSilenceServer(t *testing.T, token config.Secret) (*httptest.Server, *fakeSilences, *bytes.Buffer) {
	t.Helper()
	f := &fakeSilences{}
	var logs bytes.Buffer
	srv := httptest.NewServer(Handler(Deps{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Gatherer: prometheus.NewRegistry(),
		Silences: f,
		Token:    func() config.Secret { return token },
	}))
	t.Cleanup(srv.Close)
	return srv, f, &logs
}

func TestAddSilence(t *testing.T) {
	const valid = `{"match":{"devices":["core-sw1"],"event_ids":["NETWORK-*"]},"starts_at":"2026-06-01T14:00:00+02:00","duration":"2h","comment":"CHG-1","created_by":"alice"}`
	bearer := "Bearer " + testToken
	tests := []struct {
		name     string
		token    config.Secret
		auth     string
		body     string
		status   int
		contains string
	}{
		{"disabled without token", "", bearer, valid, 403, "http.token"},
		{"missing token", testToken, "", valid, 401, "bearer token"},
		{"wrong token", testToken, "Bearer nope", valid, 401, "bearer token"},
		{"added", testToken, bearer, valid, 201, `"id": "sil-1"`},
		{"empty body", testToken, bearer, ``, 400, "invalid JSON body: the body is empty"},
		{"not JSON", testToken, bearer, `match=core-sw1`, 400, "invalid JSON body"},
		{"two values", testToken, bearer, valid + valid, 400, "more than one JSON value"},
		{"unknown field", testToken, bearer, `{"matchers":{},"comment":"c"}`, 400, `unknown field \"matchers\"`},
		{"unknown match field", testToken, bearer, `{"match":{"device":["x"]},"comment":"c"}`, 400, `unknown field \"device\"`},
		{"bad duration", testToken, bearer, `{"match":{"devices":["x"]},"duration":"2 hours","comment":"c"}`, 400, "want a Go duration such as 2h"},
		{"bad time", testToken, bearer, `{"match":{"devices":["x"]},"ends_at":"tomorrow","comment":"c"}`, 400, "invalid JSON body"},
		{"too large", testToken, bearer, `{"comment":"` + strings.Repeat("a", maxBody) + `"}`, 400, "larger than 65536 bytes"},
		{"refused by the set", testToken, bearer, `{"match":{"devices":["x"]},"duration":"1h"}`, 400, "invalid silence: comment is required"},
		{"store failure", testToken, bearer, `{"match":{"devices":["x"]},"duration":"1h","comment":"fail"}`, 500, "disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, f, logs := newSilenceServer(t, tt.token)
			status, body, hdr := do(t, http.MethodPost, srv.URL+"/api/v1/silences", tt.auth, tt.body)
			if status != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("status %d body %.300s; want %d containing %q", status, body, tt.status, tt.contains)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			if status == 401 && hdr.Get("WWW-Authenticate") != `Bearer realm="nocbridge"` {
				t.Errorf("401 with WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
			}
			if strings.Contains(body, testToken) || strings.Contains(logs.String(), testToken) {
				t.Error("the API token leaked into a response or a log")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if status != 201 {
				if len(f.added) != 0 {
					t.Errorf("refused request reached the set: %+v", f.added)
				}
				return
			}
			want := mute.NewSilence{Match: config.Match{Selector: config.Selector{Devices: []string{"core-sw1"}}, EventIDs: []string{"NETWORK-*"}},
				StartsAt: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), Duration: mute.Duration(2 * time.Hour), Comment: "CHG-1", CreatedBy: "alice"}
			if len(f.added) == 1 && f.added[0].StartsAt.Equal(want.StartsAt) {
				want.StartsAt = f.added[0].StartsAt // the same instant, as written
			}
			if len(f.added) != 1 || fmt.Sprint(f.added[0]) != fmt.Sprint(want) {
				t.Errorf("the set was asked for %+v, want %+v", f.added, want)
			}
			var got mute.Silence
			if err := json.Unmarshal([]byte(body), &got); err != nil || got.ID != "sil-1" || got.State != mute.Active || got.Comment != "CHG-1" {
				t.Errorf("answer %s (%v)", body, err)
			}
		})
	}
}

func TestListAndExpireSilences(t *testing.T) {
	srv, f, _ := newSilenceServer(t, testToken)
	status, body, hdr := do(t, http.MethodGet, srv.URL+"/api/v1/silences", "", "")
	var list []map[string]any
	if status != 200 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &list) != nil ||
		len(list) != 1 || list[0]["id"] != "sil-1" || list[0]["state"] != "active" || list[0]["created_by"] != "alice" ||
		list[0]["starts_at"] != "2026-06-01T12:00:00Z" || list[0]["match"].(map[string]any)["devices"].([]any)[0] != "core-sw1" {
		t.Fatalf("GET: %d %s %s", status, hdr.Get("Content-Type"), body)
	}

	tests := []struct {
		name, path, auth string
		status           int
		contains         string
	}{
		{"missing token", "/api/v1/silences/sil-1", "", 401, "bearer token"},
		{"unknown id", "/api/v1/silences/sil-9", "Bearer " + testToken, 404, `silence \"sil-9\": no such silence`},
		{"expired", "/api/v1/silences/sil-1", "Bearer " + testToken, 200, `"state": "expired"`},
	}
	for _, tt := range tests {
		status, body, hdr := do(t, http.MethodDelete, srv.URL+tt.path, tt.auth, "")
		if status != tt.status || !strings.Contains(body, tt.contains) || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: DELETE %s: %d %s %s; want %d containing %q", tt.name, tt.path, status, hdr.Get("Content-Type"), body, tt.status, tt.contains)
		}
	}
	if fmt.Sprint(f.ended) != "[sil-1]" {
		t.Errorf("expired %v, want [sil-1] once", f.ended)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPut, "/api/v1/silences"},
		{http.MethodGet, "/api/v1/silences/sil-1"},
		{http.MethodPost, "/api/v1/silences/sil-1"},
	} {
		if status, _, _ := do(t, c.method, srv.URL+c.path, "Bearer "+testToken, ""); status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", c.method, c.path, status)
		}
	}
}

// Whatever the body, the silence endpoint answers 201 or 400, never a
// server error or a panic.
func FuzzAddSilenceBody(f *testing.F) {
	f.Add(`{"match":{"devices":["core-sw1"]},"duration":"2h","comment":"c"}`)
	f.Add(`{"match":{"labels":{"a":"b"}},"ends_at":"2026-06-01T12:00:00Z","comment":"c","created_by":"x"}`)
	f.Add(`{"duration":"-1h"}`)
	f.Add(`[]`)
	f.Add(`{"starts_at":null}`)
	h := Handler(Deps{Logger: slog.New(slog.DiscardHandler), Gatherer: prometheus.NewRegistry(), Silences: &fakeSilences{},
		Token: func() config.Secret { return testToken }})
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "fail") {
			return // the fake's store failure
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/silences", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated && rec.Code != http.StatusBadRequest {
			t.Fatalf("body %q: status %d %s", body, rec.Code, rec.Body)
		}
	})
}
