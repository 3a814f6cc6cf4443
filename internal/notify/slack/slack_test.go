package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/store"
)

const (
	botToken  = "xoxb-1111-2222-s3cr3tT0k3n"
	hookPath  = "/services/T0NOC/B0NOC/w3bh00kS3cr3t"
	channelID = "C0NOC12345"
)

func activeEvent() event.Event {
	return event.Event{
		InstanceID:  "5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f",
		EventID:     "NETWORK-DEVICES-1-101",
		Name:        "Device core-sw1 is unreachable",
		EventName:   "Device unreachable",
		Description: "core-sw1 (10.0.0.1) is unreachable <!everyone> & more",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Devices",
		Severity:    1,
		Source:      "icmp",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
	}
}

func resolvedEvent() event.Event {
	e := activeEvent()
	e.Status = event.StatusResolved
	e.Timestamp = e.Timestamp.Add(90 * time.Second)
	return e
}

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("noc-slack"), Event: ev, Attempt: 1}
}

// memState is a notify.StateStore in memory; a new Notifier over the same
// memState is what a restart looks like to the notifier.
type memState struct {
	mu                     sync.Mutex
	m                      map[string][]byte
	getErr, putErr, delErr error
}

func newMemState() *memState { return &memState{m: map[string][]byte{}} }

func (s *memState) Get(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErr != nil {
		return nil, false, s.getErr
	}
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putErr != nil {
		return s.putErr
	}
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memState) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delErr != nil {
		return s.delErr
	}
	delete(s.m, k)
	return nil
}

func (s *memState) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// call is one request the fake Slack saw.
type call struct {
	method, path, auth, contentType, userAgent string
	form                                       url.Values // Web API calls
	body                                       []byte
}

type reply struct {
	status int
	header map[string]string
	body   string
}

