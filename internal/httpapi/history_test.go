package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/store"
)

// realHistory is history on a real store in a temporary directory, its
// writer running until the test ends.
func realHistory(t *testing.T) *history.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := history.New(ctx, st, history.Options{Retention: 720 * time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(run) }()
	t.Cleanup(func() { stop(); <-done; st.Close() })
	return h
}

// waitWritten waits until history wrote n entries and their alerts'
// summaries.
func waitWritten(t *testing.T, h *history.History, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s := h.Stats(); s.Written < n || s.SummariesWaiting > 0; s = h.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("history wrote %d entries in 10s, want %d: %+v", h.Stats().Written, n, h.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAlertByIDAndHistory: /api/v1/alerts/{id} (and the notification
// link /alerts/{id}) serve active alerts with their live state, resolved
// ones and one-shot events from history, 404 only for what history does
// not hold; /api/v1/history pages them newest first with filters.
func TestAlertByIDAndHistory(t *testing.T) {
	h := realHistory(t)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	active := event.Sample("NETWORK-DEVICES-1-101", t0) // the live one in testDeps
	resolved := event.Sample("NETWORK-DEVICES-1-101", t0)
	resolved.InstanceID, resolved.Device.Name = "resolved-1", "acc-sw7"
	oneShot := event.Sample("NETWORK-DEVICES-3-102", t0)
	oneShot.InstanceID, oneShot.Kind, oneShot.Device.Name = "event-1", event.KindEvent, "acc-sw7"

	h.Record(active, history.Entry{At: t0, Kind: history.KindActive, Status: event.StatusActive})
	h.Record(active, history.Entry{At: t0.Add(time.Second), Kind: history.KindAttempt, Status: event.StatusActive,
		Destination: "noc-webhook", Attempt: 1, Result: "delivered", HTTPStatus: 200, DurationMs: 3.5})
	h.Record(resolved, history.Entry{At: t0.Add(2 * time.Second), Kind: history.KindActive, Status: event.StatusActive})
	res := resolved
	res.Status, res.Timestamp = event.StatusResolved, t0.Add(time.Minute)
	h.Record(res, history.Entry{At: t0.Add(time.Minute), Kind: history.KindResolved, Status: event.StatusResolved})
	h.Record(oneShot, history.Entry{At: t0.Add(2 * time.Minute), Kind: history.KindEvent, Status: event.StatusActive})
	waitWritten(t, h, 5)

	d, _, _ := testDeps(testToken, true)
	d.History = h
	srv := newServer(t, d)

	t.Run("alerts by id", func(t *testing.T) {
		tests := []struct {
			path     string
			status   int
			want     string // Alert.Status
			timeline []history.Kind
			live     bool
		}{
			{path: "/api/v1/alerts/" + active.InstanceID, status: 200, want: "active", timeline: []history.Kind{"active", "attempt"}, live: true},
			{path: "/alerts/" + active.InstanceID, status: 200, want: "active", timeline: []history.Kind{"active", "attempt"}, live: true},
			{path: "/api/v1/alerts/resolved-1", status: 200, want: "resolved", timeline: []history.Kind{"active", "resolved"}},
			{path: "/alerts/event-1", status: 200, want: "event", timeline: []history.Kind{"event"}},
			{path: "/api/v1/alerts/never-seen", status: 404},
		}
		for _, tt := range tests {
			t.Run(tt.path, func(t *testing.T) {
				status, body, hdr := do(t, http.MethodGet, srv.URL+tt.path, "", "")
				if status != tt.status || hdr.Get("Content-Type") != "application/json" {
					t.Fatalf("status %d (%s), want %d: %s", status, hdr.Get("Content-Type"), tt.status, body)
				}
				if tt.status == 404 {
					if !strings.Contains(body, "older than history.retention (720h0m0s)") {
						t.Errorf("404 says %s", body)
					}
					return
				}
				var got struct {
					history.Alert
					Live *struct {
						State string `json:"state"`
					} `json:"live"`
				}
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				var kinds []history.Kind
				for _, e := range got.Timeline {
					kinds = append(kinds, e.Kind)
				}
				if got.Status != tt.want || strings.Join(toStrings(kinds), ",") != strings.Join(toStrings(tt.timeline), ",") || (got.Live != nil) != tt.live {
					t.Errorf("status %s timeline %v live %v, want %s %v %v", got.Status, kinds, got.Live != nil, tt.want, tt.timeline, tt.live)
				}
				if tt.live && got.Live.State != "firing" {
					t.Errorf("live state %q", got.Live.State)
				}
				if len(kinds) > 1 && kinds[1] == history.KindAttempt && (got.Timeline[1].HTTPStatus != 200 || got.Timeline[1].Destination != "noc-webhook") {
					t.Errorf("attempt %+v", got.Timeline[1])
				}
			})
		}
	})

	t.Run("active alert history missed", func(t *testing.T) {
		d2, _, _ := testDeps(testToken, true)
		d2.History = realHistory(t) // holds nothing
		srv2 := newServer(t, d2)
		status, body, _ := do(t, http.MethodGet, srv2.URL+"/api/v1/alerts/"+active.InstanceID, "", "")
		if status != 200 || !strings.Contains(body, `"status": "active"`) || !strings.Contains(body, `"live"`) || strings.Contains(body, `"timeline"`) {
			t.Errorf("an active alert history does not hold: %d %s", status, body)
		}
	})

	t.Run("history pages", func(t *testing.T) {
		tests := []struct {
			name, query string
			status      int
			ids         string
			next        bool
			errText     string
		}{
			{name: "default page", query: "", status: 200, ids: "event-1,resolved-1," + active.InstanceID},
			{name: "limit 1", query: "?limit=1", status: 200, ids: "event-1", next: true},
			{name: "device filter", query: "?device=acc-sw7", status: 200, ids: "event-1,resolved-1"},
			{name: "event id filter", query: "?event_id=NETWORK-DEVICES-3-102", status: 200, ids: "event-1"},
			{name: "status filter", query: "?status=resolved", status: 200, ids: "resolved-1"},
			{name: "limit exactly all", query: "?limit=3", status: 200, ids: "event-1,resolved-1," + active.InstanceID},
			{name: "bad status", query: "?status=gone", status: 400, errText: `status "gone"`},
			{name: "bad cursor", query: "?cursor=x1", status: 400, errText: `cursor "x1" is not one a page of history gave`},
			{name: "limit 0", query: "?limit=0", status: 400, errText: "want a positive integer"},
			{name: "negative limit", query: "?limit=-1", status: 400, errText: "want a positive integer"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body, hdr := do(t, http.MethodGet, srv.URL+"/api/v1/history"+tt.query, "", "")
				if status != tt.status {
					t.Fatalf("status %d, want %d: %s", status, tt.status, body)
				}
				if tt.status != 200 {
					var e struct{ Error string }
					if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.errText) {
						t.Errorf("error %s, want %q", body, tt.errText)
					}
					return
				}
				if got := alertIDs(t, body); got != tt.ids {
					t.Errorf("page %s, want %s", got, tt.ids)
				}
				if (hdr.Get("X-Next-Cursor") != "") != tt.next || (hdr.Get("Link") != "") != tt.next {
					t.Errorf("next cursor %q link %q, want a next page: %v", hdr.Get("X-Next-Cursor"), hdr.Get("Link"), tt.next)
				}
			})
		}
		// Following the links walks every alert once, and the last page
		// announces none.
		var seen []string
		path := "/api/v1/history?limit=1"
		for range 10 {
			status, body, hdr := do(t, http.MethodGet, srv.URL+path, "", "")
			if status != 200 {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
			seen = append(seen, alertIDs(t, body))
			link := hdr.Get("Link")
			if link == "" {
				break
			}
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
		if strings.Join(seen, ",") != "event-1,resolved-1,"+active.InstanceID {
			t.Errorf("walked %v", seen)
		}
	})

	t.Run("status", func(t *testing.T) {
		status, body, _ := do(t, http.MethodGet, srv.URL+"/api/v1/history/status", "", "")
		var s history.Stats
		if err := json.Unmarshal([]byte(body), &s); status != 200 || err != nil || s.Written != 5 || s.Retention != "720h0m0s" || len(s.Dropped) != 4 {
			t.Errorf("history status %d %s (%v)", status, body, err)
		}
	})
}

func alertIDs(t *testing.T, body string) string {
	t.Helper()
	var items []history.Alert
	if err := json.Unmarshal([]byte(body), &items); err != nil {
		t.Fatalf("not a JSON array of alerts: %v\n%s", err, body)
	}
	var ids []string
	for _, a := range items {
		if a.Timeline != nil {
			t.Errorf("a page carries %s's timeline", a.InstanceID)
		}
		ids = append(ids, a.InstanceID)
	}
	return strings.Join(ids, ",")
}

func toStrings(ks []history.Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}
