package outbox

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/store"
)

// Environment of the child process that TestSIGKILLLosesNothing kills.
const (
	childDirEnv = "NOCBRIDGE_OUTBOX_TEST_CHILD_DIR"
	childURLEnv = "NOCBRIDGE_OUTBOX_TEST_CHILD_URL"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runChild(dir, os.Getenv(childURLEnv)))
	}
	os.Exit(m.Run())
}

// TestSIGKILLLosesNothing kills a process that is enqueueing and delivering
// (some receivers failing) and restarts on its state directory: every
// notification whose Enqueue returned and that the receiver had not
// accepted is delivered after the restart, with its original webhook-id.
func TestSIGKILLLosesNothing(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	accepted := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		// Instances ending in an odd digit are refused, so they are in
		// retry when the kill comes.
		if strings.Contains("13579", r.URL.Query().Get("d")) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		accepted[id] = true
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childURLEnv+"="+srv.URL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// The child prints each webhook-id once its Enqueue returned.
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		acked = append(acked, sc.Text())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("the child acknowledged only %d notifications", len(acked))
	}
	mu.Lock()
	before := len(accepted)
	mu.Unlock()

	f := openFixture(t, dir)
	n := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.run()
	waitFor(t, 10*time.Second, "the restored notifications", func() bool { return f.ob.Pending()["hook"] == 0 })

	after := map[string]bool{}
	for _, c := range n.got() {
		after[c.ID] = true
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for _, id := range acked {
		if !accepted[id] && !after[id] {
			lost++
			t.Errorf("notification %s was acknowledged by Enqueue, never accepted by the receiver, and not delivered after the restart", id)
		}
	}
	again := 0
	for id := range after {
		if accepted[id] {
			again++
		}
	}
	t.Logf("killed after %d acknowledged enqueues; receiver had accepted %d; %d delivered after restart (%d of them again: in flight at the kill); %d lost",
		len(acked), before, len(after), again, lost)
	if len(after) == 0 {
		t.Error("nothing was pending after the kill: the test did not catch the process mid-delivery")
	}
}

func runChild(dir, url string) int {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ob, err := New(ctx, st, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hook := &childWebhook{url: url, client: &http.Client{Timeout: 5 * time.Second}}
	ob.SetDestinations([]Destination{dest("hook", hook)})
	go func() { _ = ob.Run(ctx) }()
	var printMu sync.Mutex
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := p; ; i += 4 {
				e := ev(fmt.Sprintf("inst-%d", i), event.StatusActive, 0)
				if err := ob.Enqueue(ctx, Item{Destination: "hook", Event: e}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				printMu.Lock()
				fmt.Println(e.NotificationID("hook"))
				printMu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	return 0
}

// childWebhook posts the webhook-id to the test's receiver, with the
// instance's last digit in the query so the receiver can refuse some.
type childWebhook struct {
	url    string
	client *http.Client
}

func (c *childWebhook) Send(ctx context.Context, n notify.Notification) error {
	id := n.Event.InstanceID
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"?d="+id[len(id)-1:], nil)
	if err != nil {
		return err
	}
	req.Header.Set("webhook-id", n.ID)
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errUnavailable
	}
	return nil
}