// fakeSlack emulates the Web API's chat.postMessage and chat.update (form
// bodies, as slack-go sends them) and an incoming webhook at hookPath.
// Queued replies override the default success answer per endpoint.
type fakeSlack struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []call
	nextTS  int
	replies map[string][]reply // by last path element: chat.postMessage, chat.update, or "webhook"
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{replies: map[string][]reply{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSlack) queue(endpoint string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[endpoint] = append(f.replies[endpoint], r)
}

func (f *fakeSlack) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := call{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"),
		contentType: r.Header.Get("Content-Type"), userAgent: r.Header.Get("User-Agent"), body: body}
	endpoint := "webhook"
	if strings.HasPrefix(r.URL.Path, "/api/") {
		endpoint = strings.TrimPrefix(r.URL.Path, "/api/")
		c.form, _ = url.ParseQuery(string(body))
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	var rep *reply
	if q := f.replies[endpoint]; len(q) > 0 {
		rep, f.replies[endpoint] = &q[0], q[1:]
	}
	if rep == nil {
		switch endpoint {
		case "chat.postMessage":
			f.nextTS++
			rep = &reply{status: 200, body: fmt.Sprintf(`{"ok":true,"channel":%q,"ts":"1763840000.%06d","message":{"text":"x"}}`, channelID, f.nextTS)}
		case "chat.update":
			rep = &reply{status: 200, body: fmt.Sprintf(`{"ok":true,"channel":%q,"ts":%q,"text":"x"}`, c.form.Get("channel"), c.form.Get("ts"))}
		case "webhook":
			if r.URL.Path != hookPath {
				rep = &reply{status: 404, body: "no_service"}
			} else {
				rep = &reply{status: 200, body: "ok"}
			}
		default:
			rep = &reply{status: 200, body: `{"ok":false,"error":"unknown_method"}`}
		}
	}
	f.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if strings.HasPrefix(rep.body, "{") {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeSlack) all() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeSlack) count(path string) int {
	n := 0
	for _, c := range f.all() {
		if c.path == path {
			n++
		}
	}
	return n
}

type setup struct {
	state  notify.StateStore
	logs   *notifytest.Logs
	dir    string
	client *http.Client
}

func newNotifier(t *testing.T, d config.Destination, st setup) *Notifier {
	t.Helper()
	env := notifytest.TextEnv(st.dir, st.logs)
	env.State, env.HTTPClient = st.state, st.client
	return notifytest.New[*Notifier](t, New, d, env)
}

func botYAML(f *fakeSlack) string {
	// api_url without the trailing slash: New must add it.
	return "name: noc-slack\ntype: slack\ntoken: " + botToken + "\nchannel: \"#noc\"\napi_url: " + f.URL + "/api\n"
}

func hookYAML(f *fakeSlack) string {
	return "name: noc-slack\ntype: slack\nurl: " + f.URL + hookPath + "\n"
}

// formJSON turns a Web API form body into JSON for golden comparison, with
// the JSON-valued fields (blocks, attachments) decoded.
func formJSON(t *testing.T, form url.Values) []byte {
	t.Helper()
	m := map[string]any{}
	for k, vs := range form {
		v := vs[0]
		if k == "blocks" || k == "attachments" {
			var j any
			if err := json.Unmarshal([]byte(v), &j); err != nil {
				t.Fatalf("form field %s is not JSON: %v", k, err)
			}
			m[k] = j
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkAPICall(t *testing.T, c call, path string) {
	t.Helper()
	if c.method != http.MethodPost || c.path != path {
		t.Errorf("request %s %s, want POST %s", c.method, c.path, path)
	}
	if c.auth != "Bearer "+botToken {
		t.Errorf("Authorization header is not the bot token as Bearer")
	}
	if _, ok := c.form["token"]; ok {
		t.Errorf("token sent in the form body as well as the header")
	}
	if !strings.HasPrefix(c.contentType, "application/x-www-form-urlencoded") {
		t.Errorf("Content-Type = %q", c.contentType)
	}
	if c.userAgent != notifytest.UserAgent {
		t.Errorf("User-Agent = %q", c.userAgent)
	}
}

func TestWebhookGolden(t *testing.T) {
	f := newFakeSlack(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f)), setup{dir: t.TempDir()})
	for _, tt := range []struct {
		golden string
		ev     event.Event
	}{
		{"webhook-active.json", activeEvent()},
		{"webhook-resolved.json", resolvedEvent()}, // webhook mode: the resolve is a new message
	} {
		t.Run(tt.golden, func(t *testing.T) {
			if err := n.Send(context.Background(), notification(tt.ev)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			calls := f.all()
			c := calls[len(calls)-1]
			if c.method != http.MethodPost || c.path != hookPath || c.contentType != "application/json" || c.userAgent != notifytest.UserAgent {
				t.Errorf("request %s %s (Content-Type %q, User-Agent %q)", c.method, c.path, c.contentType, c.userAgent)
			}
			if c.auth != "" {
				t.Errorf("webhook request carries Authorization")
			}
			notifytest.GoldenJSON(t, tt.golden, c.body)
		})
	}
	if got := len(f.all()); got != 2 {
		t.Errorf("%d requests, want 2", got)
	}
}

func TestBotFlow(t *testing.T) {
	f := newFakeSlack(t)
	st := newMemState()
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})

	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatalf("active: %v", err)
	}
	calls := f.all()
	if len(calls) != 1 {
		t.Fatalf("%d requests for the active, want 1", len(calls))
	}
	checkAPICall(t, calls[0], "/api/chat.postMessage")
	notifytest.GoldenJSON(t, "bot-active-post.json", formJSON(t, calls[0].form))
	raw, ok, _ := st.Get(context.Background(), "ts."+activeEvent().InstanceID)
	if !ok {
		t.Fatal("the message ts was not stored")
	}
	var th thread
	if err := json.Unmarshal(raw, &th); err != nil || th.Channel != channelID || th.TS != "1763840000.000001" {
		t.Fatalf("stored state %s (%v), want channel %s ts 1763840000.000001", raw, err, channelID)
	}

	if err := n.Send(context.Background(), notification(resolvedEvent())); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	calls = f.all()[1:]
	if len(calls) != 2 {
		t.Fatalf("%d requests for the resolve, want a reply and an update", len(calls))
	}
	checkAPICall(t, calls[0], "/api/chat.postMessage")
	if calls[0].form.Get("thread_ts") != "1763840000.000001" || calls[0].form.Get("channel") != channelID {
		t.Errorf("resolve reply not threaded under the active message: %v", calls[0].form)
	}
	notifytest.GoldenJSON(t, "bot-resolve-reply.json", formJSON(t, calls[0].form))
	checkAPICall(t, calls[1], "/api/chat.update")
	if calls[1].form.Get("ts") != "1763840000.000001" || calls[1].form.Get("channel") != channelID {
		t.Errorf("update does not target the active message: %v", calls[1].form)
	}
	notifytest.GoldenJSON(t, "bot-resolve-update.json", formJSON(t, calls[1].form))
	if st.len() != 0 {
		t.Errorf("state not deleted after the resolve")
	}
}

