package console

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/probe"
)

type engineFunc func(ctx context.Context, name string) (probe.Result, error)

func (f engineFunc) Device(ctx context.Context, name string) (probe.Result, error) {
	return f(ctx, name)
}

// The button shows the engine's own verdicts, one line per check, and its
// refusals as errors.
func TestProbeWith(t *testing.T) {
	p := ProbeWith(engineFunc(func(_ context.Context, name string) (probe.Result, error) {
		if name == "busy" {
			return probe.Result{}, probe.ErrBusy
		}
		return probe.Result{Target: name, Device: name,
			Ping:  probe.PingReport{Sent: 3, Received: 0, LossPct: 100, Socket: "raw"},
			SNMP:  probe.SNMPReport{Skipped: "no SNMP profile"},
			Traps: probe.TrapsReport{Checks: []probe.TrapCheck{{What: "v2c trap", Accepted: false, Reason: "community", Detail: "community not accepted"}}},
		}, nil
	}))
	res, err := p.Probe(context.Background(), "sw1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Device != "sw1" || res.At.IsZero() || len(res.Checks) != 3 {
		t.Fatalf("result = %+v, want sw1 with a time and 3 checks", res)
	}
	if c := res.Checks[0]; c.Name != "ping" || c.OK || !strings.Contains(c.Detail, "0/3 answered") {
		t.Errorf("ping check = %+v", c)
	}
	if c := res.Checks[2]; c.Name != "traps" || c.OK || !strings.Contains(c.Detail, "dropped (community)") {
		t.Errorf("traps check = %+v", c)
	}
	if _, err := p.Probe(context.Background(), "busy"); !errors.Is(err, probe.ErrBusy) {
		t.Errorf("busy engine: err = %v, want ErrBusy", err)
	}
}
