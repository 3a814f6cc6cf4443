package trap

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/lograte"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/snmp/mib"
	"github.com/nocbridge/nocbridge/internal/snmp/usm"
)

// Options configures a Receiver.
type Options struct {
	Listen      string
	Communities []config.Secret      // accepted v1/v2c communities; none accepts no v1/v2c
	Users       []config.SNMPProfile // accepted v3 users (their user and auth/priv settings)
	// EngineID is the local snmpEngineID, needed to acknowledge v3 informs
	// (senders discover it first). Without it v3 informs are refused.
	EngineID []byte
	// UnknownSources is "accept" (default) or "drop": traps from
	// addresses not in the inventory.
	UnknownSources string
	// RateLimitPerSource caps traps/s from one sender address; 0 = none.
	RateLimitPerSource int
	// MaxUnknownSources caps the unknown senders tracked at once (default
	// 1000); UnknownExpire is how long one stays tracked after its last
	// trap (default 24h). See unknownSenders.
	MaxUnknownSources int
	UnknownExpire     time.Duration
	// Relays are trap forwarders: their v1 traps' agent address is
	// believed, as a known device's is; anyone else's is ignored.
	Relays []netip.Prefix
	// Inventory returns the current inventory, where senders are looked
	// up; nil treats every address as known, as a device named by it.
	Inventory func() *inventory.Inventory
	Names     *mib.Table // nil: mib.Default
	// Workers decode in parallel; datagrams of one sender always go to the
	// same worker, so a device's traps keep their order. 0: GOMAXPROCS.
	Workers    int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// ReadBuffer is the socket receive buffer in bytes (default 32 MiB),
	// forced past net.core.rmem_max when running as root.
	ReadBuffer int
}

const (
	defaultReadBuffer = 32 << 20
	queueLen          = 4096
	batchLen          = 64
	maxDatagram       = 65535
	defaultMaxUnknown = 1000
	defaultExpire     = 24 * time.Hour
	logInterval       = 10 * time.Second
	// timeWindow is RFC 3414's 150 s tolerance for authenticated informs.
	timeWindow = 150
)

// Receiver is a bound trap listener.
type Receiver struct {
	conn     *net.UDPConn
	listen   string
	workers  int
	engineID []byte
	names    *mib.Table
	log      *slog.Logger
	logs     *lograte.Limiter
	counts   counters
	policy   atomic.Pointer[policy]
	unknown  unknownSenders

	// The local engine's boots and time (RFC 3414 2.2). Boots is the
	// start time in unix seconds: it grows across restarts without a state
	// file, so an old inform cannot be replayed into a later run.
	boots     uint32
	bootTime  time.Time
	unknownID atomic.Uint32 // usmStatsUnknownEngineIDs
	notInTime atomic.Uint32 // usmStatsNotInTimeWindows

	running atomic.Bool
}

// policy is the reloadable part of Options.
type policy struct {
	communities [][]byte
	users       map[string][]*usm.User
	keys        *keyCache
	dropUnknown bool
	maxUnknown  int
	expire      time.Duration
	relays      []netip.Prefix
	rate        int
	inventory   func() *inventory.Inventory
}

func newPolicy(o Options) (*policy, error) {
	p := &policy{rate: o.RateLimitPerSource, inventory: o.Inventory, keys: &keyCache{}, relays: o.Relays,
		maxUnknown: cmp.Or(o.MaxUnknownSources, defaultMaxUnknown), expire: cmp.Or(o.UnknownExpire, defaultExpire)}
	switch o.UnknownSources {
	case "", "accept":
	case "drop":
		p.dropUnknown = true
	default:
		return nil, fmt.Errorf("traps: unknown_sources %q: want accept or drop", o.UnknownSources)
	}
	if o.RateLimitPerSource < 0 {
		return nil, fmt.Errorf("traps: rate_limit_per_source %d must not be negative", o.RateLimitPerSource)
	}
	if p.maxUnknown < 0 || p.expire < 0 {
		return nil, errors.New("traps: max_unknown_sources and unknown_expire must not be negative")
	}
	for _, c := range o.Communities {
		p.communities = append(p.communities, []byte(c.Reveal()))
	}
	var err error
	if p.users, err = parseUsers(o.Users); err != nil {
		return nil, fmt.Errorf("traps: %w", err)
	}
	return p, nil
}