// TestBotDedupAfterRestart: the same active notification through a new
// Notifier over the same store (a restart, or the outbox redelivering after
// a crash) updates the existing message; the resolve still threads under it.
func TestBotDedupAfterRestart(t *testing.T) {
	f := newFakeSlack(t)
	st := newMemState()
	d := notifytest.Destination(t, botYAML(f))
	first := newNotifier(t, d, setup{dir: t.TempDir(), state: st})
	nt := notification(activeEvent())
	if err := first.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()

	second := newNotifier(t, d, setup{dir: t.TempDir(), state: st})
	if err := second.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	if got := f.count("/api/chat.postMessage"); got != 1 {
		t.Fatalf("%d messages posted for one alert, want 1", got)
	}
	calls := f.all()
	if last := calls[len(calls)-1]; last.path != "/api/chat.update" || last.form.Get("ts") != "1763840000.000001" {
		t.Fatalf("repeat active made %s %v, want chat.update of the first message", last.path, last.form)
	}
	if err := second.Send(context.Background(), notification(resolvedEvent())); err != nil {
		t.Fatal(err)
	}
	calls = f.all()
	reply := calls[len(calls)-2]
	if reply.path != "/api/chat.postMessage" || reply.form.Get("thread_ts") != "1763840000.000001" {
		t.Errorf("resolve after restart not threaded: %s %v", reply.path, reply.form)
	}
	if !strings.Contains(reply.form.Get("blocks"), "after 1m30s") {
		t.Errorf("reply does not say how long the alert lasted: %s", reply.form.Get("blocks"))
	}
}

// TestBotDedupAcrossStoreRestart is the restart for real: the message ts
// goes through the embedded JetStream store, which is closed and reopened
// from its files between the two notifiers.
func TestBotDedupAcrossStoreRestart(t *testing.T) {
	f := newFakeSlack(t)
	dir := t.TempDir()
	d := notifytest.Destination(t, botYAML(f))
	openState := func() (*store.Store, notify.StateStore) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := store.Open(ctx, store.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("opening the store: %v", err)
		}
		st, err := s.StateStore(ctx, "dest_noc-slack")
		if err != nil {
			t.Fatalf("opening the state bucket: %v", err)
		}
		return s, st
	}

	s1, st1 := openState()
	first := newNotifier(t, d, setup{dir: dir, state: st1})
	nt := notification(activeEvent())
	if err := first.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, st2 := openState()
	defer func() { _ = s2.Close() }()
	second := newNotifier(t, d, setup{dir: dir, state: st2})
	if err := second.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	if err := second.Send(context.Background(), notification(resolvedEvent())); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range f.all() {
		paths = append(paths, c.path+" "+c.form.Get("ts")+c.form.Get("thread_ts"))
	}
	want := []string{
		"/api/chat.postMessage ",                  // the alert
		"/api/chat.update 1763840000.000001",      // the same alert after the restart
		"/api/chat.postMessage 1763840000.000001", // the resolve, threaded
		"/api/chat.update 1763840000.000001",      // the original marked resolved
	}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
	if _, ok, err := st2.Get(context.Background(), stateKey(nt.Event.InstanceID)); ok || err != nil {
		t.Errorf("state left after the resolve (err %v)", err)
	}
}

// TestResolveRetryDoesNotRepeatReply: the reply went out, the update failed;
// the outbox's retry only redoes the update.
func TestResolveRetryDoesNotRepeatReply(t *testing.T) {
	f := newFakeSlack(t)
	st := newMemState()
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	f.queue("chat.update", reply{status: 503, body: "upstream busy"})
	err := n.Send(context.Background(), notification(resolvedEvent()))
	var ne *notify.Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.Status != 503 || !strings.Contains(ne.Reason, "upstream busy") {
		t.Fatalf("failed update: %v, want a retryable 503 with the body", err)
	}
	if st.len() != 1 {
		t.Fatalf("state dropped although the update failed")
	}
	if err := n.Send(context.Background(), notification(resolvedEvent())); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := f.count("/api/chat.postMessage"); got != 2 {
		t.Errorf("%d postMessage calls, want 2 (active, one reply)", got)
	}
	if got := f.count("/api/chat.update"); got != 2 {
		t.Errorf("%d update calls, want 2", got)
	}
	if st.len() != 0 {
		t.Errorf("state not deleted after the retried resolve")
	}
}

func TestBotDeletedMessage(t *testing.T) {
	f := newFakeSlack(t)
	st := newMemState()
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})
	nt := notification(activeEvent())
	if err := n.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	// Someone deleted the message: the repeat posts a fresh one, and remembers it.
	f.queue("chat.update", reply{status: 200, body: `{"ok":false,"error":"message_not_found"}`})
	if err := n.Send(context.Background(), nt); err != nil {
		t.Fatalf("repeat after deletion: %v", err)
	}
	raw, _, _ := st.Get(context.Background(), "ts."+nt.Event.InstanceID)
	if !strings.Contains(string(raw), "1763840000.000002") {
		t.Errorf("state %s does not point at the new message", raw)
	}
	// The resolve's update finds nothing to update either: the reply stands.
	f.queue("chat.update", reply{status: 200, body: `{"ok":false,"error":"message_not_found"}`})
	if err := n.Send(context.Background(), notification(resolvedEvent())); err != nil {
		t.Fatalf("resolve with the original gone: %v", err)
	}
	if st.len() != 0 {
		t.Errorf("state kept")
	}
}

