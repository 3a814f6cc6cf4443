package outbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
)

// TestHistoryAttempts: every attempt reaches the alert's history with its
// destination, number, result, the receiver's HTTP status (a 2xx too,
// which Send does not return) and duration; then the dead letter and its
// replay. /api/v1/deliveries shows the status too.
func TestHistoryAttempts(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	answers := []int{http.StatusServiceUnavailable, http.StatusAccepted, http.StatusBadRequest, http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		code := answers[0]
		if len(answers) > 1 {
			answers = answers[1:]
		}
		mu.Unlock()
		w.WriteHeader(code)
	}))
	defer srv.Close()

	f := newFixture(t)
	f.ob.SetDestinations([]Destination{dest("itsm", newWebhook(t, "itsm", srv.URL+"/hook"))})
	active := ev("5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f", event.StatusActive, 0)
	resolve := ev(active.InstanceID, event.StatusResolved, time.Minute)
	f.enqueue(Item{Destination: "itsm", Event: active})
	f.run()
	f.advanceUntil("delivery after a 503", func() bool { return f.ob.Pending()["itsm"] == 0 })
	f.enqueue(Item{Destination: "itsm", Event: resolve})
	dls := f.deadLetters(1)
	if err := f.ob.Replay(context.Background(), dls[0].ID); err != nil {
		t.Fatal(err)
	}
	f.advanceUntil("the replayed resolve delivered", func() bool { return f.ob.Pending()["itsm"] == 0 })

	type row struct {
		kind   history.Kind
		status event.Status
		n      int
		result string
		http   int
	}
	want := []row{
		{history.KindAttempt, event.StatusActive, 1, ResultRetry, 503},
		{history.KindAttempt, event.StatusActive, 2, ResultDelivered, 202},
		{history.KindAttempt, event.StatusResolved, 1, ResultDead, 400},
		{history.KindDeadLetter, event.StatusResolved, 1, "", 400},
		{history.KindReplay, event.StatusResolved, 0, "", 0},
		{history.KindAttempt, event.StatusResolved, 1, ResultDelivered, 200},
	}
	got := f.hist.Of(active.InstanceID)
	if len(got) != len(want) {
		t.Fatalf("history entries %+v, want %d", got, len(want))
	}
	for i, w := range want {
		e := got[i]
		if (row{e.Kind, e.Status, e.Attempt, e.Result, e.HTTPStatus}) != w || e.Destination != "itsm" {
			t.Errorf("entry %d = %+v, want %+v to itsm", i, e, w)
		}
		if e.Kind == history.KindAttempt && (e.DurationMs <= 0 || e.At.IsZero()) {
			t.Errorf("attempt %d without its time or duration: %+v", i, e)
		}
	}
	if !strings.Contains(got[2].Detail, "HTTP 400") || got[4].Detail != dls[0].ID {
		t.Errorf("dead attempt detail %q, replay detail %q", got[2].Detail, got[4].Detail)
	}
	if r := f.ob.Recent("itsm"); r[0].HTTPStatus != 200 || r[len(r)-1].HTTPStatus != 503 {
		t.Errorf("recent attempts' statuses: newest %d, oldest %d; want 200 and 503", r[0].HTTPStatus, r[len(r)-1].HTTPStatus)
	}
}

// TestHistoryDigest: each notification a digest carried has the digest's
// attempt and the digest in its history.
func TestHistoryDigest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat, _ := f.parkedStorm()
	f.advanceUntil("the digest", func() bool { return len(chat.sent()) == 1 && f.ob.Pending()["chat"] == 0 })
	d := chat.sent()[0]
	for _, n := range d.Notifications {
		got := f.hist.Of(n.Event.InstanceID)
		if kinds := []history.Kind{got[0].Kind, got[len(got)-1].Kind}; len(got) != 2 || !slices.Equal(kinds, []history.Kind{history.KindAttempt, history.KindDigest}) {
			t.Fatalf("%s: %+v, want the digest's attempt, then the digest", n.Event.InstanceID, got)
		}
		if got[0].Result != ResultDelivered || !strings.Contains(got[0].Detail, "in digest "+d.ID+" of 15") || got[1].Detail != d.ID {
			t.Errorf("%s: %+v", n.Event.InstanceID, got)
		}
	}
	singles := chat.got()
	if got := f.hist.Of(singles[0].InstanceID); len(got) != 1 || got[0].Kind != history.KindAttempt || got[0].Detail != "" {
		t.Errorf("a notification sent on its own: %+v", got)
	}
}
