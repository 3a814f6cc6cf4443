package icmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

// maxEchoSpacing separates the echoes of one round; it shrinks when
// Count echoes and their Timeout would not fit into the Interval.
const maxEchoSpacing = 100 * time.Millisecond

// resolveTimeout bounds the DNS lookup of a round (and never exceeds the
// target's interval).
const resolveTimeout = 2 * time.Second

type roundState int

const (
	idle      roundState = iota // waiting for the next slot
	resolving                   // waiting for DNS; out of the heap meanwhile
	probing                     // sending echoes and waiting for replies
)

// target is the scheduler's state for one device.
type target struct {
	cfg     Target
	dev     *inventory.Device // what its observations carry
	ip      netip.Addr        // the address when configured as a literal; invalid for DNS names
	phase   time.Duration     // offset of the target's slots from the Unix epoch grid
	spacing time.Duration     // between the echoes of a round

	schedule.Due           // when the scheduler next needs this target
	slot         time.Time // grid slot of the current, or the next, round
	removed      bool      // dropped by SetTargets; late DNS answers are ignored
	extra        bool      // the round in flight was asked for out of the grid (ProbeNow)

	state   roundState
	round   uint64 // identifies the round a DNS answer belongs to
	dst     netip.Addr
	fam     family
	sendAt  time.Time // when echo 0 of the round was due
	echoes  []echo    // sent or attempted this round
	recv    int
	rttSum  time.Duration
	rttMin  time.Duration // of the round's replies; valid when recv > 0
	rttMax  time.Duration
	err     error // first error of the round
	failing bool  // the last round had an error (logged once, not every round)
}

type echo struct {
	seq      uint16
	sentAt   time.Time
	stamp    int64 // sentAt in the payload, checked on the reply
	deadline time.Time
	pending  bool // sent and neither answered nor expired
}

type pendingRef struct {
	t *target
	i int // index into t.echoes
}

type resolution struct {
	t     *target
	round uint64
	addr  netip.Addr
	err   error
}

// scheduler owns all probe state; only Run's goroutine touches it.
type scheduler struct {
	e         *Engine
	report    func(Result)
	ctx       context.Context
	queue     schedule.Queue[*target]
	byName    map[string]*target
	pending   [numFamilies]map[uint16]pendingRef // outstanding echoes by sequence number
	nextSeq   [numFamilies]uint16
	resolved  chan resolution
	resolvers sync.WaitGroup
}

func newScheduler(e *Engine, report func(Result)) *scheduler {
	s := &scheduler{e: e, report: report, byName: map[string]*target{}, resolved: make(chan resolution, 64)}
	for fam := range s.pending {
		s.pending[fam] = map[uint16]pendingRef{}
	}
	return s
}

