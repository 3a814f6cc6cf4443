package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

// TestRecoveryRunsOnTheShippedProbeInterval: the benchmark's config leaves
// retry.probe_interval out, and its goals assume the default.
func TestRecoveryRunsOnTheShippedProbeInterval(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(latencyConfig(dir, "rules.yaml", 19162, "http://127.0.0.1:8080")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Destinations[0].Retry.ProbeInterval.D(); got != recoveryProbeInterval {
		t.Fatalf("the daemon probes every %v; the benchmark's goals assume %v", got, recoveryProbeInterval)
	}
}

func TestRecoveryVerdict(t *testing.T) {
	ok := recoveryResult{n: 1000, down: 2 * time.Minute, interval: 5 * time.Second, maxRecovery: 6 * time.Second,
		attempts: 27, probes: 24, seen: 27, delivered: 1000, last: 5200 * time.Millisecond}
	if err := ok.verdict(); err != nil {
		t.Fatalf("a run meeting every goal failed: %v", err)
	}
	for _, tt := range []struct {
		name string
		edit func(*recoveryResult)
		want string
	}{
		{"too many probes", func(r *recoveryResult) { r.probes, r.attempts, r.seen = 26, 29, 29 }, "26 probes"},
		{"too few probes", func(r *recoveryResult) { r.probes, r.attempts, r.seen = 22, 25, 25 }, "22 probes"},
		{"receiver and daemon disagree", func(r *recoveryResult) { r.seen = 40 }, "saw 40 requests"},
		{"late", func(r *recoveryResult) { r.last = 6100 * time.Millisecond }, "later than the 6s goal"},
		{"missing", func(r *recoveryResult) { r.delivered = 999 }, "only 999 of 1000"},
		{"duplicate", func(r *recoveryResult) { r.dups = 1 }, "repeated a webhook-id"},
		{"unexpected", func(r *recoveryResult) { r.unexpected = 2 }, "2 requests were not"},
	} {
		r := ok
		tt.edit(&r)
		if err := r.verdict(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: verdict %v; want a failure saying %q", tt.name, err, tt.want)
		}
	}
	closed := ok
	closed.seen = -1 // refuse mode: the receiver sees nothing
	if err := closed.verdict(); err != nil {
		t.Errorf("refuse mode: %v", err)
	}
}

// TestSwitchedReceiver: down with 503 it answers and counts; down with its
// port closed it refuses connections; back up, on the same address, it
// hands requests on.
func TestSwitchedReceiver(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	r, err := newSwitchedReceiver(next)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	addr := r.addr
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	status := func() int {
		t.Helper()
		resp, err := client.Post("http://"+addr+"/hook", "application/json", strings.NewReader("{}"))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != http.StatusNoContent {
		t.Fatalf("up: %d, want 204", got)
	}
	r.setDown("503")
	if got := status(); got != http.StatusServiceUnavailable || len(r.refusedTimes()) != 1 {
		t.Fatalf("down (503): %d, %d counted; want 503, 1", got, len(r.refusedTimes()))
	}
	if err := r.setUp(); err != nil {
		t.Fatal(err)
	}
	r.setDown("refuse")
	if got := status(); got != 0 {
		t.Fatalf("down (refuse): answered %d; want the connection refused", got)
	}
	if err := r.setUp(); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusNoContent || r.addr != addr {
		t.Fatalf("back up: %d on %s; want 204 on %s", got, r.addr, addr)
	}
}
