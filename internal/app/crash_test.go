package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// daemonEnv makes the test binary act as the nocbridge daemon, so the crash
// test can SIGKILL a real process without building one.
const daemonEnv = "NOCBRIDGE_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(daemonEnv); path != "" {
		os.Exit(runDaemon(path))
	}
	os.Exit(m.Run())
}

func runDaemon(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(Options{ConfigPath: path, Version: "test", Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

func startDaemon(t *testing.T, path, logName string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(filepath.Dir(path), logName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s:\n%s", logName, b)
		}
	})
	return cmd
}

// TestKilledWhileRetryingRedeliversAfterRestart: SIGKILL while a
// notification is in retry, restart, and the same notification (same
// webhook-id) arrives; the alert is not fired a second time.
func TestKilledWhileRetryingRedeliversAfterRestart(t *testing.T) {
	requireICMP(t)
	rcv := newReceiver(t, always(http.StatusServiceUnavailable))
	listen := freePort(t)
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: rcv.srv.URL, Listen: listen}))

	first := startDaemon(t, path, "first.log")
	got := rcv.waitFor(30*time.Second, "two failed attempts", func(ds []delivery) bool { return len(ds) >= 2 })
	id, instance := got[0].WebhookID, got[0].InstanceID
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	rcv.setAnswer(always(http.StatusOK))

	second := startDaemon(t, path, "second.log")
	got = rcv.waitFor(30*time.Second, "delivery after restart", func(ds []delivery) bool {
		return ds[len(ds)-1].Answered == http.StatusOK
	})
	last := got[len(got)-1]
	if last.WebhookID != id || last.InstanceID != instance {
		t.Fatalf("after restart delivered webhook-id %s instance %s; want the original %s %s", last.WebhookID, last.InstanceID, id, instance)
	}

	// Three more probe rounds: the restored alert stays firing and nothing new is sent.
	time.Sleep(3500 * time.Millisecond)
	for i, d := range rcv.deliveries() {
		if d.WebhookID != id {
			t.Errorf("request %d carried webhook-id %s (instance %s, %s): the alert was fired again", i+1, d.WebhookID, d.InstanceID, d.Status)
		}
	}
	var alerts []map[string]any
	getJSON(t, "http://"+listen+"/api/v1/alerts", &alerts)
	if len(alerts) != 1 {
		t.Fatalf("alerts after restart: %+v; want the one restored alert", alerts)
	}

	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop within 30s of SIGTERM")
	}
}