func TestBotWithoutState(t *testing.T) {
	f := newFakeSlack(t)
	logs := &notifytest.Logs{}
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), logs: logs})
	for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
		if err := n.Send(context.Background(), notification(ev)); err != nil {
			t.Fatal(err)
		}
	}
	calls := f.all()
	if len(calls) != 2 || calls[1].path != "/api/chat.postMessage" || calls[1].form.Get("thread_ts") != "" {
		t.Fatalf("without a store every notification must be a plain new message: %v", calls)
	}
	if got := strings.Count(logs.String(), "no state store"); got != 1 {
		t.Errorf("warned %d times about the missing store, want once", got)
	}
}

func TestOneShotEventNotRemembered(t *testing.T) {
	f := newFakeSlack(t)
	st := newMemState()
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})
	ev := activeEvent()
	ev.Kind = "event"
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	if st.len() != 0 {
		t.Errorf("a one-shot event (no resolve ever) left state behind")
	}
}

func TestStateStoreFailures(t *testing.T) {
	t.Run("get fails: retryable, nothing posted", func(t *testing.T) {
		f := newFakeSlack(t)
		st := newMemState()
		st.getErr = errors.New("store unavailable")
		n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})
		err := n.Send(context.Background(), notification(activeEvent()))
		if !notify.Retryable(err) || len(f.all()) != 0 {
			t.Fatalf("got %v after %d requests, want retryable before any request", err, len(f.all()))
		}
	})
	t.Run("put fails after posting: delivered, logged", func(t *testing.T) {
		f := newFakeSlack(t)
		st := newMemState()
		st.putErr = errors.New("store full")
		logs := &notifytest.Logs{}
		n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st, logs: logs})
		if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
			t.Fatalf("a posted message must count as delivered: %v", err)
		}
		if !strings.Contains(logs.String(), "could not be stored") {
			t.Errorf("store failure not logged: %s", logs.String())
		}
	})
	t.Run("delete fails: retryable", func(t *testing.T) {
		f := newFakeSlack(t)
		st := newMemState()
		n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})
		if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
			t.Fatal(err)
		}
		st.delErr = errors.New("store unavailable")
		if err := n.Send(context.Background(), notification(resolvedEvent())); !notify.Retryable(err) {
			t.Fatalf("got %v, want retryable", err)
		}
		st.delErr = nil
		if err := n.Send(context.Background(), notification(resolvedEvent())); err != nil {
			t.Fatal(err)
		}
		if got := f.count("/api/chat.postMessage"); got != 2 {
			t.Errorf("%d postMessage calls, want 2: the retry must not repeat the reply", got)
		}
	})
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name      string
		bot       bool
		endpoint  string
		reply     reply
		wantAfter time.Duration
		slack     time.Duration // tolerance for HTTP-date values
	}{
		{"bot 429 Retry-After", true, "chat.postMessage", reply{status: 429, header: map[string]string{"Retry-After": "7"}}, 7 * time.Second, 0},
		{"bot ok:false ratelimited", true, "chat.postMessage", reply{status: 200, header: map[string]string{"Retry-After": "4"}, body: `{"ok":false,"error":"ratelimited"}`}, 4 * time.Second, 0},
		{"webhook 429 Retry-After", false, "webhook", reply{status: 429, header: map[string]string{"Retry-After": "3"}, body: "rate_limited"}, 3 * time.Second, 0},
		{"webhook 429 no header", false, "webhook", reply{status: 429, body: "rate_limited"}, 0, 0},
		{"webhook 429 HTTP-date", false, "webhook", reply{status: 429, header: map[string]string{"Retry-After": time.Now().Add(42 * time.Second).UTC().Format(http.TimeFormat)}}, 42 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.queue(tt.endpoint, tt.reply)
			y := hookYAML(f)
			if tt.bot {
				y = botYAML(f)
			}
			n := newNotifier(t, notifytest.Destination(t, y), setup{dir: t.TempDir(), state: newMemState()})
			err := n.Send(context.Background(), notification(activeEvent()))
			var ne *notify.Error
			if !errors.As(err, &ne) || !ne.Retryable {
				t.Fatalf("got %v, want a retryable *notify.Error", err)
			}
			if ne.RetryAfter > tt.wantAfter || ne.RetryAfter < tt.wantAfter-tt.slack {
				t.Errorf("RetryAfter = %s, want %s", ne.RetryAfter, tt.wantAfter)
			}
			if !strings.Contains(ne.Reason, "429") && !strings.Contains(ne.Reason, "ratelimited") {
				t.Errorf("reason %q does not say rate limited", ne.Reason)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name       string
		bot        bool
		reply      reply
		retryable  bool
		wantReason string
	}{
		{"invalid_blocks", true, reply{status: 200, body: `{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]}}`}, false, "slack chat.postMessage: invalid_blocks ([ERROR] must be less than 3001 characters"},
		{"channel_not_found", true, reply{status: 200, body: `{"ok":false,"error":"channel_not_found"}`}, false, "slack chat.postMessage: channel_not_found"},
		{"invalid_auth", true, reply{status: 200, body: `{"ok":false,"error":"invalid_auth"}`}, false, "invalid_auth"},
		{"not_in_channel", true, reply{status: 200, body: `{"ok":false,"error":"not_in_channel"}`}, false, "not_in_channel"},
		{"fatal_error", true, reply{status: 200, body: `{"ok":false,"error":"fatal_error"}`}, true, "fatal_error"},
		{"internal_error", true, reply{status: 200, body: `{"ok":false,"error":"internal_error"}`}, true, "internal_error"},
		{"service_unavailable", true, reply{status: 200, body: `{"ok":false,"error":"service_unavailable"}`}, true, "service_unavailable"},
		{"request_timeout", true, reply{status: 200, body: `{"ok":false,"error":"request_timeout"}`}, true, "request_timeout"},
		{"bot HTTP 500", true, reply{status: 500, body: "<html>oops</html>"}, true, "HTTP 500: <html>oops</html>"},
		{"bot 200 not JSON", true, reply{status: 200, body: "<html>captive portal</html>"}, true, "unexpected response"},
		{"webhook no_service", false, reply{status: 404, body: "no_service"}, false, "slack webhook " + "http://127.0.0.1"},
		{"webhook invalid_payload", false, reply{status: 400, body: "invalid_payload"}, false, "HTTP 400: invalid_payload"},
		{"webhook channel_is_archived", false, reply{status: 410, body: "channel_is_archived"}, false, "HTTP 410: channel_is_archived"},
		{"webhook 503", false, reply{status: 503, body: "try later"}, true, "HTTP 503: try later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			endpoint, y := "webhook", hookYAML(f)
			if tt.bot {
				endpoint, y = "chat.postMessage", botYAML(f)
			}
			f.queue(endpoint, tt.reply)
			n := newNotifier(t, notifytest.Destination(t, y), setup{dir: t.TempDir(), state: newMemState()})
			err := n.Send(context.Background(), notification(activeEvent()))
			var ne *notify.Error
			if !errors.As(err, &ne) {
				t.Fatalf("got %v, want *notify.Error", err)
			}
			if ne.Retryable != tt.retryable || !strings.Contains(ne.Reason, tt.wantReason) {
				t.Errorf("retryable=%v reason=%q, want %v and %q", ne.Retryable, ne.Reason, tt.retryable, tt.wantReason)
			}
		})
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slack.tmpl"), []byte("*{{ .Device.Name }}* at {{ .Device.Site }}: {{ .Description }} ({{ .Priority }}, {{ .Status }})\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeSlack(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f)+"template_file: slack.tmpl\n"), setup{dir: dir})
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	calls := f.all()
	notifytest.GoldenJSON(t, "webhook-template.json", calls[0].body)
}

