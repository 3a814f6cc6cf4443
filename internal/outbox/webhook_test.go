package outbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/webhook"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

const signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// received is one request the receiver got.
type received struct {
	method, contentType, id string
	sigErr                  error
	payload                 struct {
		InstanceID string            `json:"instanceId"`
		EventID    string            `json:"eventId"`
		Details    map[string]string `json:"details"`
	}
	answered int
}

// TestWebhookDelivery runs the real webhook notifier against a loopback
// receiver: a 503 is retried with the same webhook-id and a valid signature
// each time, a 400 is dead-lettered with the receiver's body as reason.
func TestWebhookDelivery(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{method: r.Method, contentType: r.Header.Get("Content-Type"), id: r.Header.Get("webhook-id"),
			sigErr: webhooksig.Verify(signingSecret, r.Header, body, time.Now(), 0)}
		if err := json.Unmarshal(body, &rec.payload); err != nil {
			t.Errorf("receiver: body is not JSON: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		switch n := len(got); {
		case rec.payload.Details["Assurance Issue Status"] == "resolved":
			rec.answered = http.StatusBadRequest
		case n == 0:
			rec.answered = http.StatusServiceUnavailable
		default:
			rec.answered = http.StatusNoContent
		}
		got = append(got, rec)
		w.WriteHeader(rec.answered)
		if rec.answered == http.StatusBadRequest {
			_, _ = w.Write([]byte(`{"error":"resolved events are not accepted here"}`))
		}
	}))
	defer srv.Close()

	f := newFixture(t)
	d := dest("itsm", newWebhook(t, "itsm", srv.URL+"/hook"))
	f.ob.SetDestinations([]Destination{d})
	active := ev("5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f", event.StatusActive, 0)
	f.enqueue(Item{Destination: "itsm", Event: active})
	f.run()
	f.advanceUntil("delivery after a 503", func() bool { return f.ob.Pending()["itsm"] == 0 })

	mu.Lock()
	reqs := append([]received(nil), got...)
	mu.Unlock()
	if len(reqs) != 2 || reqs[0].answered != 503 || reqs[1].answered != 204 {
		t.Fatalf("requests %+v; want a 503 then a 204", reqs)
	}
	for i, r := range reqs {
		if r.method != http.MethodPost || r.contentType != "application/json" || r.id != active.NotificationID("itsm") ||
			r.payload.InstanceID != active.InstanceID || r.payload.EventID != active.EventID || r.sigErr != nil {
			t.Errorf("request %d: %s %s webhook-id %s instance %s signature %v", i+1, r.method, r.contentType, r.id, r.payload.InstanceID, r.sigErr)
		}
	}

	f.enqueue(Item{Destination: "itsm", Event: ev(active.InstanceID, event.StatusResolved, time.Minute)})
	var dls []DeadLetter
	waitFor(t, 5*time.Second, "the dead letter", func() bool {
		dls, _ = f.ob.DeadLetters(context.Background())
		return len(dls) == 1
	})
	want := "POST " + srv.URL + `/hook: HTTP 400: {"error":"resolved events are not accepted here"}`
	if dls[0].Reason != want || dls[0].Status != 400 {
		t.Fatalf("dead letter reason %q status %d; want %q", dls[0].Reason, dls[0].Status, want)
	}
	if strings.Contains(dls[0].Reason, "whsec_") {
		t.Fatal("the signing secret reached a dead letter")
	}
}

// newWebhook builds the real webhook notifier as the config loader would.
func newWebhook(t *testing.T, name, url string) notify.Notifier {
	t.Helper()
	var doc yaml.Node
	src := "name: " + name + "\ntype: webhook\nurl: " + url + "\nsecret: " + signingSecret + "\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	d := config.Destination{Name: name, Type: "webhook", Node: doc.Content[0], Line: 1}
	n, err := webhook.New(d, notify.Env{ExternalURL: "http://127.0.0.1:9720", UserAgent: "nocbridge/test"})
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	return n
}
