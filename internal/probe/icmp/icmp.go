// Package icmp is nocbridge's ping engine: it probes every pinged device of
// the inventory with ICMP echo rounds and emits one observation per round.
//
// # Design
//
// The engine opens ONE socket per address family, whatever the number of
// devices, and runs three kinds of goroutines:
//
//   - one reader per socket, blocked in ReadFrom. It parses each datagram with
//     x/net/icmp, drops what is not one of our echo replies (wrong type, wrong
//     ICMP ID in raw mode, wrong per-engine nonce in the payload) and hands
//     the rest, stamped with the time it arrived, to the scheduler;
//   - one scheduler, which owns all probe state without locks: a min-heap of
//     targets ordered by the next moment each needs attention (start a round,
//     send the next echo of a round, or give up on an echo at its deadline),
//     one timer armed for the heap's head, and a table of outstanding echoes
//     keyed by ICMP sequence number. A reply is matched on sequence number,
//     source address and the send time echoed back in the payload;
//   - a short-lived resolver per round for devices configured by DNS name, so
//     that a slow DNS server never stalls the other devices.
//
// Each target's rounds sit on a grid of slots, phase + k*interval counted
// from the Unix epoch, with the phase derived from a hash of the device name
// and rounded to 10 ms: ten thousand devices at a 10 s interval send about
// ten echoes every 10 ms instead of ten thousand in one burst, each group in
// one wake-up of the scheduler (thread wake-ups, not packets, are what a Go
// prober spends its CPU on), and a device keeps its phase across config
// reloads and restarts.
//
// Raw sockets (privileged, CAP_NET_RAW) see every ICMP message the host
// receives, so the engine picks a random ICMP ID, asks the kernel to pass only
// echo replies carrying that ID (ICMP_FILTER plus a small BPF program) and
// checks the ID again in user space. Ping sockets (unprivileged, SOCK_DGRAM
// with IPPROTO_ICMP, allowed by net.ipv4.ping_group_range) get replies only
// for themselves, but the kernel rewrites the ID to the socket's port, so the
// engine matches on sequence number and source address there. In both modes
// the payload carries a random per-engine nonce and the send time, and a reply
// must echo both back: a stale reply to an earlier echo that reused the same
// sequence number, or another program's reply, never counts.
//
// # Why not pro-bing
//
// pro-bing (and go-ping before it) builds one Pinger per target, each with its
// own socket and three goroutines. At 10,000 devices that is 10,000 sockets
// and 30,000 goroutines, and in raw mode the kernel copies every echo reply on
// the host to every one of those sockets, so each reply is parsed 10,000 times:
// the cost grows with the square of the inventory. The shared-socket design
// here costs one receive per reply: at 10,000 devices and a 10 s interval it
// uses about 3.5% of one core and under 30 MB, less CPU than fping doing the
// same rounds (go run ./cmd/nocbench icmp measures both).
package icmp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

// Mode is icmp.privileged from the config: which kind of socket to use.
type Mode string

const (
	// ModeAuto uses ping sockets where net.ipv4.ping_group_range allows
	// them, else raw sockets when the process has CAP_NET_RAW. The empty
	// Mode means ModeAuto.
	ModeAuto Mode = "auto"
	// ModeRaw uses raw sockets only (CAP_NET_RAW).
	ModeRaw Mode = "true"
	// ModePing uses ping sockets only (SOCK_DGRAM, IPPROTO_ICMP).
	ModePing Mode = "false"
)

// Options configure an Engine.
type Options struct {
	Privileged Mode
	Logger     *slog.Logger // nil: slog.Default()
}

// Target is one device to probe.
type Target struct {
	Device   string        // unique name; also seeds the round's phase
	Address  string        // IPv4 or IPv6 literal, or a DNS name resolved every round
	Interval time.Duration // time between round starts; default 10s
	Timeout  time.Duration // how long each echo waits for its reply; default 1s, at most Interval
	Count    int           // echoes per round; default 1

	dev *inventory.Device // the record observations carry (Targets sets it)
}

// Targets are the inventory's pinged devices, with their settings, but
// those an edge site's collector pings (Device.Remote).
func Targets(inv *inventory.Inventory) []Target {
	var ts []Target
	for _, d := range inv.Devices() {
		if d.ICMP != nil && !d.Remote { // an edge site's devices: its collector pings them
			ts = append(ts, Target{Device: d.Name, Address: d.Address, Interval: d.ICMP.Interval,
				Timeout: d.ICMP.Timeout, Count: d.ICMP.Count, dev: d})
		}
	}
	return ts
}

// sameSchedule reports whether b can take over a's running schedule (all
// but the inventory record, which a reload renews).
func sameSchedule(a, b Target) bool {
	a.dev, b.dev = nil, nil
	return a == b
}

// device is the inventory record of the target, or one made from its name
// and address for a target built by hand.
func (t Target) device() *inventory.Device {
	if t.dev != nil {
		return t.dev
	}
	return &inventory.Device{Name: t.Device, Address: t.Address}
}

// Result is the outcome of one round for one target.
type Result struct {
	Device, Address string
	Time            time.Time     // when the round ended
	Started         time.Time     // when its first echo went out (Time when none did)
	Sent, Recv      int           // echoes sent (or attempted) and answered
	Loss            float64       // percent, 0..100
	RTT             time.Duration // mean RTT of the replies, 0 if none
	RTTMin, RTTMax  time.Duration // fastest and slowest reply, 0 if none
	Err             error         // why the round could not probe (DNS failure, send error…), nil otherwise

	dev *inventory.Device
}

