package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/store"
)

// The app hands a KVState to notifiers as their notify.StateStore.
var _ notify.StateStore = (*store.KVState)(nil)

// childEnv makes the test binary act as a process that writes to a store
// and waits to be killed.
const childEnv = "NOCBRIDGE_STORE_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func open(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestReopenKeepsValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	st, err := s.StateStore(ctx, "dest_slack")
	if err != nil {
		t.Fatal(err)
	}
	// Keys outside JetStream's key alphabet must work too.
	values := map[string]string{
		"5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f": "1763840000.000100",
		"ts/with spaces/and:colons":            "x",
		"gone":                                 "deleted below",
	}
	for k, v := range values {
		if err := st.Put(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	if err := st.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "never-existed"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	alerts, err := s.Bucket(ctx, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	if err := alerts.Put(ctx, "rule.device", []byte("firing")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = open(t, dir)
	defer s.Close()
	st, err = s.StateStore(ctx, "dest_slack")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range values {
		got, ok, err := st.Get(ctx, k)
		switch {
		case err != nil:
			t.Errorf("Get(%q): %v", k, err)
		case k == "gone" && ok:
			t.Errorf("Get(%q) = %q after Delete", k, got)
		case k != "gone" && (!ok || string(got) != want):
			t.Errorf("Get(%q) = %q, %v; want %q", k, got, ok, want)
		}
	}
	all, err := st.All(ctx)
	if err != nil || len(all) != len(values)-1 || string(all["ts/with spaces/and:colons"]) != "x" {
		t.Errorf("All = %q, %v; want every key but the deleted one, decoded", all, err)
	}
	// A Bucket stores keys as they are: the alert state written by earlier
	// releases is found again.
	alerts, err = s.Bucket(ctx, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	if all, err := alerts.All(ctx); err != nil || len(all) != 1 || string(all["rule.device"]) != "firing" {
		t.Errorf("alerts All = %q, %v", all, err)
	}
}

func TestSecondOpenerFails(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	_, err := store.Open(context.Background(), store.Options{Dir: dir, Logger: quiet()})
	if err == nil {
		t.Fatal("a second Open on the same directory succeeded")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use by another nocbridge process") {
		t.Fatalf("error %q does not name the directory and the cause", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir) // the lock goes with Close
	s.Close()
}

func TestInvalidInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, want string
	}{
		{"empty dir", "", "state directory is empty"},
		{"dir is a file", file, "not-a-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Open(context.Background(), store.Options{Dir: tt.dir, Logger: quiet()})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v; want an error containing %q", tt.dir, err, tt.want)
			}
		})
	}

	s := open(t, t.TempDir())
	defer s.Close()
	_, err := s.Bucket(context.Background(), "bad.name")
	if !errors.Is(err, jetstream.ErrInvalidBucketName) || !strings.Contains(err.Error(), `"bad.name"`) {
		t.Fatalf("Bucket(bad.name) = %v; want ErrInvalidBucketName naming the bucket", err)
	}
}

func TestOpenGivesUpWithContext(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet()}); !errors.Is(err, context.Canceled) {
		// The server may win the race and start before ctx is looked at.
		if err != nil {
			t.Fatalf("Open with a cancelled context: %v", err)
		}
	}
	// Whatever happened, the directory becomes usable again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := store.Open(context.Background(), store.Options{Dir: dir, Logger: quiet()})
		if err == nil {
			s.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("directory still unusable after an abandoned Open: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRecoversAfterSIGKILL kills a process right after its writes were
// acknowledged; every acknowledged value is there after reopening.
func TestRecoversAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
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
	// The child prints each key once its Put was acknowledged.
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 50 {
		acked[sc.Text()] = true
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}

	s := open(t, dir) // also proves the kernel dropped the dead process's lock
	defer s.Close()
	st, err := s.StateStore(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	for k := range acked {
		if v, ok, err := st.Get(context.Background(), k); err != nil || !ok || string(v) != "v-"+k {
			t.Errorf("key %s after SIGKILL: %q %v %v", k, v, ok, err)
		}
	}
}

func runChild(dir string) int {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	st, err := s.StateStore(ctx, "crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%05d", i)
		if err := st.Put(ctx, k, []byte("v-"+k)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println(k)
	}
}
