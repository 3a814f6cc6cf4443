package notifytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// What every destination test builds with; golden files hold these values.
const (
	ExternalURL = "http://127.0.0.1:9720"
	UserAgent   = "nocbridge/1.2.3"
	ConfigFile  = "nocbridge.yaml"
)

// AttemptTime is the fixed "now" of tests that date a request.
var AttemptTime = time.Unix(1763840005, 0)

// DeviceDown is the firing alert the ticketing and alerting types' tests
// send: a core switch unreachable.
func DeviceDown() event.Event {
	return event.Event{
		InstanceID:  "5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f",
		EventID:     "NETWORK-DEVICES-1-101",
		Name:        "Device core-sw1 is unreachable",
		EventName:   "Device unreachable",
		Description: "core-sw1 (10.0.0.1) is unreachable",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Devices",
		Severity:    1,
		Source:      "icmp",
		Timestamp:   time.UnixMilli(1763840000000),
		Status:      event.StatusActive,
		Device:      inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
		Details:     map[string]string{"Loss Percent": "100"},

		IssueCategory: "Availability",
	}
}

// Recovered is ev resolved 90 seconds later, the loss gone.
func Recovered(ev event.Event) event.Event {
	ev.Status = event.StatusResolved
	ev.Timestamp = ev.Timestamp.Add(90 * time.Second)
	ev.Details = map[string]string{"Loss Percent": "0"}
	return ev
}

// DeviceUp is DeviceDown recovered.
func DeviceUp() event.Event { return Recovered(DeviceDown()) }

// Env is what a test builds a destination with: the constants above, files
// relative to dir, and JSON log lines into logs at every level (nil
// discards them).
func Env(dir string, logs io.Writer) notify.Env {
	if logs == nil {
		logs = io.Discard
	}
	return notify.Env{
		ExternalURL: ExternalURL,
		UserAgent:   UserAgent,
		ConfigFile:  ConfigFile,
		BaseDir:     dir,
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// TextEnv is Env with logs captured as text lines (nil discards them).
func TextEnv(dir string, logs *Logs) notify.Env {
	env := Env(dir, nil)
	if logs != nil {
		env.Logger = logs.TextLogger()
	}
	return env
}

// New builds a notifier of concrete type N with factory, closed when the
// test ends; a config error fails the test.
func New[N notify.Notifier](t testing.TB, factory notify.Factory, d config.Destination, env notify.Env) N {
	t.Helper()
	nf, err := factory(d, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c, ok := nf.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	return nf.(N)
}

// Failures collects what failures show people (error text, dead-letter
// reason) across a test, for one NoSecretsIn check at the end.
type Failures []string

// Add records err's text and, for a *notify.Error, its reason. A nil err
// fails the test: the case was meant to fail.
func (f *Failures) Add(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error")
	}
	*f = append(*f, err.Error())
	var ne *notify.Error
	if errors.As(err, &ne) {
		*f = append(*f, ne.Reason)
	}
}

// NoSecretsIn fails the test if a secret appears in any of texts. The
// failure names both by index, never the secret itself.
func NoSecretsIn(t testing.TB, secrets, texts []string) {
	t.Helper()
	for i, s := range secrets {
		for j, txt := range texts {
			if s != "" && strings.Contains(txt, s) {
				t.Fatalf("secret #%d leaked into text #%d (an error, reason or log)", i, j) // deliberately not printing it
			}
		}
	}
}

// ConfigErrors fails the test unless err is config.Errors whose texts
// start with want, in order, and no more.
func ConfigErrors(t testing.TB, err error, want []string) {
	t.Helper()
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v (%T), want config.Errors", err, err)
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(es), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("error %d:\n %s\nwant prefix\n %s", i, es[i], w)
		}
	}
}

// StatusCase is one canned answer of a chat service and how a send that
// gets it must be classified.
type StatusCase struct {
	Name      string
	Reply     Reply
	Retryable bool
	// WantReason is part of the reason; "" means the send succeeds.
	WantReason string
}

// Check fails the test unless err is what c wants: nil for a success, else
// a *notify.Error with c's status and retryability whose reason holds
// WantReason and starts with target (the endpoint, secrets left out).
func (c StatusCase) Check(t testing.TB, err error, target string) {
	t.Helper()
	if c.WantReason == "" {
		if err != nil {
			t.Fatalf("%d must be success: %v", c.Reply.Status, err)
		}
		return
	}
	var ne *notify.Error
	if !errors.As(err, &ne) {
		t.Fatalf("got %v, want *notify.Error", err)
	}
	if ne.Retryable != c.Retryable || !strings.Contains(ne.Reason, c.WantReason) || ne.Status != c.Reply.Status {
		t.Errorf("retryable=%v status=%d reason=%q, want %v %d %q", ne.Retryable, ne.Status, ne.Reason, c.Retryable, c.Reply.Status, c.WantReason)
	}
	if !strings.HasPrefix(ne.Reason, target+": ") {
		t.Errorf("reason %q does not start with the endpoint %q (and only that)", ne.Reason, target)
	}
}

