package snmp

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"
)

// FakeAgent is an in-memory SNMP agent behind the Client interface: a MIB
// answered in OID order, an optional delay per request (cut short by the
// request's context, as a timeout is) and an optional error, and a record
// of what was asked. The poller's tests use it, and so can any test that
// needs an agent without net-snmp (real net-snmp interop tests use snmpd).
type FakeAgent struct {
	mu      sync.Mutex
	mib     map[string]gosnmp.SnmpPDU
	latency time.Duration
	err     error // returned by every request while set

	gets, walks  int
	open         int // connected clients not closed
	inFlight     int
	maxInFlight  int
	requestsSeen []string // "get" or "walk <root>", in order
}

// NewFakeAgent is an agent with an empty MIB.
func NewFakeAgent() *FakeAgent { return &FakeAgent{mib: map[string]gosnmp.SnmpPDU{}} }

// Set adds or replaces one object.
func (a *FakeAgent) Set(oid string, typ gosnmp.Asn1BER, v any) *FakeAgent {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mib[oid] = gosnmp.SnmpPDU{Name: oid, Type: typ, Value: v}
	return a
}

// DeleteTree removes root and everything below it.
func (a *FakeAgent) DeleteTree(root string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for oid := range a.mib {
		if oid == root || strings.HasPrefix(oid, root+".") {
			delete(a.mib, oid)
		}
	}
}

// SetError makes every request fail with err (nil: answer again).
func (a *FakeAgent) SetError(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

// SetLatency delays every request by d.
func (a *FakeAgent) SetLatency(d time.Duration) *FakeAgent {
	a.mu.Lock()
	a.latency = d
	a.mu.Unlock()
	return a
}

// Requests is what was asked since the last ResetRequests: GETs, walks,
// and each request in order ("get", or "walk <root>").
func (a *FakeAgent) Requests() (gets, walks int, seen []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets, a.walks, slices.Clone(a.requestsSeen)
}

// ResetRequests forgets what was asked.
func (a *FakeAgent) ResetRequests() {
	a.mu.Lock()
	a.gets, a.walks, a.requestsSeen = 0, 0, nil
	a.mu.Unlock()
}

// Open is the number of connected clients not closed.
func (a *FakeAgent) Open() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.open
}

// MaxInFlight is the most requests it served at once.
func (a *FakeAgent) MaxInFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.maxInFlight
}

// request simulates the network: it counts the request in flight for the
// agent's latency, cut short by ctx like a real timeout.
func (a *FakeAgent) request(ctx context.Context, what string) error {
	a.mu.Lock()
	a.inFlight++
	a.maxInFlight = max(a.maxInFlight, a.inFlight)
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

// Client is a Client of this agent: pass it as Options.Client.
func (a *FakeAgent) Client(Target) (Client, error) { return &fakeClient{a: a}, nil }

type fakeClient struct {
	a         *FakeAgent
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