func (s *scheduler) loop(ctx context.Context, replies <-chan reply) {
	s.ctx = ctx
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.applyTargets(time.Now())
	var armed time.Time // when the timer fires; zero when stopped
	for {
		// Replies already read count before their echoes' deadlines are
		// checked: when the timer and a reply are ready together, or the
		// loop was held up, an answered echo must not expire as lost.
		s.drainReplies(replies)
		s.runDue(time.Now())
		switch {
		case s.queue.Len() == 0:
			timer.Stop()
			armed = time.Time{}
		default:
			if next, _ := s.queue.Next(); !next.Equal(armed) { // resetting costs a runtime wake-up; skip it when nothing moved
				armed = next
				timer.Reset(time.Until(armed))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			armed = time.Time{}
		case r := <-replies:
			s.handleReply(r)
			s.drainReplies(replies)
		case res := <-s.resolved:
			s.handleResolution(res)
		case <-s.e.targets.Changed():
			s.applyTargets(time.Now())
		case names := <-s.e.probeNow:
			s.probeNow(names, time.Now())
		}
	}
}

// drainReplies handles the replies already queued, so that a burst costs
// one pass through the loop.
func (s *scheduler) drainReplies(replies <-chan reply) {
	for {
		select {
		case r := <-replies:
			s.handleReply(r)
		default:
			return
		}
	}
}

// runDue handles every target whose time has come.
func (s *scheduler) runDue(now time.Time) {
	for {
		t, ok := s.queue.Peek()
		if !ok || t.At().After(now) {
			return
		}
		if t.state == probing {
			s.advance(t, now)
		} else {
			s.begin(t, now)
		}
	}
}

func (s *scheduler) begin(t *target, now time.Time) {
	t.round++
	t.echoes, t.recv, t.rttSum, t.rttMin, t.rttMax, t.err = t.echoes[:0], 0, 0, 0, 0, nil
	switch {
	case t.ip.IsValid():
		s.startProbing(t, t.ip, now)
	case t.cfg.Address == "":
		t.err = errNoAddress
		s.finish(t, now)
	default:
		t.state = resolving
		s.queue.Remove(t)
		s.resolve(t)
	}
}

// probeNow starts a round at once for each named target that is between
// rounds; one already probing is left alone, its verdict is near.
func (s *scheduler) probeNow(names []string, now time.Time) {
	for _, name := range names {
		if t, ok := s.byName[name]; ok && t.state == idle {
			t.extra = true
			s.begin(t, now)
		}
	}
}

// resolve looks the target's name up without blocking the scheduler.
func (s *scheduler) resolve(t *target) {
	host, round := t.cfg.Address, t.round
	timeout := min(resolveTimeout, t.cfg.Interval)
	s.resolvers.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		addrs, err := s.e.lookup(ctx, host)
		cancel()
		res := resolution{t: t, round: round, err: err}
		if err == nil {
			res.addr, res.err = pickAddr(addrs)
		}
		select {
		case s.resolved <- res:
		case <-s.ctx.Done():
		}
	})
}

// pickAddr prefers IPv4, the family every management network routes.
func pickAddr(addrs []netip.Addr) (netip.Addr, error) {
	var first netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			return a, nil
		}
		if !first.IsValid() {
			first = a
		}
	}
	if !first.IsValid() {
		return first, errors.New("no addresses")
	}
	return first, nil
}

func (s *scheduler) handleResolution(res resolution) {
	t := res.t
	if t.removed || t.round != res.round || t.state != resolving {
		return
	}
	now := time.Now()
	if res.err != nil {
		t.err = fmt.Errorf("resolve %q: %w", t.cfg.Address, res.err)
		s.finish(t, now)
		return
	}
	s.startProbing(t, res.addr, now)
}

func (s *scheduler) startProbing(t *target, dst netip.Addr, now time.Time) {
	t.dst, t.fam = dst, familyOf(dst)
	if s.e.socks[t.fam] == nil {
		t.err = fmt.Errorf("cannot probe %s: %w", dst, s.e.sockErr[t.fam])
		s.finish(t, now)
		return
	}
	t.state, t.sendAt = probing, now
	s.advance(t, now)
}

// advance sends the echoes that are due, expires those past their deadline,
// and either finishes the round or schedules the target's next look.
func (s *scheduler) advance(t *target, now time.Time) {
	for len(t.echoes) < t.cfg.Count && !t.sendAt.Add(time.Duration(len(t.echoes))*t.spacing).After(now) {
		s.send(t)
	}
	var next time.Time
	if len(t.echoes) < t.cfg.Count {
		next = t.sendAt.Add(time.Duration(len(t.echoes)) * t.spacing)
	}
	for i := range t.echoes {
		ec := &t.echoes[i]
		if !ec.pending {
			continue
		}
		if !ec.deadline.After(now) {
			ec.pending = false
			delete(s.pending[t.fam], ec.seq)
			continue
		}
		if next.IsZero() || ec.deadline.Before(next) {
			next = ec.deadline
		}
	}
	if next.IsZero() { // all sent, none outstanding
		s.finish(t, now)
		return
	}
	s.queue.Set(t, next)
}

