package lognotify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// fixedEvent is the shared fixture without details, in UTC as the golden
// line shows it.
func fixedEvent() event.Event {
	ev := notifytest.DeviceDown()
	ev.Timestamp = ev.Timestamp.UTC()
	ev.Details = nil
	return ev
}

func newFileNotifier(t *testing.T, dir string) *Notifier {
	t.Helper()
	d := notifytest.Destination(t, "name: noc-log\ntype: log\npath: alerts.jsonl\n")
	return notifytest.New[*Notifier](t, New, d, notify.Env{ExternalURL: notifytest.ExternalURL, BaseDir: dir, ConfigFile: filepath.Join(dir, "nocbridge.yaml")})
}

func TestGoldenLine(t *testing.T) {
	dir := t.TempDir()
	n := newFileNotifier(t, dir)
	ev := fixedEvent()
	if err := n.Send(context.Background(), notify.Notification{ID: ev.NotificationID("noc-log"), Event: ev, Attempt: 1}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	notifytest.Golden(t, "active.jsonl", got)
	if bytes.Count(got, []byte("\n")) != 1 || !bytes.HasSuffix(got, []byte("\n")) {
		t.Fatalf("want exactly one newline-terminated line, got %q", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
		t.Fatalf("file mode %v grants more than 0640", perm)
	}
}

func TestAppendsAndStatus(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alerts.jsonl")
	if err := os.WriteFile(path, []byte("existing\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	n := newFileNotifier(t, dir)
	ev := fixedEvent()
	res := ev
	res.Status = event.StatusResolved
	res.Timestamp = ev.Timestamp.Add(time.Minute)
	for _, e := range []event.Event{ev, res} {
		if err := n.Send(context.Background(), notify.Notification{ID: e.NotificationID("noc-log"), Event: e, Attempt: 1}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "existing" {
		t.Fatalf("want the existing line kept and two appended, got %q", lines)
	}
	for i, want := range []event.Event{ev, res} {
		var l struct {
			WebhookID   string         `json:"webhook_id"`
			Destination string         `json:"destination"`
			Status      string         `json:"status"`
			Payload     map[string]any `json:"payload"`
		}
		if err := json.Unmarshal([]byte(lines[i+1]), &l); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		if l.WebhookID != want.NotificationID("noc-log") || l.Destination != "noc-log" || l.Status != string(want.Status) {
			t.Errorf("line %d: got id=%s dest=%s status=%s", i+1, l.WebhookID, l.Destination, l.Status)
		}
		details := l.Payload["details"].(map[string]any)
		if details["Assurance Issue Status"] != string(want.Status) || l.Payload["instanceId"] != want.InstanceID {
			t.Errorf("line %d: payload status/instance = %v/%v", i+1, details["Assurance Issue Status"], l.Payload["instanceId"])
		}
	}
}

func TestConcurrentLinesNeverInterleave(t *testing.T) {
	dir := t.TempDir()
	n := newFileNotifier(t, dir)
	const workers, per = 16, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				ev := fixedEvent()
				ev.Description = strings.Repeat("x", 2000) // long lines make tearing likelier
				ev.Timestamp = ev.Timestamp.Add(time.Duration(w*per+i) * time.Millisecond)
				if err := n.Send(context.Background(), notify.Notification{ID: ev.NotificationID("noc-log"), Event: ev}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("torn line %d: %v", len(seen)+1, err)
		}
		seen[l.WebhookID] = true
	}
	if len(seen) != workers*per {
		t.Fatalf("got %d distinct lines, want %d", len(seen), workers*per)
	}
}

func TestWriteErrorIsRetryable(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		netns.SkipOrFail(t, "no /dev/full on this system: %v", err)
	}
	d := notifytest.Destination(t, "name: full\ntype: log\npath: /dev/full\n")
	nf, err := New(d, notify.Env{BaseDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer nf.(*Notifier).Close()
	err = nf.Send(context.Background(), notify.Notification{ID: "msg_1", Event: fixedEvent()})
	var ne *notify.Error
	if !errors.As(err, &ne) || !ne.Retryable {
		t.Fatalf("write to /dev/full: got %v, want a retryable *notify.Error", err)
	}
	if !strings.Contains(err.Error(), "/dev/full") {
		t.Fatalf("error %q does not name the file", err)
	}
}

func TestStdoutDefault(t *testing.T) {
	d := notifytest.Destination(t, "name: noc-log\ntype: log\n")
	nf, err := New(d, notify.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if n := nf.(*Notifier); n.w != os.Stdout || n.path != "" {
		t.Fatalf("default output is not stdout")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "name: l\ntype: log\ntimeout: 5s\npaht: x.log\n", `nocbridge.yaml:4: destination "l": unknown key "paht" (known: path)`},
		{"missing folder", "name: l\ntype: log\npath: nope/x.log\n", `nocbridge.yaml:3: destination "l": path ` + filepath.Join(dir, "nope/x.log") + `: folder`},
		{"path is a folder", "name: l\ntype: log\npath: .\n", `nocbridge.yaml:3: destination "l": path ` + dir + " is a folder"},
		{"wrong type", "name: l\ntype: log\npath: [a, b]\n", `nocbridge.yaml:3: destination "l": path must be a string, not a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(notifytest.Destination(t, tt.yaml), notify.Env{ConfigFile: "nocbridge.yaml", BaseDir: dir})
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v (%T), want config.Errors", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error\n %s\nwant prefix\n %s", err, tt.want)
			}
		})
	}
}
