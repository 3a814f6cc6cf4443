package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nocbridge/nocbridge/internal/probe"
)

// fakeProber knows core-sw1, and busy-sw, which is always being probed.
type fakeProber struct{ asked []string }

func (f *fakeProber) Device(_ context.Context, name string) (probe.Result, error) {
	f.asked = append(f.asked, name)
	switch name {
	case "core-sw1":
		return probe.Result{Target: name, Device: name, Address: "192.0.2.10", InInventory: true, Answered: true,
			Ping: probe.PingReport{Count: 1, Sent: 1, Received: 1, AvgMs: 0.5},
			SNMP: probe.SNMPReport{Reason: "timeout", Error: "SNMP poll of core-sw1: request timeout", Version: "2c"}}, nil
	case "busy-sw":
		return probe.Result{}, fmt.Errorf("%w (one per device)", probe.ErrBusy)
	}
	return probe.Result{}, fmt.Errorf("%w: %q", probe.ErrUnknownDevice, name)
}

func TestProbeEndpoint(t *testing.T) {
	d, _, _ := testDeps(testToken, true)
	fp := &fakeProber{}
	d.Prober = fp
	srv := httptest.NewServer(Handler(d))
	t.Cleanup(srv.Close)
	bearer := "Bearer " + testToken
	tests := []struct {
		name, device, auth string
		status             int
	}{
		{"no token", "core-sw1", "", http.StatusUnauthorized},
		{"wrong token", "core-sw1", "Bearer nope", http.StatusUnauthorized},
		{"unknown device", "nope", bearer, http.StatusNotFound},
		{"busy", "busy-sw", bearer, http.StatusTooManyRequests},
		{"probed", "core-sw1", bearer, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := do(t, http.MethodPost, srv.URL+"/api/v1/devices/"+tc.device+"/probe", tc.auth, "")
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			if tc.status == http.StatusTooManyRequests && hdr.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			if tc.status != http.StatusOK {
				return
			}
			var got struct {
				Device   string `json:"device"`
				Answered bool   `json:"answered"`
				Ping     struct {
					Sent, Received int
				} `json:"ping"`
				Checks []struct {
					Name   string `json:"name"`
					OK     bool   `json:"ok"`
					Detail string `json:"detail"`
				} `json:"checks"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if got.Device != "core-sw1" || !got.Answered || got.Ping.Received != 1 || len(got.Checks) < 2 ||
				got.Checks[0].Name != "ping" || !got.Checks[0].OK || got.Checks[1].Name != "snmp" || got.Checks[1].OK {
				t.Errorf("body %s: want core-sw1 answered, ping ok, snmp failed", body)
			}
		})
	}
	if len(fp.asked) != 3 {
		t.Errorf("prober asked %v: unauthorized requests must not reach it", fp.asked)
	}
	if status, _, _ := do(t, http.MethodGet, srv.URL+"/api/v1/devices/core-sw1/probe", bearer, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET probe: status %d, want 405", status)
	}
}