func (s *scheduler) send(t *target) {
	i := len(t.echoes)
	t.echoes = append(t.echoes, echo{})
	seq, ok := s.allocSeq(t.fam)
	if !ok {
		s.fail(t, fmt.Errorf("echo to %s not sent: all %d ICMP sequence numbers are in flight", t.dst, len(s.pending[t.fam])))
		return
	}
	sock := s.e.socks[t.fam]
	sentAt := time.Now()
	stamp := sentAt.UnixNano()
	msg, err := s.e.echoRequest(t.fam, seq, stamp)
	if err == nil {
		err = writeEcho(sock.conn, msg, sock.addr(t.dst))
	}
	if err != nil {
		s.fail(t, fmt.Errorf("send echo to %s: %w", t.dst, err))
		return
	}
	t.echoes[i] = echo{seq: seq, sentAt: sentAt, stamp: stamp, deadline: sentAt.Add(t.cfg.Timeout), pending: true}
	s.pending[t.fam][seq] = pendingRef{t: t, i: i}
}

// writeEcho sends one echo, waiting at most sendTimeout for room in a full
// send buffer. A deadline can pass before the write is even tried when the
// process gets no CPU for a while (a loaded host): one more try with a
// fresh deadline tells that apart from a buffer that stays full.
func writeEcho(conn packetConn, msg []byte, dst net.Addr) error {
	var err error
	for range 2 {
		_ = conn.SetWriteDeadline(time.Now().Add(sendTimeout)) // fails only on a closed socket, which WriteTo reports
		if _, err = conn.WriteTo(msg, dst); !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
	return err
}

// fail records a round's first error; the echo concerned counts as lost.
func (s *scheduler) fail(t *target, err error) {
	if t.err == nil {
		t.err = err
	}
}

// allocSeq returns a sequence number with no echo in flight.
func (s *scheduler) allocSeq(fam family) (uint16, bool) {
	inFlight := s.pending[fam]
	if len(inFlight) > 0xffff {
		return 0, false
	}
	for {
		seq := s.nextSeq[fam]
		s.nextSeq[fam]++
		if _, busy := inFlight[seq]; !busy {
			return seq, true
		}
	}
}

func (s *scheduler) handleReply(r reply) {
	ref, ok := s.pending[r.fam][r.seq]
	if !ok {
		return // late (the echo expired), a duplicate, or for an echo of a removed target
	}
	t := ref.t
	ec := &t.echoes[ref.i]
	if r.src != t.dst.WithZone("") || r.stamp != ec.stamp {
		return // someone else's reply that happens to share the sequence number
	}
	ec.pending = false
	delete(s.pending[r.fam], r.seq)
	rtt := max(r.at.Sub(ec.sentAt), 0)
	if t.recv == 0 || rtt < t.rttMin {
		t.rttMin = rtt
	}
	t.rttMax = max(t.rttMax, rtt)
	t.recv++
	t.rttSum += rtt
	s.advance(t, time.Now())
}

// finish reports the round and schedules the next one.
func (s *scheduler) finish(t *target, now time.Time) {
	res := Result{Device: t.cfg.Device, Address: t.cfg.Address, Time: now, Started: now, Sent: len(t.echoes), Recv: t.recv, Loss: 100, Err: t.err, dev: t.dev}
	if len(t.echoes) > 0 {
		res.Started = t.sendAt
	}
	if res.Sent > 0 {
		res.Loss = 100 * float64(res.Sent-res.Recv) / float64(res.Sent)
	}
	if t.recv > 0 {
		res.RTT = t.rttSum / time.Duration(t.recv)
		res.RTTMin, res.RTTMax = t.rttMin, t.rttMax
	}
	s.logTransition(t)
	t.state = idle
	if t.extra {
		// An out-of-round probe leaves the grid alone: the next round
		// is the slot it was waiting for, or the one after if that
		// passed meanwhile.
		t.extra = false
		t.slot = t.slot.Add(-t.cfg.Interval)
	}
	t.slot = t.slot.Add(t.cfg.Interval)
	// A round that overran its next slot (slow DNS, a stopped process)
	// skips to the next slot ahead rather than bursting to catch up; a
	// little lateness is absorbed by starting at once.
	if now.Sub(t.slot) > t.cfg.Interval/4 {
		t.slot = schedule.Slot(now, t.cfg.Interval, t.phase)
	}
	s.queue.Set(t, t.slot)
	s.report(res)
}

// logTransition logs when a target's rounds start failing (Warn) and when
// they work again (Info). Failures in between, whose messages may differ
// only by a port number, are Debug: the device status carries the latest.
func (s *scheduler) logTransition(t *target) {
	// Called every round of every device: attributes are built only when
	// something is logged.
	switch {
	case t.err != nil && !t.failing:
		s.e.log.Warn("ICMP round failed", "device", t.cfg.Device, "address", t.cfg.Address, "err", t.err)
		t.failing = true
	case t.err != nil:
		s.e.log.Debug("ICMP round failed again", "device", t.cfg.Device, "address", t.cfg.Address, "err", t.err)
	case t.failing:
		s.e.log.Info("ICMP round works again", "device", t.cfg.Device, "address", t.cfg.Address)
		t.failing = false
	}
}

// applyTargets reconciles the scheduler with the engine's target list: a
// target whose settings are unchanged keeps its schedule and its round in
// flight.
func (s *scheduler) applyTargets(now time.Time) {
	schedule.Reconciler[Target, *target]{
		Kind: "ICMP", Log: s.e.log,
		Name: func(c Target) string { return c.Device },
		Same: func(t *target, c Target) bool {
			if !sameSchedule(t.cfg, c) {
				return false
			}
			t.cfg, t.dev = c, c.device() // the reload's record of the same device
			return true
		},
		Start: func(c Target) *target {
			t := newTarget(c, now)
			s.queue.Set(t, t.slot)
			return t
		},
		Stop: s.remove,
	}.Apply(s.byName, s.e.targets.Take())
}

func (s *scheduler) remove(t *target) {
	t.removed = true
	for _, ec := range t.echoes {
		if ec.pending {
			delete(s.pending[t.fam], ec.seq)
		}
	}
	s.queue.Remove(t)
}

func withDefaults(cfg Target) Target {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Timeout = min(cfg.Timeout, cfg.Interval) // a round never outlasts its slot
	if cfg.Count <= 0 {
		cfg.Count = DefaultCount
	}
	return cfg
}

func newTarget(cfg Target, now time.Time) *target {
	t := &target{cfg: cfg, dev: cfg.device(), phase: schedule.Phase(cfg.Device, cfg.Interval, phaseQuantum), spacing: echoSpacing(cfg)}
	if ip, err := netip.ParseAddr(cfg.Address); err == nil {
		t.ip = ip.Unmap()
	}
	t.slot = schedule.Slot(now, cfg.Interval, t.phase)
	return t
}

// phaseQuantum groups phases into slots of this width: the devices of one
// slot are probed in one wake-up of the scheduler (and their replies read
// in one wake-up of the reader), which is what keeps 1,000 echoes per second
// cheap. 10ms still spreads a 10s interval over 1,000 slots.
const phaseQuantum = 10 * time.Millisecond

// echoSpacing fits Count echoes plus the last one's Timeout into the
// Interval, so that rounds never overlap.
func echoSpacing(cfg Target) time.Duration {
	if cfg.Count <= 1 {
		return 0
	}
	return min(maxEchoSpacing, (cfg.Interval-cfg.Timeout)/time.Duration(cfg.Count-1))
}

// Round is how the engine sends one round of t: Count echoes Spacing apart,
// each waiting Timeout for its reply (defaults applied). `nocbridge probe`
// sends its round the same way.
func (t Target) Round() (count int, spacing, timeout time.Duration) {
	cfg := withDefaults(t)
	return cfg.Count, echoSpacing(cfg), cfg.Timeout
}
