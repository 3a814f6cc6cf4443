package app

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// TestDeviceDownAndUpOverVeth is the whole pipeline against a real device:
// ICMP across a veth pair into a network namespace, the shipped rule's
// logic with a short for, a signed webhook to a real HTTP receiver.
func TestDeviceDownAndUpOverVeth(t *testing.T) {
	dev := netns.New(t)
	rcv := newReceiver(t, always(http.StatusOK))
	const (
		interval = time.Second
		timeout  = 500 * time.Millisecond
		forDur   = 2 * time.Second
	)
	dir := t.TempDir()
	path := writeConfig(t, dir, testConfig{
		Device: dev.Addr.String(), Interval: interval.String(), Timeout: timeout.String(), ReceiverURL: rcv.srv.URL,
		RuleWhen: "loss == 100", RuleFor: forDur.String(), RuleClear: "loss == 0", ClearFor: "1s",
	})
	a, _ := startApp(t, path)

	// Up first: a healthy device never alerts.
	waitDeviceState(t, a, "up", 10*time.Second)
	if got := rcv.deliveries(); len(got) != 0 {
		t.Fatalf("deliveries while the device was up: %+v", got)
	}

	dev.LinkDown(t)
	down := time.Now()
	budget := forDur + interval + timeout + time.Second
	got := rcv.waitFor(budget+5*time.Second, "the active notification", func(ds []delivery) bool { return len(ds) >= 1 })
	active := got[0]
	if took := active.At.Sub(down); took > budget {
		t.Errorf("active arrived %v after link down; budget for+interval+timeout+1s = %v", took, budget)
	}
	if active.Status != "active" || active.EventID != "NETWORK-DEVICES-1-101" || active.SigErr != nil {
		t.Fatalf("first delivery %+v, want a signed active NETWORK-DEVICES-1-101", active)
	}

	dev.LinkUp(t)
	got = rcv.waitFor(15*time.Second, "the resolved notification", func(ds []delivery) bool { return len(ds) >= 2 })
	resolved := got[1]
	if resolved.Status != "resolved" || resolved.InstanceID != active.InstanceID || resolved.SigErr != nil {
		t.Fatalf("second delivery %+v, want a signed resolved with instanceId %s", resolved, active.InstanceID)
	}
	if resolved.WebhookID == active.WebhookID {
		t.Error("active and resolved share a webhook-id; each notification needs its own")
	}
}

// TestRecoveredWhileStoppedResolvesAtStart: an alert active when nocbridge
// stops, for a device that comes back while it is down, is resolved (same
// instanceId) after the next start, and not fired again.
func TestRecoveredWhileStoppedResolvesAtStart(t *testing.T) {
	dev := netns.New(t)
	rcv := newReceiver(t, always(http.StatusOK))
	path := writeConfig(t, t.TempDir(), testConfig{
		Device: dev.Addr.String(), ReceiverURL: rcv.srv.URL,
		RuleWhen: "loss == 100", RuleFor: "1s", RuleClear: "loss == 0", ClearFor: "1s",
	})
	dev.LinkDown(t)
	_, stop := startApp(t, path)
	active := rcv.waitFor(15*time.Second, "the active notification", func(ds []delivery) bool { return len(ds) >= 1 })[0]
	stop()

	dev.LinkUp(t)
	_, _ = startApp(t, path)
	got := rcv.waitFor(15*time.Second, "the resolve after restart", func(ds []delivery) bool { return len(ds) >= 2 })
	if got[1].Status != "resolved" || got[1].InstanceID != active.InstanceID {
		t.Fatalf("after restart got %+v; want resolved for %s", got[1], active.InstanceID)
	}
	if len(got) != 2 {
		t.Fatalf("deliveries %+v; want exactly active then resolved", got)
	}
}

func waitDeviceState(t *testing.T, a *App, state string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var devs []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			Error string `json:"error"`
		}
		getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/devices", &devs)
		if len(devs) == 1 && devs[0].State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device not %s after %v: %+v", state, d, devs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// upRule fires on a device that answers, so loopback can drive an alert
// without a namespace.
func upRule(c testConfig) testConfig {
	c.Device, c.RuleWhen, c.RuleClear = "127.0.0.1", "loss == 0", "loss == 100"
	return c
}

func TestRetriedUntilDeliveredWithOneWebhookID(t *testing.T) {
	requireICMP(t)
	rcv := newReceiver(t, func(n int) (int, string) {
		if n <= 3 {
			return http.StatusServiceUnavailable, "maintenance"
		}
		return http.StatusOK, ""
	})
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: rcv.srv.URL}))
	_, _ = startApp(t, path)
	got := rcv.waitFor(20*time.Second, "delivery after three 503s", func(ds []delivery) bool {
		return len(ds) >= 4 && ds[len(ds)-1].Answered == 200
	})
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4 (3×503, 1×200): %+v", len(got), got)
	}
	for i, d := range got {
		if d.WebhookID != got[0].WebhookID || d.InstanceID != got[0].InstanceID {
			t.Errorf("attempt %d: webhook-id %s instance %s; want %s %s", i+1, d.WebhookID, d.InstanceID, got[0].WebhookID, got[0].InstanceID)
		}
		if d.SigErr != nil {
			t.Errorf("attempt %d: signature does not verify: %v", i+1, d.SigErr)
		}
		if i > 0 && d.At.Sub(got[i-1].At) < 10*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous one: no backoff", i+1, d.At.Sub(got[i-1].At))
		}
	}
}

