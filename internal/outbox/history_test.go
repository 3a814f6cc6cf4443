package outbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/notify"
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

// TestDeadLetterPage pages the dead letters oldest first by a cursor into
// the log: a replay between pages neither shifts nor repeats the rest,
// a destination filter pages too, and a cursor it did not give is refused.
func TestDeadLetterPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bad := &notify.Error{Status: 400, Reason: "HTTP 400: bad field"}
	f.ob.SetDestinations([]Destination{dest("a", f.fake(always(bad))), dest("b", f.fake(always(bad)))})
	for i := range 5 {
		name := "a"
		if i%2 == 1 {
			name = "b"
		}
		f.enqueue(Item{Destination: name, Event: ev(fmt.Sprintf("inst-%d", i), event.StatusActive, 0)})
		if i == 0 {
			f.run()
		}
		f.deadLetters(i + 1) // one at a time: the log holds them in this order
	}
	ctx := context.Background()
	page := func(q DeadLetterQuery) (string, string) {
		t.Helper()
		dls, next, err := f.ob.DeadLetterPage(ctx, q)
		if err != nil {
			t.Fatalf("DeadLetterPage(%+v): %v", q, err)
		}
		var out []string
		for _, dl := range dls {
			out = append(out, strings.TrimPrefix(dl.Event.InstanceID, "inst-"))
		}
		return strings.Join(out, ","), next
	}
	all, next := page(DeadLetterQuery{})
	if all != "0,1,2,3,4" || next != "" {
		t.Fatalf("all: %s next %q", all, next)
	}
	first, next := page(DeadLetterQuery{Limit: 2})
	if first != "0,1" || next == "" {
		t.Fatalf("first page %s next %q", first, next)
	}
	// Dead letter 1 (on the page read) and 2 (on the next) are replayed.
	dls, _ := f.ob.DeadLetters(ctx)
	// The receivers keep refusing: the replays come back as new dead
	// letters, at the end of the log.
	for _, dl := range dls[1:3] {
		if err := f.ob.Replay(ctx, dl.ID); err != nil {
			t.Fatal(err)
		}
	}
	f.deadLetters(5)
	second, next2 := page(DeadLetterQuery{Limit: 2, Cursor: next})
	third, next3 := page(DeadLetterQuery{Limit: 2, Cursor: next2})
	if second != "3,4" || third != "1,2" && third != "2,1" || next3 != "" {
		t.Errorf("after replays: second page %s, third %s (next %q); want 3,4 then the replayed two, last", second, third, next3)
	}
	if got, next := page(DeadLetterQuery{Destination: "b", Limit: 1}); got != "3" || next == "" {
		t.Errorf("destination b, first page: %s next %q", got, next)
	}
	for _, c := range []string{"x", "d", "dzzzzzzzzzzzzzzzzzz", "d0", "h12"} {
		if _, _, err := f.ob.DeadLetterPage(ctx, DeadLetterQuery{Cursor: c}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
}