func TestLimits(t *testing.T) {
	f := newFakeSlack(t)
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: newMemState()})
	ev := activeEvent()
	ev.Name = strings.Repeat("Very long rule name ", 20)
	// Long enough to need more sections than a message may hold; & and <
	// escape to entities that must never be split.
	ev.Description = strings.Repeat("interface Gi1/0/1 <down> & flapping; ", 6000)
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	form := f.all()[0].form
	var top []map[string]any
	var atts []struct {
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(form.Get("blocks")), &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(form.Get("attachments")), &atts); err != nil {
		t.Fatal(err)
	}
	total := len(top) + len(atts[0].Blocks)
	if total != maxBlocks {
		t.Errorf("%d blocks, want exactly the limit %d for this much text", total, maxBlocks)
	}
	header := top[0]["text"].(map[string]any)["text"].(string)
	if utf8.RuneCountInString(header) > maxHeaderText {
		t.Errorf("header of %d characters", utf8.RuneCountInString(header))
	}
	sections := 0
	for _, b := range atts[0].Blocks {
		txt, ok := b["text"].(map[string]any)
		if b["type"] != "section" || !ok {
			continue
		}
		sections++
		s := txt["text"].(string)
		if l := utf8.RuneCountInString(s); l > maxSectionText {
			t.Errorf("section of %d characters", l)
		}
		// A cut never leaves half an entity.
		trimmed := strings.TrimSuffix(s, truncatedMark)
		if i := strings.LastIndexByte(trimmed, '&'); i >= 0 && !strings.Contains(trimmed[i:], ";") {
			t.Errorf("section ends inside an entity: %q", trimmed[max(0, len(trimmed)-12):])
		}
	}
	if sections != maxBlocks-3 {
		t.Errorf("%d body sections, want %d", sections, maxBlocks-3)
	}
	if l := utf8.RuneCountInString(form.Get("text")); l > maxFallbackText || l == 0 {
		t.Errorf("fallback text of %d characters", l)
	}
}

