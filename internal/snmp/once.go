package snmp

import (
	"context"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// SNMPv2-MIB system group objects a probe by hand reads besides a poll.
const (
	oidSysDescr = ".1.3.6.1.2.1.1.1.0"
	oidSysName  = ".1.3.6.1.2.1.1.5.0"
)

// System is what a device says of itself.
type System struct {
	Name, Descr string
}

// PollOnce polls t once, as the engine's first poll of it would (sysUpTime,
// the CPU and memory chains of section 4, the custom OIDs), then reads
// sysName and sysDescr with the same client: `nocbridge probe`. A failure
// is in Result.Err and Result.Reason, classified as the engine classifies
// it. newClient nil means gosnmp; log nil discards the poller's own lines.
func PollOnce(ctx context.Context, t Target, newClient func(Target) (Client, error), log *slog.Logger) (System, Result) {
	if newClient == nil {
		newClient = NewClient
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t = withDefaults(t)
	p := newPoller(t, customOIDs(t, log), newClient, log)
	defer p.closeClient()
	res := p.poll(ctx)
	if res.Err != nil || p.client == nil {
		return System{}, res
	}
	vals, err := p.client.Get(ctx, []string{oidSysName, oidSysDescr})
	if err != nil {
		res.Err = fmt.Errorf("SNMP get of sysName and sysDescr from %s (%s port %d): %w", t.Device, t.Address, t.Profile.Port, err)
		res.Reason = classify(err)
		return System{}, res
	}
	return System{Name: text(vals[0]), Descr: text(vals[1])}, res
}

// text is a DisplayString object's value, "" when the agent lacks it.
func text(p gosnmp.SnmpPDU) string {
	b, ok := p.Value.([]byte)
	if !present(p) || !ok {
		return ""
	}
	if !utf8.Valid(b) {
		return hexColon(b)
	}
	return string(b)
}
