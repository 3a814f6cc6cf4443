package icmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
)

// fakeNet is a network of scripted hosts behind fake sockets, for tests in
// a synctest bubble: replies come back after their (fake) delay.
type fakeNet struct {
	mu        sync.Mutex
	hosts     map[netip.Addr]*fakeHost
	sends     map[netip.Addr][]time.Time // every echo sent, by destination
	openErr   map[fakeKind]error         // sockets that fail to open
	conns     []*fakeConn
	pingID    uint16 // the ID a ping socket's "kernel" writes into replies
	readErrs  int    // ReadFrom calls that fail before reads work
	lookups   map[string]int
	resolvers map[string]func(ctx context.Context, round int) ([]netip.Addr, error)
}

type fakeKind struct {
	fam family
	raw bool
}

// fakeHost scripts how a destination answers.
type fakeHost struct {
	delay    time.Duration   // reply after this long
	delays   []time.Duration // else the n-th echo (from 1) after delays[(n-1) % len]
	drop     bool            // never answer
	dropNth  int             // drop every dropNth echo (2: every second one)
	sendErr  error           // WriteTo fails with this
	wrongID  bool            // answer with another ICMP ID
	badNonce bool            // answer with a corrupted payload nonce
	badStamp bool            // answer with another send time in the payload
	dup      bool            // answer every echo twice
	from     netip.Addr      // answer from this address instead
	echoes   int             // echoes received so far
	errAfter map[int]error   // the n-th echo (from 1) fails to send with this
}

func newFakeNet() *fakeNet {
	return &fakeNet{
		hosts:     map[netip.Addr]*fakeHost{},
		sends:     map[netip.Addr][]time.Time{},
		openErr:   map[fakeKind]error{},
		pingID:    4242,
		lookups:   map[string]int{},
		resolvers: map[string]func(context.Context, int) ([]netip.Addr, error){},
	}
}

func (n *fakeNet) host(addr string, h fakeHost) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hosts[netip.MustParseAddr(addr)] = &h
}

func (n *fakeNet) sendTimes(addr string) []time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Time(nil), n.sends[netip.MustParseAddr(addr)]...)
}

func (n *fakeNet) open(fam family, raw bool, _ uint16, _ *slog.Logger) (packetConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.openErr[fakeKind{fam, raw}]; err != nil {
		return nil, err
	}
	c := &fakeConn{net: n, fam: fam, raw: raw, in: make(chan datagram, 4096), closed: make(chan struct{}), readErrs: n.readErrs}
	n.conns = append(n.conns, c)
	return c, nil
}

func (n *fakeNet) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	n.mu.Lock()
	n.lookups[host]++
	round := n.lookups[host]
	resolve := n.resolvers[host]
	n.mu.Unlock()
	if resolve == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return resolve(ctx, round)
}

func (n *fakeNet) lookupCount(host string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lookups[host]
}

func (n *fakeNet) allClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.conns {
		select {
		case <-c.closed:
		default:
			return false
		}
	}
	return len(n.conns) > 0
}

type datagram struct {
	b    []byte
	from net.Addr
}

type fakeConn struct {
	net       *fakeNet
	fam       family
	raw       bool
	in        chan datagram
	closed    chan struct{}
	closeOnce sync.Once
	readErrs  int // only the reader goroutine touches it
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.readErrs > 0 {
		c.readErrs--
		return 0, nil, errors.New("recvmsg: connection refused")
	}
	select {
	case d := <-c.in:
		return copy(b, d.b), d.from, nil
	case <-c.closed:
		return 0, nil, fmt.Errorf("read fake: %w", net.ErrClosed)
	}
}

func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) WriteTo(b []byte, dst net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	// Each socket kind takes its own address type, as the kernel's do.
	if _, isIP := dst.(*net.IPAddr); isIP != c.raw {
		return 0, fmt.Errorf("fake: %T destination on a raw=%v socket", dst, c.raw)
	}
	to, _ := addrOf(dst)
	if familyOf(to) != c.fam {
		return 0, fmt.Errorf("fake: %s sent on the %s socket", to, c.fam)
	}
	m, err := icmp.ParseMessage(c.fam.proto(), b)
	if err != nil || m.Type != c.fam.echoRequest() {
		return 0, fmt.Errorf("fake: not an echo request: %v", err)
	}
	req := m.Body.(*icmp.Echo)

	n := c.net
	n.mu.Lock()
	n.sends[to] = append(n.sends[to], time.Now())
	h := n.hosts[to]
	if h == nil {
		n.mu.Unlock()
		return len(b), nil // nobody there
	}
	h.echoes++
	nth := h.echoes
	hv := *h
	pingID := n.pingID
	n.mu.Unlock()

	if err := hv.errAfter[nth]; err != nil {
		return 0, err
	}
	if hv.sendErr != nil {
		return 0, hv.sendErr
	}
	if hv.drop || (hv.dropNth > 0 && nth%hv.dropNth == 0) {
		return len(b), nil
	}
	rep := &icmp.Echo{ID: req.ID, Seq: req.Seq, Data: append([]byte(nil), req.Data...)}
	if !c.raw {
		rep.ID = int(pingID) // the kernel owns the ID of ping sockets
	}
	if hv.wrongID {
		rep.ID ^= 0x5a5a
	}
	if hv.badNonce {
		rep.Data[0] ^= 0xff
	}
	if hv.badStamp {
		rep.Data[len(rep.Data)-1] ^= 0xff
	}
	out, err := (&icmp.Message{Type: c.fam.echoReply(), Body: rep}).Marshal(nil)
	if err != nil {
		return 0, err
	}
	src := to
	if hv.from.IsValid() {
		src = hv.from
	}
	var from net.Addr = &net.UDPAddr{IP: src.AsSlice()}
	if c.raw {
		from = &net.IPAddr{IP: src.AsSlice()}
	}
	copies := 1
	if hv.dup {
		copies = 2
	}
	delay := hv.delay
	if len(hv.delays) > 0 {
		delay = hv.delays[(nth-1)%len(hv.delays)]
	}
	for i := range copies {
		time.AfterFunc(delay+time.Duration(i)*time.Millisecond, func() {
			select {
			case c.in <- datagram{b: out, from: from}:
			case <-c.closed:
			}
		})
	}
	return len(b), nil
}

// recorder collects results; Run's goroutine writes, the test reads.
type recorder struct {
	mu      sync.Mutex
	results []Result
}

func (r *recorder) report(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

func (r *recorder) byDevice() map[string][]Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]Result{}
	for _, res := range r.results {
		out[res.Device] = append(out[res.Device], res)
	}
	return out
}

// startFake runs e in the bubble; stop cancels it and checks Run's result.
func startFake(t *testing.T, e *Engine) (rec *recorder, stop func()) {
	t.Helper()
	rec = &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, rec.report) }()
	return rec, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	}
}

// logRecords captures log records for assertions.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Message == msg {
			n++
		}
	}
	return n
}