// TestSecretsNeverLeak drives failure paths with the webhook URL's path (the
// credential) and the bot token, checking errors and every log line.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"w3bh00kS3cr3t", "s3cr3tT0k3n", "T0NOC/B0NOC"}
	// check fails if err (may be nil) or the log output holds a secret.
	check := func(t *testing.T, err error, logs *notifytest.Logs) {
		t.Helper()
		notifytest.NoSecrets(t, secrets, err, logs.String())
	}
	for _, bot := range []bool{false, true} {
		mode := map[bool]string{false: "webhook", true: "bot"}[bot]
		yamlFor := func(base string) string {
			if bot {
				return "name: s\ntype: slack\ntoken: " + botToken + "\nchannel: C1\napi_url: " + base + "/api/\n"
			}
			return "name: s\ntype: slack\nurl: " + base + hookPath + "?token=s3cr3tT0k3n\n"
		}
		t.Run(mode+" status error", func(t *testing.T) {
			f := newFakeSlack(t)
			f.queue("webhook", reply{status: 500, body: "boom"})
			f.queue("chat.postMessage", reply{status: 500, body: "boom"})
			logs := &notifytest.Logs{}
			n := newNotifier(t, notifytest.Destination(t, yamlFor(f.URL)), setup{dir: dir, logs: logs, state: newMemState()})
			err := n.Send(context.Background(), notification(activeEvent()))
			if err == nil {
				t.Fatal("expected an error")
			}
			check(t, err, logs)
		})
		t.Run(mode, func(t *testing.T) {
			notifytest.NetworkFailures(t, secrets, func(t *testing.T, base, extra string, logs *notifytest.Logs) error {
				n := newNotifier(t, notifytest.Destination(t, yamlFor(base)+extra), setup{dir: dir, logs: logs, state: newMemState()})
				return n.Send(context.Background(), notification(activeEvent()))
			})
		})
	}
	t.Run("successful bot flow logs", func(t *testing.T) {
		f := newFakeSlack(t)
		logs := &notifytest.Logs{}
		n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: dir, logs: logs, state: newMemState()})
		for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
			if err := n.Send(context.Background(), notification(ev)); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(logs.String(), "slack message posted") {
			t.Fatalf("debug logs not captured: %s", logs.String())
		}
		check(t, nil, logs)
	})
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: ftp://h" + hookPath + "\n",
			"url: \"http://h" + hookPath + "\\x7f%zz\"\n",
			"url: http://h" + hookPath + "\ntoken: " + botToken + "\n",
			"token: \"xoxb-s3cr3tT0k3n with space\"\nchannel: C1\n",
		} {
			_, err := New(notifytest.Destination(t, "name: s\ntype: slack\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
			if err == nil {
				t.Fatalf("%q: expected an error", y)
			}
			check(t, err, &notifytest.Logs{})
		}
	})
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"hook":        "https://hooks.slack.com" + hookPath + "\n",
		"token":       botToken + "\n",
		"empty":       "\n",
		"broken.tmpl": "{{ .Device.Name }\n",
		"field.tmpl":  "line one\n{{ .NoSuchField }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notifytest.ConfigCases(t, New, "name: s\ntype: slack\n", dir, []notifytest.ConfigCase{
		{Name: "neither mode", YAML: "channel: C1\n", Want: []string{`c.yaml:1: destination "s": set url (incoming webhook) or token and channel (bot)`}},
		{Name: "unknown key", YAML: "url: https://hooks.slack.com/x\nchanel: C1\n", Want: []string{`c.yaml:4: destination "s": unknown key "chanel" (known: api_url, channel, template_file, token, token_file, url, url_file)`}},
		{Name: "both modes", YAML: "url: https://hooks.slack.com/x\ntoken: t\nchannel: C1\n", Want: []string{`c.yaml:4: destination "s": set url (incoming webhook) or token and channel (bot), not both`}},
		{Name: "token without channel", YAML: "token: t\n", Want: []string{`c.yaml:1: destination "s": channel is required with token`}},
		{Name: "token_file without channel", YAML: "token_file: token\n", Want: []string{`c.yaml:1: destination "s": channel is required with token`}},
		{Name: "channel with webhook", YAML: "url_file: hook\nchannel: C1\n", Want: []string{`c.yaml:4: destination "s": channel is for bot mode (token)`}},
		{Name: "api_url with webhook", YAML: "url: https://hooks.slack.com/x\napi_url: http://127.0.0.1/api\n", Want: []string{`c.yaml:4: destination "s": api_url is for bot mode (token)`}},
		{Name: "url and url_file", YAML: "url: https://hooks.slack.com/x\nurl_file: hook\n", Want: []string{`c.yaml:4: destination "s": url: set either the value or the _file key, not both`}},
		{Name: "token and token_file", YAML: "token: t\ntoken_file: token\nchannel: C1\n", Want: []string{`c.yaml:4: destination "s": token: set either the value or the _file key, not both`}},
		{Name: "url_file missing", YAML: "url_file: nope\n", Want: []string{`c.yaml:3: destination "s": url: reading secret file`}},
		{Name: "url_file empty", YAML: "url_file: empty\n", Want: []string{`c.yaml:3: destination "s": url: secret file ` + filepath.Join(dir, "empty") + ` is empty`}},
		{Name: "token_file missing", YAML: "token_file: nope\nchannel: C1\n", Want: []string{`c.yaml:3: destination "s": token: reading secret file`}},
		{Name: "url scheme", YAML: "url: ftp://hooks.slack.com/x\n", Want: []string{`c.yaml:3: destination "s": url must be an http or https URL`}},
		{Name: "url host", YAML: "url: https:///x\n", Want: []string{`c.yaml:3: destination "s": url is missing a host`}},
		{Name: "api_url bad", YAML: "token: t\nchannel: C1\napi_url: slack.com/api\n", Want: []string{`c.yaml:5: destination "s": api_url must be an http or https URL`}},
		{Name: "wrong type", YAML: "url: https://hooks.slack.com/x\ntemplate_file: [a]\n", Want: []string{`c.yaml:4: destination "s": template_file must be a string, not a list`}},
		{Name: "template parse error", YAML: "url: https://hooks.slack.com/x\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:4: destination "s": template_file: template: broken.tmpl:1: unexpected "}" in operand`}},
		{Name: "template missing field", YAML: "url: https://hooks.slack.com/x\ntemplate_file: field.tmpl\n", Want: []string{`c.yaml:4: destination "s": template_file: ` + filepath.Join(dir, "field.tmpl") + `: template: field.tmpl:2:`}},
		{Name: "several at once", YAML: "token: t\napi_url: gopher://x\ntemplate_file: nope.tmpl\n", Want: []string{
			`c.yaml:1: destination "s": channel is required`,
			`c.yaml:4: destination "s": api_url must be`,
			`c.yaml:5: destination "s": template_file:`}},
	})
}

