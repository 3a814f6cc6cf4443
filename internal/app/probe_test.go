package app

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// POST /api/v1/devices/{name}/probe is wired to the running config: the
// token guards it, an unknown device is a 404, and the answer is the probe.
func TestProbeEndpointWired(t *testing.T) {
	rcv := newReceiver(t, always(http.StatusOK))
	const token = "probe-token-for-tests"
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: rcv.srv.URL, Token: token, Device: "127.0.0.1"}))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Not pinged: the test needs no ICMP privileges, and the probe says so.
	conf := strings.Replace(string(b), "    role: access\n", "    role: access\n    icmp: {disabled: true}\n", 1)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := startApp(t, path)
	post := func(device, auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+a.HTTPAddr()+"/api/v1/devices/"+device+"/probe", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := post("dut", ""); status != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s", status, body)
	}
	if status, body := post("nope", token); status != http.StatusNotFound || !strings.Contains(body, `\"nope\"`) {
		t.Errorf("unknown device: %d %s", status, body)
	}
	status, body := post("dut", token)
	if status != http.StatusOK {
		t.Fatalf("probe: %d %s", status, body)
	}
	var got struct {
		Device   string `json:"device"`
		Answered bool   `json:"answered"`
		Ping     struct {
			Skipped string `json:"skipped"`
		} `json:"ping"`
		Checks []struct{ Name string } `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.Device != "dut" || got.Answered || got.Ping.Skipped == "" || len(got.Checks) < 2 {
		t.Errorf("probe of an unpinged device without SNMP: %s", body)
	}
	if strings.Contains(body, token) {
		t.Error("the token in the answer")
	}
}
