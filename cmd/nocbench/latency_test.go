package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
)

// TestLatencyConfigLoads: the benchmark's daemon config passes the real
// loader with the shipped rule file, traps unthrottled and fsync as default.
func TestLatencyConfigLoads(t *testing.T) {
	rules, err := filepath.Abs("../../rules/network-interfaces.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(latencyConfig(dir, rules, 19162, "http://127.0.0.1:8080")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("benchmark config rejected: %v", err)
	}
	switch {
	case cfg.Traps.Listen != "127.0.0.1:19162" || cfg.Traps.RateLimitPerSource != 0:
		t.Errorf("traps %+v; want 127.0.0.1:19162 without a rate limit", cfg.Traps)
	case cfg.Store.Sync != "" && cfg.Store.Sync != "always":
		t.Errorf("store.sync %q; the benchmark must fsync every write as shipped", cfg.Store.Sync)
	case len(cfg.Devices) != 1 || cfg.Devices[0].Address != "127.0.0.1" || !cfg.Devices[0].ICMP.Disabled:
		t.Errorf("devices %+v; want one at 127.0.0.1 with ICMP off", cfg.Devices)
	case len(cfg.Destinations) != 1 || cfg.Destinations[0].Type != "webhook":
		t.Errorf("destinations %+v; want one webhook", cfg.Destinations)
	}
}

func TestLatencyReceiver(t *testing.T) {
	rcv := newLatencyReceiver(3)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	post := func(webhookID string, ev event.Event) {
		t.Helper()
		body, err := json.Marshal(ev.DNAC("http://127.0.0.1:9720"))
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/hook", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if webhookID != "" {
			req.Header.Set("webhook-id", webhookID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("receiver answered %d; want 204", resp.StatusCode)
		}
	}
	alert := func(key string, status event.Status) event.Event {
		ev := event.Sample(latencyEventID, time.Now())
		ev.Key, ev.Status = key, status
		return ev
	}
	sentAt := []time.Time{time.Now(), time.Now(), time.Now()}
	post("msg_2", alert("2", event.StatusActive))
	post("msg_2", alert("2", event.StatusActive))    // a redelivery: duplicate
	post("msg_1", alert("1", event.StatusActive))    // out of order is fine
	post("msg_2b", alert("2", event.StatusActive))   // a second alert for ifIndex 2
	post("msg_7", alert("7", event.StatusActive))    // never sent
	post("msg_1r", alert("1", event.StatusResolved)) // the benchmark never resolves
	post("msg_x", event.Sample("NETWORK-DEVICES-1-101", time.Now()))
	post("", alert("3", event.StatusActive)) // no webhook-id

	if !rcv.wait(t.Context(), 2, time.Second) {
		t.Fatal("wait: two alerts arrived, want true")
	}
	if rcv.wait(t.Context(), 3, 50*time.Millisecond) {
		t.Fatal("wait: ifIndex 3 never arrived, want false after the idle time")
	}
	res := rcv.results(sentAt)
	if len(res.latencies) != 2 || res.dups != 1 || res.unexpected != 5 || res.firstMissing != 3 {
		t.Errorf("results %+v; want 2 latencies, 1 duplicate, 5 unexpected, ifIndex 3 missing", res)
	}
	for _, l := range res.latencies {
		if l < 0 || l > time.Minute {
			t.Errorf("latency %v out of range", l)
		}
	}
}