func TestValidConfigs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook"), []byte("https://hooks.slack.com"+hookPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, y := range []string{
		"url_file: hook\n",
		"url: https://hooks.slack.com/services/T/B/X\ntimeout: 5s\nretry: {initial: 1s}\nrate_limit: 1\n",
		"token: xoxb-1\nchannel: C0123456789\n",
		"token: xoxb-1\nchannel: \"#noc\"\napi_url: https://slack.example.com/api/\n",
	} {
		nf, err := New(notifytest.Destination(t, "name: s\ntype: slack\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
		if err != nil {
			t.Errorf("%q: %v", y, err)
			continue
		}
		n := nf.(*Notifier)
		if n.s.botMode() && !strings.HasSuffix(n.s.apiURL.String(), "/api/") {
			t.Errorf("api_url %s lacks its trailing slash", n.s.apiURL)
		}
	}
	n, _ := New(notifytest.Destination(t, "name: s\ntype: slack\ntoken: xoxb-1\nchannel: C1\n"), notify.Env{})
	if got := n.(*Notifier).s.apiURL.String(); got != DefaultAPIURL {
		t.Errorf("default api_url = %s", got)
	}
}

// TestTokenNotSentToRedirectTarget: the Bearer header goes to api_url's
// host only: a redirect elsewhere is not followed (SPEC 14) and fails for
// good, naming where it pointed.
func TestTokenNotSentToRedirectTarget(t *testing.T) {
	var mu sync.Mutex
	var gotAuth []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, _ := io.ReadAll(r.Body)
		gotAuth = append(gotAuth, r.Header.Get("Authorization")+string(b))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1.1"}`)
	}))
	defer other.Close()
	// A different host name for the same loopback server.
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	n := newNotifier(t, notifytest.Destination(t, "name: s\ntype: slack\ntoken: "+botToken+"\nchannel: C1\napi_url: "+api.URL+"/api/\n"), setup{dir: t.TempDir()})
	err := n.Send(context.Background(), notification(activeEvent()))
	mu.Lock()
	defer mu.Unlock()
	if len(gotAuth) != 0 {
		t.Fatalf("redirect target saw %d requests", len(gotAuth))
	}
	notifytest.Classified{Status: http.StatusTemporaryRedirect, Reason: "HTTP 307 redirect to " + otherURL + "/api/chat.postMessage not followed"}.Check(t, err)
}

