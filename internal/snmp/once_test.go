package snmp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
)

func TestPollOnce(t *testing.T) {
	target := Target{Device: "lab-sw", Address: "192.0.2.1", Timeout: 50 * time.Millisecond,
		Profile: config.SNMPProfile{Version: "2c", Community: "public"}}
	full := func() *FakeAgent {
		return NewFakeAgent().
			Set(oidSysName, gosnmp.OctetString, []byte("lab-sw.example.net")).
			Set(oidSysDescr, gosnmp.OctetString, []byte("Cisco IOS Software, C3750E")).
			Set(oidSysUpTime, gosnmp.TimeTicks, uint32(123456)).
			Set(oidCiscoCPUTotal5minRev+".1", gosnmp.Gauge32, uint(30)).
			Set(oidCiscoCPUTotal5minRev+".2", gosnmp.Gauge32, uint(50))
	}
	tests := []struct {
		name    string
		agent   func() *FakeAgent
		wantSys System
		wantCPU any
		wantSrc string
		reason  string
	}{
		{"cisco", full, System{Name: "lab-sw.example.net", Descr: "Cisco IOS Software, C3750E"}, 40.0, SourceCisco, ""},
		{"ucd only, no sysName", func() *FakeAgent {
			return NewFakeAgent().Set(oidSysUpTime, gosnmp.TimeTicks, uint32(5)).Set(oidSsCPUIdle, gosnmp.Integer, 93)
		}, System{}, 7.0, SourceUCD, ""},
		{"silent", func() *FakeAgent { return full().SetLatency(time.Hour) }, System{}, nil, "", ReasonTimeout},
		{"wrong digest", func() *FakeAgent {
			a := full()
			a.SetError(gosnmp.ErrWrongDigest)
			return a
		}, System{}, nil, "", ReasonAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.agent()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			sys, res := PollOnce(ctx, target, a.Client, nil)
			if res.Reason != tc.reason || (tc.reason == "") != (res.Err == nil) {
				t.Fatalf("reason %q err %v, want reason %q", res.Reason, res.Err, tc.reason)
			}
			if sys != tc.wantSys || res.Vars[VarCPU] != tc.wantCPU || res.CPUSource != tc.wantSrc {
				t.Errorf("system %+v cpu %v from %q, want %+v cpu %v from %q", sys, res.Vars[VarCPU], res.CPUSource, tc.wantSys, tc.wantCPU, tc.wantSrc)
			}
			if res.Err != nil && !errors.Is(res.Err, context.DeadlineExceeded) && tc.reason == ReasonTimeout {
				t.Errorf("timeout error %v does not wrap the deadline", res.Err)
			}
			if a.Open() != 0 {
				t.Errorf("%d clients left open", a.Open())
			}
		})
	}
}
