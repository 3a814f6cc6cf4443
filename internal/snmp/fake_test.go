package snmp

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"
)

// fakeAgent is an in-memory SNMP agent: a sorted MIB, an optional delay
// per request and an optional error, and a record of what was asked.
type fakeAgent struct {
	mu      sync.Mutex
	mib     map[string]gosnmp.SnmpPDU
	latency time.Duration
	err     error // returned by every request while set

	gets, walks  int
	open         int // connected clients not closed
	inFlight     int
	maxInFlight  int
	starts       []time.Time // when each Connect or request began
	requestsSeen []string    // "get" or "walk <root>", in order
}

func newFakeAgent() *fakeAgent { return &fakeAgent{mib: map[string]gosnmp.SnmpPDU{}} }

func (a *fakeAgent) set(oid string, typ gosnmp.Asn1BER, v any) *fakeAgent {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mib[oid] = gosnmp.SnmpPDU{Name: oid, Type: typ, Value: v}
	return a
}

// deleteTree removes root and everything below it.
func (a *fakeAgent) deleteTree(root string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for oid := range a.mib {
		if oid == root || strings.HasPrefix(oid, root+".") {
			delete(a.mib, oid)
		}
	}
}

func (a *fakeAgent) setErr(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

func (a *fakeAgent) stats() (gets, walks int, seen []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets, a.walks, slices.Clone(a.requestsSeen)
}

func (a *fakeAgent) resetStats() {
	a.mu.Lock()
	a.gets, a.walks, a.requestsSeen = 0, 0, nil
	a.mu.Unlock()
}

// request simulates the network: it counts the request in flight for the
// agent's latency, cut short by ctx like a real timeout.
func (a *fakeAgent) request(ctx context.Context, what string) error {
	a.mu.Lock()
	a.inFlight++
	a.maxInFlight = max(a.maxInFlight, a.inFlight)
	a.starts = append(a.starts, time.Now())
	a.requestsSeen = append(a.requestsSeen, what)
	latency, err := a.latency, a.err
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight--
		a.mu.Unlock()
	}()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (a *fakeAgent) client(Target) (Client, error) { return &fakeClient{a: a}, nil }

type fakeClient struct {
	a         *fakeAgent
	connected bool
}

func (c *fakeClient) Connect(ctx context.Context) error {
	c.a.mu.Lock()
	c.a.open++
	c.a.mu.Unlock()
	c.connected = true
	return nil
}

func (c *fakeClient) Close() error {
	if c.connected {
		c.a.mu.Lock()
		c.a.open--
		c.a.mu.Unlock()
		c.connected = false
	}
	return nil
}

func (c *fakeClient) Get(ctx context.Context, oids []string) ([]gosnmp.SnmpPDU, error) {
	if err := c.a.request(ctx, "get"); err != nil {
		return nil, err
	}
	c.a.mu.Lock()
	defer c.a.mu.Unlock()
	c.a.gets++
	out := make([]gosnmp.SnmpPDU, len(oids))
	for i, oid := range oids {
		p, ok := c.a.mib[oid]
		if !ok {
			p = gosnmp.SnmpPDU{Name: oid, Type: gosnmp.NoSuchObject}
		}
		out[i] = p
	}
	return out, nil
}

func (c *fakeClient) BulkWalk(ctx context.Context, root string) ([]gosnmp.SnmpPDU, error) {
	if err := c.a.request(ctx, "walk "+root); err != nil {
		return nil, err
	}
	c.a.mu.Lock()
	defer c.a.mu.Unlock()
	c.a.walks++
	var out []gosnmp.SnmpPDU
	for oid, p := range c.a.mib {
		if strings.HasPrefix(oid, root+".") {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(x, y gosnmp.SnmpPDU) int { return compareOIDs(x.Name, y.Name) })
	return out, nil
}

// compareOIDs orders OIDs arc by arc, numerically, as an agent does.
func compareOIDs(a, b string) int {
	as, bs := strings.Split(strings.TrimPrefix(a, "."), "."), strings.Split(strings.TrimPrefix(b, "."), ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if d := len(as[i]) - len(bs[i]); d != 0 {
			return d
		}
		if c := strings.Compare(as[i], bs[i]); c != 0 {
			return c
		}
	}
	return len(as) - len(bs)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A typical device of each family.
func ciscoSwitch() *fakeAgent {
	return newFakeAgent().
		set(oidSysUpTime, gosnmp.TimeTicks, uint32(123456)).
		set(oidCiscoCPUTotal5minRev+".1", gosnmp.Gauge32, uint(30)).
		set(oidCiscoCPUTotal5minRev+".2", gosnmp.Gauge32, uint(50)).
		set(oidCiscoMemPoolUsed+".1", gosnmp.Gauge32, uint(300)).
		set(oidCiscoMemPoolFree+".1", gosnmp.Gauge32, uint(700)).
		set(oidCiscoMemPoolUsed+".2", gosnmp.Gauge32, uint(100)).
		set(oidCiscoMemPoolFree+".2", gosnmp.Gauge32, uint(900))
}

func linuxHost() *fakeAgent {
	return newFakeAgent().
		set(oidSysUpTime, gosnmp.TimeTicks, uint32(5000)).
		set(oidHrProcessorLoad+".196608", gosnmp.Integer, 10).
		set(oidHrProcessorLoad+".196609", gosnmp.Integer, 20).
		set(oidHrProcessorLoad+".196610", gosnmp.Integer, 60).
		set(oidSsCPUIdle, gosnmp.Integer, 97).
		// Physical memory (RAM), virtual memory, and a fixed disk.
		set(oidHrStorageType+".1", gosnmp.ObjectIdentifier, oidHrStorageRAM).
		set(oidHrStorageUnits+".1", gosnmp.Integer, 1024).
		set(oidHrStorageSize+".1", gosnmp.Integer, 1000).
		set(oidHrStorageUsed+".1", gosnmp.Integer, 250).
		set(oidHrStorageType+".3", gosnmp.ObjectIdentifier, ".1.3.6.1.2.1.25.2.1.3").
		set(oidHrStorageUnits+".3", gosnmp.Integer, 1024).
		set(oidHrStorageSize+".3", gosnmp.Integer, 3000).
		set(oidHrStorageUsed+".3", gosnmp.Integer, 2900).
		set(oidHrStorageType+".31", gosnmp.ObjectIdentifier, ".1.3.6.1.2.1.25.2.1.4").
		set(oidHrStorageUnits+".31", gosnmp.Integer, 4096).
		set(oidHrStorageSize+".31", gosnmp.Integer, 100).
		set(oidHrStorageUsed+".31", gosnmp.Integer, 99).
		set(oidMemTotalReal, gosnmp.Integer, 1000).
		set(oidMemAvailReal, gosnmp.Integer, 400)
}

func ucdOnly() *fakeAgent {
	return newFakeAgent().
		set(oidSysUpTime, gosnmp.TimeTicks, uint32(77)).
		set(oidSsCPUIdle, gosnmp.Integer, 85).
		set(oidMemTotalReal, gosnmp.Integer, 1000).
		set(oidMemAvailReal, gosnmp.Integer, 400)
}
