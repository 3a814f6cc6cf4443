package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// GET /api/v1/devices/{name} serves a device's status, its last hour of
// RTT and loss, its SNMP values and poll failures, from a real tracker fed
// as the daemon feeds it; an unknown name is a 404 naming it. Time is the
// synctest bubble's, so the series' minutes are exact (testdata golden).
func TestDeviceDetail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inv := inventory.Of(
			inventory.Device{Name: "core-sw1", Address: "192.0.2.10", Site: "HQ", Role: "core", Labels: map[string]string{"vendor": "cisco"}},
			inventory.Device{Name: "acc-sw7", Address: "192.0.2.17", Site: "HQ"},
		)
		tr, err := devstate.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		core, _ := inv.Device("core-sw1")
		start := time.Now() // 2000-01-01T00:00:00Z in the bubble
		round := func(after time.Duration, sent, recv int, minMs, avgMs, maxMs float64) {
			loss := 100 * float64(sent-recv) / float64(sent)
			tr.Record(observation.Observation{Source: observation.ICMP, Device: core, Time: start.Add(after), Vars: map[string]any{
				"up": recv > 0, "loss": loss, "rtt_ms": avgMs, "rtt_min_ms": minMs, "rtt_max_ms": maxMs, "sent": sent, "recv": recv}})
		}
		round(0, 3, 3, 0.8, 1.1, 1.6)
		round(30*time.Second, 3, 2, 0.9, 1.0, 1.1)
		round(2*time.Minute, 3, 0, 0, 0, 0)
		round(2*time.Minute+30*time.Second, 3, 3, 2.5, 3.0, 4.0)
		tr.Record(observation.Observation{Source: observation.SNMP, Device: core, Time: start.Add(10 * time.Second),
			Vars: map[string]any{"cpu": 17.0, "mem": 52.5, "uptime_s": 864000.0, "uptime_reset": false, "temp_c": 44.0}})
		tr.Record(observation.Observation{Source: observation.SNMP, Device: core, Time: start.Add(70 * time.Second), Reason: "timeout",
			Err: errors.New("SNMP poll of core-sw1 (192.0.2.10 port 161): request timeout (after 1 retries)")})
		time.Sleep(3 * time.Minute)

		d, _, _ := testDeps(testToken, true)
		d.Device = func(name string) (devstate.Detail, bool) { return tr.Detail(inv, name) }
		srv := httptest.NewServer(Handler(d))
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		get := func(path string) (int, []byte, string) {
			resp, err := client.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, body, resp.Header.Get("Content-Type")
		}
		status, body, ctype := get("/api/v1/devices/core-sw1")
		if status != http.StatusOK || ctype != "application/json" {
			t.Errorf("GET core-sw1: %d %s\n%s", status, ctype, body)
		}
		notifytest.GoldenJSON(t, "device-core-sw1.json", body)

		status, body, _ = get("/api/v1/devices/acc-sw7") // in the inventory, never probed
		if status != http.StatusOK {
			t.Errorf("GET acc-sw7: %d\n%s", status, body)
		}
		notifytest.GoldenJSON(t, "device-acc-sw7.json", body)

		status, body, _ = get("/api/v1/devices/no-such-switch")
		if status != http.StatusNotFound || string(body) != `{"error":"device \"no-such-switch\" is not in the inventory"}`+"\n" {
			t.Errorf("GET unknown device: %d %s, want 404 naming it", status, body)
		}
		srv.Close()
	})
}

// With vantage points (a cluster), a device's JSON gains "vantage": each
// node's last result. A device no node reported, and every device when
// there are no vantage points, are served byte for byte as before.
func TestDeviceDetailVantage(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	results := map[string][]vantage.Result{"core-sw1": {
		{Node: "nb1", Up: true, RTTMs: 1.2, At: at, Fresh: true},
		{Node: "nb3", Up: false, Loss: 100, At: at.Add(-time.Minute), Error: "no reply"},
	}}
	detail := func(name string) (devstate.Detail, bool) {
		if name != "core-sw1" && name != "acc-sw7" {
			return devstate.Detail{}, false
		}
		return devstate.Detail{Status: devstate.Status{Name: name, Address: "192.0.2.10", State: "up"}}, true
	}
	get := func(d Deps, path string) (int, string) {
		srv := httptest.NewServer(Handler(d))
		defer srv.Close()
		status, body, _ := do(t, http.MethodGet, srv.URL+path, "", "")
		return status, body
	}
	plain, _, _ := testDeps("", true)
	plain.Device = detail
	withVantage := plain
	withVantage.Vantage = func(device string) []vantage.Result { return results[device] }

	_, before := get(plain, "/api/v1/devices/core-sw1")
	status, body := get(withVantage, "/api/v1/devices/core-sw1")
	if status != http.StatusOK {
		t.Fatalf("GET core-sw1: %d %s", status, body)
	}
	var got struct {
		Name    string           `json:"name"`
		Vantage []vantage.Result `json:"vantage"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "core-sw1" || !reflect.DeepEqual(got.Vantage, results["core-sw1"]) {
		t.Errorf("core-sw1 with vantage points: %s", body)
	}
	if trimmed, _, ok := strings.Cut(body, ",\n  \"vantage\""); !ok || trimmed+"\n}\n" != before {
		t.Errorf("core-sw1 with vantage points is not the device's JSON plus \"vantage\":\n%s\nbefore:\n%s", body, before)
	}
	for _, d := range []Deps{plain, withVantage} {
		_, plainAcc := get(plain, "/api/v1/devices/acc-sw7")
		if _, body := get(d, "/api/v1/devices/acc-sw7"); body != plainAcc || strings.Contains(body, "vantage") {
			t.Errorf("acc-sw7 (no results): %s, want %s", body, plainAcc)
		}
	}
	if status, body := get(withVantage, "/api/v1/devices/nope"); status != http.StatusNotFound {
		t.Errorf("unknown device with vantage points: %d %s", status, body)
	}
}