// Observation is the round as rules see it: up, loss (percent), rtt_ms
// (the replies' mean), rtt_min_ms and rtt_max_ms (the fastest and slowest
// reply), sent and recv, at the time of the probe (a device that did not
// answer was down when asked, not a timeout later: `for` counts from
// there). A round that could not probe (Err) reports the device as not
// answering.
func (r Result) Observation() observation.Observation {
	return observation.Observation{Source: observation.ICMP, Device: r.dev, Time: r.Started, Err: r.Err, Vars: map[string]any{
		"up": r.Recv > 0, "loss": r.Loss, "rtt_ms": ms(r.RTT), "rtt_min_ms": ms(r.RTTMin), "rtt_max_ms": ms(r.RTTMax),
		"sent": r.Sent, "recv": r.Recv,
	}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Defaults for the fields a Target leaves zero.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = time.Second
	DefaultCount    = 1
)

// Engine probes a set of targets over shared sockets. Create it with New,
// give it targets with SetTargets and start it with Run.
type Engine struct {
	log        *slog.Logger
	privileged bool
	socks      [numFamilies]*socket // nil where the family has no socket
	sockErr    [numFamilies]error   // why, for the Results of targets in that family
	id         uint16               // ICMP ID of our echoes (raw mode; the kernel rewrites it for ping sockets)
	nonce      [nonceLen]byte       // first bytes of every payload we send
	lookup     lookupFunc

	targets  schedule.Latest[Target]
	probeNow chan []string // out-of-round probes asked for, handed to the scheduler
	ran      atomic.Bool
	closeOne sync.Once
}

// lookupFunc resolves a DNS name; a test may replace net.DefaultResolver.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// New opens the engine's sockets now, so that a permission problem fails the
// start rather than the first round. Run must be called once, even with a
// cancelled context, to release them.
func New(opts Options) (*Engine, error) {
	return newEngine(opts, listen, lookupHost)
}

func newEngine(opts Options, open opener, lookup lookupFunc) (*Engine, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{log: log, lookup: lookup, probeNow: make(chan []string, 64)}
	var idBytes [2]byte
	_, _ = rand.Read(idBytes[:]) // crypto/rand.Read never fails
	_, _ = rand.Read(e.nonce[:])
	e.id = binary.BigEndian.Uint16(idBytes[:])
	if err := e.openSockets(opts.Privileged, open); err != nil {
		return nil, err
	}
	kind := "ping sockets"
	if e.privileged {
		kind = "raw sockets"
	}
	for fam, err := range e.sockErr {
		if err != nil { // fine on hosts without IPv6; each IPv6 target's Result.Err says so
			log.Info("no ICMP socket for this address family", "family", family(fam), "err", err)
		}
	}
	e.log = log.With("sockets", kind)
	return e, nil
}

// ProbeNow asks for an out-of-round probe of the named devices (noise
// control asks for a failing device's parents, so their verdict comes
// before the device's own alert is due). A device already probing is left
// alone; the grid of rounds is kept. It never blocks: asked while 64 other
// requests wait, it is dropped, the devices' own rounds come anyway.
func (e *Engine) ProbeNow(devices ...string) {
	select {
	case e.probeNow <- devices:
	default:
	}
}

// Privileged reports whether the engine uses raw sockets.
func (e *Engine) Privileged() bool { return e.privileged }

// SetTargets replaces the targets. It is safe while Run runs (config
// reload): a target whose Device, Address, Interval, Timeout and Count are
// unchanged keeps its schedule and its round in flight; a changed one starts
// over at its next slot; a removed one stops without a last Result.
func (e *Engine) SetTargets(ts []Target) {
	cp := make([]Target, len(ts))
	for i, t := range ts {
		cp[i] = withDefaults(t)
	}
	e.targets.Set(cp)
}

// Run probes the targets until ctx is done, emitting one observation per
// finished round. It closes the sockets before it returns, and returns nil
// when ctx is cancelled.
func (e *Engine) Run(ctx context.Context, emit observation.Emit) error {
	return e.run(ctx, func(r Result) { emit(r.Observation()) })
}

// run is Run with the rounds as Results, from a single goroutine (report
// should not block for long: replies wait meanwhile).
func (e *Engine) run(ctx context.Context, report func(Result)) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("icmp: Run called twice: the engine's sockets are closed when Run returns")
	}
	defer e.closeSockets()
	if report == nil {
		report = func(Result) {}
	}
	if ctx.Err() != nil {
		return nil
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	replies := make(chan reply, 1024)
	var readers sync.WaitGroup
	for _, s := range e.socks {
		if s != nil {
			readers.Go(func() { e.read(runCtx, s, replies) })
		}
	}
	sched := newScheduler(e, report)
	sched.loop(runCtx, replies)
	stop()
	e.closeSockets() // unblocks the readers
	readers.Wait()
	sched.resolvers.Wait()
	return nil
}

func (e *Engine) closeSockets() {
	e.closeOne.Do(func() {
		for _, s := range e.socks {
			if s != nil {
				if err := s.conn.Close(); err != nil {
					e.log.Warn("closing ICMP socket", "family", s.fam, "err", err)
				}
			}
		}
	})
}

// Payload layout: the engine nonce, then the send time in Unix nanoseconds.
const (
	nonceLen   = 8
	payloadLen = nonceLen + 8
)

// errNoAddress is the Result.Err of a target configured without an address.
var errNoAddress = errors.New("no address configured")