// NetworkFailures runs the subtests every HTTP type shares: a send to a
// port that refuses connections, and one to a server that never answers
// (timeout: 200ms), must fail retryably, neither error nor logs holding a
// secret. send builds a notifier for base (scheme and host) with extraYAML
// appended to its destination, logging into logs, and sends once.
func NetworkFailures(t *testing.T, secrets []string, send func(t *testing.T, base, extraYAML string, logs *Logs) error) {
	t.Run("connection refused", func(t *testing.T) {
		logs := &Logs{}
		err := send(t, RefusedURL(t), "", logs)
		if !notify.Retryable(err) {
			t.Fatalf("got %v, want retryable", err)
		}
		NoSecrets(t, secrets, err, logs.String())
	})
	t.Run("timeout", func(t *testing.T) {
		logs := &Logs{}
		err := send(t, HangingServer(t).URL, "timeout: 200ms\n", logs)
		var ne *notify.Error
		if !errors.As(err, &ne) || !ne.Retryable || !strings.Contains(ne.Reason, "timeout") {
			t.Fatalf("got %v, want a retryable timeout", err)
		}
		NoSecrets(t, secrets, err, logs.String())
	})
}

// Classified is how a failed send must be classified (SPEC 6).
type Classified struct {
	Status     int
	Retryable  bool
	RetryAfter time.Duration
	// Reason is part of the reason.
	Reason string
}

// Check fails the test unless err is a *notify.Error classified as c, and
// returns it for the type's own checks.
func (c Classified) Check(t testing.TB, err error) *notify.Error {
	t.Helper()
	var ne *notify.Error
	if !errors.As(err, &ne) {
		t.Fatalf("got %v, want *notify.Error", err)
	}
	if ne.Status != c.Status || ne.Retryable != c.Retryable || ne.RetryAfter != c.RetryAfter {
		t.Errorf("status=%d retryable=%v retryAfter=%s, want %d %v %s", ne.Status, ne.Retryable, ne.RetryAfter, c.Status, c.Retryable, c.RetryAfter)
	}
	if !strings.Contains(ne.Reason, c.Reason) {
		t.Errorf("reason %q lacks %q", ne.Reason, c.Reason)
	}
	return ne
}

// Unreachable checks n, built for a URL nothing listens on (RefusedURL):
// sending first fails retryably without a status, and sending then with a
// canceled context fails retryably, wrapping context.Canceled. It returns
// the first failure for the type's own checks.
func Unreachable(t testing.TB, n notify.Notifier, first, then notify.Notification) *notify.Error {
	t.Helper()
	err := n.Send(context.Background(), first)
	var ne *notify.Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.Status != 0 {
		t.Fatalf("connection refused: got %v, want retryable without status", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Send(ctx, then); !notify.Retryable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: got %v, want retryable wrapping context.Canceled", err)
	}
	return ne
}

// ConfigCase is a destination config that New must refuse: the type's own
// keys (YAML, after its name and type) and the errors it must give, as
// ConfigErrors checks them.
type ConfigCase struct {
	Name string
	YAML string
	Want []string
}

// ConfigCases runs each case as a subtest: factory builds header + YAML,
// with config file "c.yaml" and files relative to dir, and must fail with
// Want.
func ConfigCases(t *testing.T, factory notify.Factory, header, dir string, cases []ConfigCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			_, err := factory(Destination(t, header+c.YAML), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
			ConfigErrors(t, err, c.Want)
		})
	}
}