func TestRejectedNotificationIsDeadLetteredAndReplayed(t *testing.T) {
	requireICMP(t)
	const reason = `{"error":"field severity must be a string"}`
	rcv := newReceiver(t, func(int) (int, string) { return http.StatusBadRequest, reason })
	listen := freePort(t)
	const token = "replay-token-for-tests"
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: rcv.srv.URL, Listen: listen, Token: token}))
	a, _ := startApp(t, path)

	first := rcv.waitFor(20*time.Second, "the first attempt", func(ds []delivery) bool { return len(ds) >= 1 })[0]
	type deadLetter struct {
		ID          string `json:"id"`
		Destination string `json:"destination"`
		Reason      string `json:"reason"`
	}
	var dls []deadLetter
	deadline := time.Now().Add(10 * time.Second)
	for len(dls) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no dead letter after a 400")
		}
		time.Sleep(50 * time.Millisecond)
		getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/deadletters", &dls)
	}
	if len(dls) != 1 || dls[0].ID != first.WebhookID || dls[0].Destination != "hook" ||
		!strings.Contains(dls[0].Reason, "400") || !strings.Contains(dls[0].Reason, "field severity must be a string") {
		t.Fatalf("dead letters %+v; want one for %s with the status and body as reason", dls, first.WebhookID)
	}
	if n := len(rcv.deliveries()); n != 1 {
		t.Fatalf("a 400 was retried: %d requests", n)
	}

	// Replay through the CLI path (`nocbridge dlq replay --id`), receiver fixed.
	rcv.setAnswer(always(http.StatusNoContent))
	var out bytes.Buffer
	if err := ctl.DeadLetters(context.Background(), path, "replay", first.WebhookID, "", &out); err != nil {
		t.Fatalf("dlq replay: %v (%s)", err, out.String())
	}
	got := rcv.waitFor(10*time.Second, "the replayed delivery", func(ds []delivery) bool { return len(ds) >= 2 })
	if got[1].WebhookID != first.WebhookID || got[1].Answered != http.StatusNoContent {
		t.Fatalf("replayed delivery %+v; want webhook-id %s", got[1], first.WebhookID)
	}
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/deadletters", &dls)
	if len(dls) != 0 {
		t.Fatalf("dead letters after a successful replay: %+v", dls)
	}

	// `dlq list` prints the same JSON the API serves.
	out.Reset()
	if err := ctl.DeadLetters(context.Background(), path, "list", "", "", &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("dlq list: %s", out.String())
	}
	if strings.Contains(out.String(), token) {
		t.Error("token in CLI output")
	}
}

func TestReloadRejectsBadConfigAndKeepsRunning(t *testing.T) {
	requireICMP(t)
	rcv := newReceiver(t, always(http.StatusOK))
	dir := t.TempDir()
	cfg := upRule(testConfig{ReceiverURL: rcv.srv.URL})
	path := writeConfig(t, dir, cfg)
	a, _ := startApp(t, path)
	rcv.waitFor(20*time.Second, "the first alert", func(ds []delivery) bool { return len(ds) >= 1 })

	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "interval: 1s", "intervall: 1s", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	err = a.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nocbridge.yaml:") || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("Reload of a bad config: %v; want FILE:LINE naming the unknown key", err)
	}
	if v := gaugeValue(t, a, "nocbridge_config_last_reload_successful"); v != 0 {
		t.Errorf("reload gauge %v after a failed reload, want 0", v)
	}
	resp, err := http.Get("http://" + a.HTTPAddr() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("not ready after a rejected reload: %v %v", resp, err)
	}
	resp.Body.Close()

	// A valid change: the device is removed, so its alert resolves.
	noDevices := strings.Replace(string(good), "devices:\n  - name: dut\n    address: 127.0.0.1\n    site: Lab\n    role: access\n", "devices: []\n", 1)
	if noDevices == string(good) {
		t.Fatal("test bug: device block not found in config")
	}
	if err := os.WriteFile(path, []byte(noDevices), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(context.Background()); err != nil {
		t.Fatalf("Reload of a valid config: %v", err)
	}
	if v := gaugeValue(t, a, "nocbridge_config_last_reload_successful"); v != 1 {
		t.Errorf("reload gauge %v after a good reload, want 1", v)
	}
	got := rcv.waitFor(10*time.Second, "resolve of the removed device's alert", func(ds []delivery) bool {
		return len(ds) >= 2 && ds[len(ds)-1].Status == "resolved"
	})
	if got[len(got)-1].InstanceID != got[0].InstanceID {
		t.Errorf("resolved %s, want %s", got[len(got)-1].InstanceID, got[0].InstanceID)
	}
}

func gaugeValue(t *testing.T, a *App, name string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestShippedConfigsCheck(t *testing.T) {
	ws, err := Check("../../configs/nocbridge.yaml", "test")
	if err != nil {
		t.Fatalf("configs/nocbridge.yaml: %v", err)
	}
	if len(ws) != 0 {
		t.Errorf("the dev config has warnings: %v", ws)
	}
}

func TestCheckReportsErrorsWithFileAndLine(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"type: webhook", "type: carrier-pigeon", `nocbridge.yaml:14: destination "hook": unknown type "carrier-pigeon"`},
		{"destinations: [hook]", "destinations: [hook, nowhere]", `unknown destination "nowhere"`},
		{"when: loss == 0", "when: loss ==", "test.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: "http://127.0.0.1:1"}))
			for _, f := range []string{path, filepath.Join(filepath.Dir(path), "rules", "test.yaml")} {
				b, _ := os.ReadFile(f)
				if err := os.WriteFile(f, []byte(strings.Replace(string(b), tt.from, tt.to, 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Check(path, "test")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v\nwant an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Error("the signing secret appears in a config error")
			}
		})
	}
}