func TestCloseDropsIdleConnections(t *testing.T) {
	notifytest.ClosesIdleConnections(t, notifytest.Reply{Status: http.StatusOK, Body: "ok"}, func(base string) notify.Notifier {
		return newNotifier(t, notifytest.Destination(t, "name: s\ntype: slack\nurl: "+base+hookPath+"\n"), setup{dir: t.TempDir()})
	}, notification(activeEvent()))
}

// TestDigestGolden: webhook mode posts the digest like any message.
func TestDigestGolden(t *testing.T) {
	f := newFakeSlack(t)
	n := newNotifier(t, notifytest.Destination(t, hookYAML(f)), setup{dir: t.TempDir()})
	notifytest.DigestGoldens(t, "webhook-", func(t *testing.T, d notify.Digest) []byte {
		before := len(f.all())
		if err := n.SendDigest(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		calls := f.all()[before:]
		c := calls[len(calls)-1]
		if len(calls) != 1 || c.method != http.MethodPost || c.path != hookPath || c.contentType != "application/json" || c.userAgent != notifytest.UserAgent || c.auth != "" {
			t.Errorf("%d requests, last %s %s (Content-Type %q, User-Agent %q, Authorization set %v)", len(calls), c.method, c.path, c.contentType, c.userAgent, c.auth != "")
		}
		return c.body
	})
}

// TestBotDigestIsAPlainMessage: in bot mode a digest is one new message in
// the channel, neither threaded nor remembered: threads and the state
// store belong to single alerts.
func TestBotDigestIsAPlainMessage(t *testing.T) {
	f := newFakeSlack(t)
	st := newMemState()
	n := newNotifier(t, notifytest.Destination(t, botYAML(f)), setup{dir: t.TempDir(), state: st})
	if err := n.SendDigest(context.Background(), notifytest.Digest(3)); err != nil {
		t.Fatal(err)
	}
	calls := f.all()
	if len(calls) != 1 {
		t.Fatalf("%d requests, want one chat.postMessage", len(calls))
	}
	checkAPICall(t, calls[0], "/api/chat.postMessage")
	if calls[0].form.Get("channel") != "#noc" || calls[0].form.Has("thread_ts") || calls[0].form.Has("attachments") {
		t.Errorf("digest form %v: want the configured channel, no thread, no colour bar", calls[0].form)
	}
	notifytest.GoldenJSON(t, "bot-digest-3.json", formJSON(t, calls[0].form))
	if st.len() != 0 {
		t.Errorf("a digest left %d entries in the state store", st.len())
	}
}

// TestDigestLimits: fifty long lines stay within Block Kit's limits, the
// ten past fifty counted, names escaped.
func TestDigestLimits(t *testing.T) {
	d := notifytest.LongDigest(60, strings.Repeat("<&>", 100))
	m := renderDigest(d, notify.DefaultDigest, notifytest.ExternalURL)
	if len(m.blocks) > maxBlocks || utf8.RuneCountInString(m.text) > maxFallbackText {
		t.Errorf("%d blocks, text of %d characters", len(m.blocks), utf8.RuneCountInString(m.text))
	}
	var text []string
	for _, b := range m.blocks {
		if s, ok := b.(*slackapi.SectionBlock); ok {
			if n := utf8.RuneCountInString(s.Text.Text); n > maxSectionText {
				t.Errorf("section of %d characters", n)
			}
			text = append(text, s.Text.Text)
		}
	}
	all := strings.Join(text, "\n")
	if listed := notifytest.Listed(t, d, strings.Split(all, "\n"), func(n int) string {
		return fmt.Sprintf("… and %d more: <%s/api/v1/alerts|alert list>", n, notifytest.ExternalURL)
	}); listed != notify.MaxDigestEntries {
		t.Errorf("%d listed, want %d", listed, notify.MaxDigestEntries)
	}
	if strings.Contains(all, "<&>") {
		t.Errorf("a name's markup reached the message unescaped")
	}
}

func TestDigestKey(t *testing.T) {
	notifytest.DigestKey(t, New, "name: s\ntype: slack\nurl: https://hooks.slack.com/services/T/B/x\n")
}