// ClosesIdleConnections sends nt through the notifier that build makes for
// a loopback server answering reply, closes the notifier, and fails the
// test unless the server sees the keep-alive connection closed.
func ClosesIdleConnections(t *testing.T, reply Reply, build func(serverURL string) notify.Notifier, nt notify.Notification) {
	t.Helper()
	srv, closed := ConnTrackingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reply.Write(w) }))
	n := build(srv.URL)
	if err := n.Send(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	c, ok := n.(io.Closer)
	if !ok {
		t.Fatalf("%T has no Close", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	WaitClosed(t, closed)
}

// digestNames are the alerts a test digest cycles through; the second's
// name carries markup and mentions, which every chat type must escape.
var digestNames = []string{"Device unreachable", "Interface [Gi1/0/1] *down* @everyone <!channel>", "High CPU utilization", "Power supply failed"}

// Digest is n notifications of different alerts, as the outbox hands a
// chat type's SendDigest: severities 1 to 5 in turn, every fourth a
// resolve, one second apart from DeviceDown's time.
func Digest(n int) notify.Digest {
	var ids []string
	d := notify.Digest{Attempt: 1}
	for i := range n {
		ev := DeviceDown()
		ev.InstanceID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		ev.Name = digestNames[i%len(digestNames)]
		ev.EventName = ev.Name
		ev.Severity = 1 + i%5
		ev.Timestamp = ev.Timestamp.Add(time.Duration(i) * time.Second)
		ev.Device = inventory.Device{Name: fmt.Sprintf("acc-sw%02d", i+1), Address: fmt.Sprintf("10.0.1.%d", i+1), Site: "HQ", Role: "access"}
		if i%4 == 3 {
			ev = Recovered(ev)
		}
		id := ev.NotificationID("noc-chat")
		ids = append(ids, id)
		d.Notifications = append(d.Notifications, notify.Notification{ID: id, Event: ev, Attempt: 1})
	}
	d.ID = notify.DigestID(ids)
	return d
}

// LongDigest is Digest(n) with every alert's name name, to fill a
// size-limited message.
func LongDigest(n int, name string) notify.Digest {
	d := Digest(n)
	for i := range d.Notifications {
		d.Notifications[i].Event.Name = name
		d.Notifications[i].Event.EventName = name
	}
	return d
}

// DigestGoldens sends a 3- and a 60-notification digest with send, which
// checks the request the service received and returns its body (as JSON),
// and compares each with testdata/<prefix>digest-3.json and -60.json.
func DigestGoldens(t *testing.T, prefix string, send func(t *testing.T, d notify.Digest) []byte) {
	t.Helper()
	for _, n := range []int{3, 60} {
		t.Run(fmt.Sprintf("%d notifications", n), func(t *testing.T) {
			GoldenJSON(t, fmt.Sprintf("%sdigest-%d.json", prefix, n), send(t, Digest(n)))
		})
	}
}

// ServerDigestGoldens is DigestGoldens for a type that posts to srv: each
// digest must be one request, as want says.
func ServerDigestGoldens(t *testing.T, prefix string, srv *Server, want Want, send func(context.Context, notify.Digest) error) {
	t.Helper()
	DigestGoldens(t, prefix, func(t *testing.T, d notify.Digest) []byte {
		srv.Reset()
		if err := send(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		r := srv.Last(t)
		want.Check(t, r)
		return r.Body
	})
}

// Want is what a request must be: its method and path, its query when set,
// and each header given, "" for one that must be absent. Authorization's
// value is never printed.
type Want struct {
	Method, Path, RawQuery string
	Header                 map[string]string
}

// Check fails the test unless r is what w wants.
func (w Want) Check(t testing.TB, r Request) {
	t.Helper()
	if r.Method != w.Method || r.Path != w.Path || (w.RawQuery != "" && r.RawQuery != w.RawQuery) {
		t.Errorf("request %s %s, want %s %s", r.Method, r.Path, w.Method, w.Path)
	}
	for k, v := range w.Header {
		switch got := r.Header.Get(k); {
		case got == v:
		case http.CanonicalHeaderKey(k) == "Authorization":
			t.Errorf("Authorization is not as wanted (set: %v, want set: %v)", got != "", v != "")
		default:
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// Listed checks that lines, a digest's list of d, end with more(n) for the
// n alerts not listed, and returns how many are.
func Listed(t testing.TB, d notify.Digest, lines []string, more func(n int) string) int {
	t.Helper()
	listed := len(lines) - 1
	if want := more(len(d.Notifications) - listed); lines[listed] != want {
		t.Errorf("%d listed, then %q; want %q", listed, lines[listed], want)
	}
	return listed
}

// DigestKey checks a chat type's `digest` key: factory builds header (a
// valid destination of the type, without digest) plus each value and must
// give its policy, or refuse it at its line.
func DigestKey(t *testing.T, factory notify.Factory, header string) {
	t.Helper()
	line := strings.Count(header, "\n") + 1
	for _, tc := range []struct {
		yaml string
		want notify.DigestPolicy
		err  string
	}{
		{yaml: "", want: notify.DefaultDigest},
		{yaml: "digest: false\n"},
		{yaml: "digest: {after: 3, window: 30s}\n", want: notify.DigestPolicy{After: 3, Window: 30 * time.Second}},
		{yaml: "digest:\n  after: 0\n", err: fmt.Sprintf("c.yaml:%d: destination ", line+1)},
	} {
		t.Run(strings.TrimSpace(tc.yaml), func(t *testing.T) {
			n, err := factory(Destination(t, header+tc.yaml), notify.Env{ConfigFile: "c.yaml"})
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) || !strings.Contains(err.Error(), "digest: after must be at least 1") {
					t.Fatalf("got %v, want an error at %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := n.(io.Closer); ok {
				defer c.Close()
			}
			dg, ok := n.(notify.Digester)
			if !ok {
				t.Fatalf("%T does not digest", n)
			}
			if got := dg.DigestPolicy(); got != tc.want {
				t.Errorf("policy %+v, want %+v", got, tc.want)
			}
		})
	}
}