// device looks a sender up in the inventory; without an inventory every
// address is known, as no device of it.
func (p *policy) device(ip netip.Addr) (*inventory.Device, bool) {
	if p.inventory == nil {
		return nil, true
	}
	return p.inventory().ByAddress(ip)
}

func (p *policy) relay(ip netip.Addr) bool {
	for _, r := range p.relays {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

func (p *policy) communityOK(c []byte) bool {
	ok := 0
	for _, want := range p.communities {
		ok |= subtle.ConstantTimeCompare(c, want)
	}
	return ok == 1
}

// New validates opts and binds the socket, so a port already in use fails
// at start, not later in Run.
func New(opts Options) (*Receiver, error) {
	pol, err := newPolicy(opts)
	if err != nil {
		return nil, err
	}
	if opts.Listen == "" {
		return nil, errors.New("traps: listen address is empty")
	}
	if n := len(opts.EngineID); n != 0 && (n < 5 || n > 32) {
		return nil, fmt.Errorf("traps: engine_id is %d bytes: RFC 3411 wants 5 to 32", n)
	}
	if opts.Names == nil {
		opts.Names = mib.Default
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReadBuffer <= 0 {
		opts.ReadBuffer = defaultReadBuffer
	}
	log := opts.Logger.With("component", "trap", "listen", opts.Listen)
	conn, err := listenUDP(opts.Listen, opts.ReadBuffer, log)
	if err != nil {
		return nil, fmt.Errorf("traps: listening on %s: %w", opts.Listen, err)
	}
	now := time.Now()
	r := &Receiver{
		conn: conn, listen: opts.Listen, workers: opts.Workers,
		engineID: append([]byte(nil), opts.EngineID...),
		names:    opts.Names, log: log, logs: lograte.New(logInterval),
		boots: uint32(min(max(now.Unix(), 1), 1<<31-1)), bootTime: now,
	}
	r.policy.Store(pol)
	if err := register(opts.Registerer, collector{r}); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// Reload swaps communities, users, the unknown-source policy (its limits
// and relays too), the rate limit and the inventory lookup; the unknown
// senders tracked stay tracked. Listen, EngineID and Workers need a new
// Receiver: changing them here is an error.
func (r *Receiver) Reload(opts Options) error {
	if opts.Listen != r.listen || string(opts.EngineID) != string(r.engineID) ||
		(opts.Workers != 0 && opts.Workers != r.workers) {
		return errors.New("traps: listen, engine_id and workers change only with a restart")
	}
	pol, err := newPolicy(opts)
	if err != nil {
		return err
	}
	r.policy.Store(pol)
	return nil
}

// Addr is the bound address.
func (r *Receiver) Addr() net.Addr { return r.conn.LocalAddr() }

// Stats returns the counters behind the metrics.
func (r *Receiver) Stats() Stats { return r.counts.snapshot() }

// Close releases the socket of a Receiver that is not running.
func (r *Receiver) Close() error {
	if r.running.Load() {
		return errors.New("traps: receiver is running: cancel Run's context")
	}
	return r.conn.Close()
}

type datagram struct {
	b    []byte
	from netip.AddrPort
	at   time.Time
}

// Run reads and decodes until ctx ends, emitting every accepted trap as an
// observation from the worker goroutines. It returns nil after a cancel,
// with the socket closed and every worker stopped; datagrams already read
// are still processed.
func (r *Receiver) Run(ctx context.Context, emit observation.Emit) error {
	return r.run(ctx, func(t Trap) { emit(t.Observation()) })
}

// run is Run with the accepted traps as Trap values.
func (r *Receiver) run(ctx context.Context, handle func(Trap)) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("traps: Run called twice")
	}
	stop := context.AfterFunc(ctx, func() { r.conn.Close() })
	defer stop()

	queues := make([]chan datagram, r.workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan datagram, queueLen)
		w := newWorker(r)
		wg.Go(func() {
			for d := range queues[i] {
				if reply := w.handleDatagram(d, handle); reply != nil {
					if _, err := r.conn.WriteToUDPAddrPort(reply, d.from); err != nil && !errors.Is(err, net.ErrClosed) {
						r.logs.Log(r.log, slog.LevelWarn, "reply", "sending SNMP response failed", "source", d.from.Addr(), "err", err)
					}
				}
			}
		})
	}
	err := r.readLoop(ctx, queues)
	r.conn.Close()
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return err
}

// batchReader is ipv4.PacketConn or ipv6.PacketConn: recvmmsg on Linux.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func (r *Receiver) readLoop(ctx context.Context, queues []chan datagram) error {
	var br batchReader
	if ap, ok := r.conn.LocalAddr().(*net.UDPAddr); ok && ap.IP.To4() != nil {
		br = ipv4.NewPacketConn(r.conn)
	} else {
		br = ipv6.NewPacketConn(r.conn)
	}
	msgs := make([]ipv4.Message, batchLen)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
	}
	var limiter sourceLimiter
	for {
		n, err := br.ReadBatch(msgs, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Transient socket errors must not end trap reception.
			r.logs.Log(r.log, slog.LevelError, "read", "reading trap socket failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now()
		pol := r.policy.Load()
		for i := range n {
			m := &msgs[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			from := ua.AddrPort()
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if !limiter.allow(from.Addr(), now, pol.rate) {
				r.counts.dropped[reasonIndex(ReasonRateLimit)].Add(1)
				r.logs.Log(r.log, slog.LevelWarn, "rate:"+from.Addr().String(), "trap rate limit exceeded, dropping",
					"source", from.Addr(), "limit_per_s", pol.rate)
				continue
			}
			b := make([]byte, m.N)
			copy(b, m.Buffers[0][:m.N])
			queues[shard(from.Addr(), len(queues))] <- datagram{b: b, from: from, at: now}
		}
	}
}

// shard keeps one sender on one worker, preserving its order (a linkDown
// must not overtake the linkUp that follows it).
func shard(a netip.Addr, n int) int {
	b := a.As16()
	var h uint32 = 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % uint32(n))
}

// engineTime is the local snmpEngineTime in seconds.
func (r *Receiver) engineTime() uint32 {
	return uint32(time.Since(r.bootTime) / time.Second)
}

// OptionsFrom derives the receiver's settings from the config: the traps
// section, the SNMP profiles traps.users names, and OID names (built-in
// plus traps.mib). The caller adds Inventory, Logger and Registerer.
func OptionsFrom(cfg *config.Config) (Options, error) {
	t := cfg.Traps
	opts := Options{
		Listen: t.Listen, Communities: t.Communities, EngineID: t.EngineIDBytes(),
		UnknownSources: t.UnknownSources, RateLimitPerSource: t.RateLimitPerSource, Names: mib.Default,
		MaxUnknownSources: t.MaxUnknownSources, UnknownExpire: t.UnknownExpire.D(), Relays: t.RelayPrefixes(),
	}
	if len(t.MIB) > 0 {
		byName := make(map[string]string, len(t.MIB))
		for oid, name := range t.MIB { // users write OID → name
			byName[name] = oid
		}
		names, err := mib.New(byName)
		if err != nil {
			return Options{}, fmt.Errorf("traps.mib: %w", err)
		}
		opts.Names = names
	}
	for _, name := range t.Users {
		opts.Users = append(opts.Users, cfg.SNMP.Profiles[name])
	}
	return opts, nil
}
