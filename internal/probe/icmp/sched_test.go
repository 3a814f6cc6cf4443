package icmp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

// The tests in this file run the engine over fakeNet in a synctest bubble:
// time is fake and exact, so schedules and RTTs are asserted to the
// nanosecond.

func newFakeEngine(t *testing.T, fn *fakeNet, mode Mode) *Engine {
	t.Helper()
	e, err := newEngine(Options{Privileged: mode, Logger: discard()}, fn.open, fn.lookup)
	if err != nil {
		t.Fatalf("newEngine: %v", err)
	}
	return e
}

func lossOf(sent, recv int) float64 {
	if sent == 0 {
		return 100
	}
	return 100 * float64(sent-recv) / float64(sent)
}

func TestRoundOutcomes(t *testing.T) {
	cases := []struct {
		name, addr string
		host       *fakeHost // nil: nobody at that address
		recv       int
		rtt        time.Duration // mean of the replies
		min, max   time.Duration // fastest and slowest reply; 0: rtt (every reply alike)
		err        error         // the round's Err must wrap it
		rawOnly    bool          // the kernel filters IDs for ping sockets
	}{
		{name: "up", addr: "192.0.2.1", host: &fakeHost{delay: 5 * time.Millisecond}, recv: 3, rtt: 5 * time.Millisecond},
		{name: "down", addr: "192.0.2.2", host: &fakeHost{drop: true}},
		{name: "absent", addr: "192.0.2.3"},
		{name: "enobufs", addr: "192.0.2.4", host: &fakeHost{sendErr: syscall.ENOBUFS}, err: syscall.ENOBUFS},
		{name: "unreachable", addr: "192.0.2.5", host: &fakeHost{sendErr: syscall.EHOSTUNREACH}, err: syscall.EHOSTUNREACH},
		{name: "late", addr: "192.0.2.6", host: &fakeHost{delay: 1500 * time.Millisecond}},
		{name: "just-in-time", addr: "192.0.2.7", host: &fakeHost{delay: 999 * time.Millisecond}, recv: 3, rtt: 999 * time.Millisecond},
		{name: "wrong-id", addr: "192.0.2.8", host: &fakeHost{wrongID: true, delay: time.Millisecond}, rawOnly: true},
		{name: "bad-nonce", addr: "192.0.2.9", host: &fakeHost{badNonce: true, delay: time.Millisecond}},
		{name: "bad-stamp", addr: "192.0.2.14", host: &fakeHost{badStamp: true, delay: time.Millisecond}},
		{name: "duplicates", addr: "192.0.2.10", host: &fakeHost{dup: true, delay: 5 * time.Millisecond}, recv: 3, rtt: 5 * time.Millisecond},
		{name: "spoofed", addr: "192.0.2.11", host: &fakeHost{from: netip.MustParseAddr("192.0.2.99"), delay: time.Millisecond}},
		{name: "lossy", addr: "192.0.2.12", host: &fakeHost{dropNth: 3, delay: 2 * time.Millisecond}, recv: 2, rtt: 2 * time.Millisecond},
		{name: "v6", addr: "2001:db8::1", host: &fakeHost{delay: 2 * time.Millisecond}, recv: 3, rtt: 2 * time.Millisecond},
		{name: "v4-mapped", addr: "::ffff:192.0.2.13", host: &fakeHost{delay: 3 * time.Millisecond}, recv: 3, rtt: 3 * time.Millisecond},
		{name: "jitter", addr: "192.0.2.15", host: &fakeHost{delays: []time.Duration{time.Millisecond, 7 * time.Millisecond, 4 * time.Millisecond}},
			recv: 3, rtt: 4 * time.Millisecond, min: time.Millisecond, max: 7 * time.Millisecond},
	}
	for name, mode := range map[string]Mode{"raw sockets": ModeRaw, "ping sockets": ModePing} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fn := newFakeNet()
				var targets []Target
				for _, c := range cases {
					if c.rawOnly && mode != ModeRaw {
						continue
					}
					if c.host != nil {
						fn.host(netip.MustParseAddr(c.addr).Unmap().String(), *c.host)
					}
					targets = append(targets, Target{Device: c.name, Address: c.addr, Interval: 10 * time.Second, Timeout: time.Second, Count: 3})
				}
				e := newFakeEngine(t, fn, mode)
				if e.Privileged() != (mode == ModeRaw) {
					t.Fatalf("Privileged() = %v in mode %q", e.Privileged(), mode)
				}
				e.SetTargets(targets)
				rec, stop := startFake(t, e)
				time.Sleep(32 * time.Second) // phase < 10s: three whole rounds each
				stop()

				got := rec.byDevice()
				for _, c := range cases {
					if c.rawOnly && mode != ModeRaw {
						continue
					}
					rounds := got[c.name]
					if len(rounds) < 3 {
						t.Errorf("%s: %d rounds in 32s at a 10s interval, want 3", c.name, len(rounds))
					}
					sends := fn.sendTimes(netip.MustParseAddr(c.addr).Unmap().String())
					for i, r := range rounds {
						if r.Address != c.addr || r.Sent != 3 || r.Recv != c.recv || r.Loss != lossOf(3, c.recv) || r.RTT != c.rtt {
							t.Errorf("%s round %d: %+v; want sent 3, recv %d, loss %.2f, rtt %v", c.name, i, r, c.recv, lossOf(3, c.recv), c.rtt)
						}
						wantMin, wantMax := cmp.Or(c.min, c.rtt), cmp.Or(c.max, c.rtt)
						if r.RTTMin != wantMin || r.RTTMax != wantMax {
							t.Errorf("%s round %d: rtt min %v max %v, want %v and %v", c.name, i, r.RTTMin, r.RTTMax, wantMin, wantMax)
						}
						if (r.Err == nil) != (c.err == nil) || (c.err != nil && !errors.Is(r.Err, c.err)) {
							t.Errorf("%s round %d: Err %v, want %v", c.name, i, r.Err, c.err)
						}
						if c.err != nil && !strings.Contains(r.Err.Error(), netip.MustParseAddr(c.addr).Unmap().String()) {
							t.Errorf("%s: Err %q does not name the destination", c.name, r.Err)
						}
						// Unanswered rounds end when the last echo (sent 200ms in) times out.
						if c.recv == 0 && c.err == nil && len(sends) >= 3*(i+1) {
							if end := sends[3*i].Add(1200 * time.Millisecond); !r.Time.Equal(end) {
								t.Errorf("%s round %d ended at %v, want %v", c.name, i, r.Time, end)
							}
						}
					}
				}
			})
		})
	}
}

// TestSendErrorLosesOneEcho: a send that fails mid-round costs that echo
// only, and the next round is clean.
func TestSendErrorLosesOneEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond, errAfter: map[int]error{2: syscall.ENOBUFS}})
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets([]Target{{Device: "a", Address: "192.0.2.1", Interval: time.Second, Timeout: 500 * time.Millisecond, Count: 3}})
		rec, stop := startFake(t, e)
		time.Sleep(2*time.Second + 900*time.Millisecond)
		stop()
		rs := rec.byDevice()["a"]
		if len(rs) < 2 {
			t.Fatalf("%d rounds", len(rs))
		}
		if r := rs[0]; r.Sent != 3 || r.Recv != 2 || r.Loss != lossOf(3, 2) || !errors.Is(r.Err, syscall.ENOBUFS) {
			t.Errorf("round with one failed send: %+v, want 2 of 3 answered and the ENOBUFS", r)
		}
		if r := rs[1]; r.Sent != 3 || r.Recv != 3 || r.Err != nil {
			t.Errorf("next round: %+v, want 3/3 and no error", r)
		}
	})
}

func TestRoundsSpreadOverTheIntervalOnAStableGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		const n, interval = 1000, 10 * time.Second
		var targets []Target
		for i := range n {
			addr := fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250)
			fn.host(addr, fakeHost{delay: time.Millisecond})
			targets = append(targets, Target{Device: fmt.Sprintf("sw%04d", i), Address: addr, Interval: interval, Timeout: time.Second, Count: 1})
		}
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets(targets)
		start := time.Now()
		rec, stop := startFake(t, e)
		time.Sleep(3*interval + 2*time.Second)
		stop()

		if start.UnixNano()%int64(interval) != 0 {
			t.Fatalf("synctest epoch %v is not on the 10s grid; the phase checks below assume it", start)
		}
		var buckets [100]int // by 100ms of phase
		for _, tg := range targets {
			sends := fn.sendTimes(tg.Address)
			phase := schedule.Phase(tg.Device, interval, phaseQuantum)
			if len(sends) < 3 {
				t.Fatalf("%s: %d echoes in 32s", tg.Device, len(sends))
			}
			for k, at := range sends {
				if want := start.Add(phase + time.Duration(k)*interval); !at.Equal(want) {
					t.Fatalf("%s echo %d at %v, want %v (phase %v, every %v)", tg.Device, k, at.Sub(start), want.Sub(start), phase, interval)
				}
			}
			buckets[phase/(interval/100)]++
		}
		for i, b := range buckets {
			if b > 3*n/100 {
				t.Errorf("%d of %d devices start within the same 100ms (at %v): not spread", b, n, time.Duration(i)*interval/100)
			}
		}
		for name, rs := range rec.byDevice() {
			for _, r := range rs {
				if r.Recv != 1 || r.RTT != time.Millisecond {
					t.Fatalf("%s: %+v", name, r)
				}
			}
		}
	})
}

func TestSetTargetsKeepsPhaseAndRoundsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		fn := newFakeNet()
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond})
		fn.host("192.0.2.2", fakeHost{delay: 800 * time.Millisecond})
		fn.host("192.0.2.3", fakeHost{delay: time.Millisecond})
		fn.host("192.0.2.4", fakeHost{delay: time.Millisecond})
		fn.host("192.0.2.5", fakeHost{delay: time.Millisecond})
		steady := Target{Device: "steady", Address: "192.0.2.1", Interval: interval, Timeout: time.Second, Count: 1}
		slow := Target{Device: "slow", Address: "192.0.2.2", Interval: interval, Timeout: time.Second, Count: 1}
		moved := Target{Device: "moved", Address: "192.0.2.3", Interval: interval, Timeout: time.Second, Count: 1}
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets([]Target{steady, slow, moved})
		start := time.Now()
		rec, stop := startFake(t, e)

		// Reload while slow's first echo is in flight: slow goes, moved
		// changes address, added is new, steady is untouched.
		time.Sleep(schedule.Phase("slow", interval, phaseQuantum) + 100*time.Millisecond)
		reload := time.Now()
		movedNow := moved
		movedNow.Address = "192.0.2.4"
		added := Target{Device: "added", Address: "192.0.2.5", Interval: interval, Timeout: time.Second, Count: 1}
		e.SetTargets([]Target{steady, movedNow, added})
		e.SetTargets([]Target{steady, movedNow, added}) // a reload without changes changes nothing
		time.Sleep(40*time.Second - time.Since(start))
		stop()

		got := rec.byDevice()
		if rs := got["slow"]; len(rs) != 0 {
			t.Errorf("a removed target reported its round in flight: %+v", rs)
		}
		if sends := fn.sendTimes("192.0.2.2"); len(sends) != 1 {
			t.Errorf("removed target: %d echoes, want the one before the reload", len(sends))
		}
		onGrid := func(name, addr string, from time.Time) {
			t.Helper()
			phase := schedule.Phase(name, interval, phaseQuantum)
			first := schedule.Slot(from, interval, phase)
			sends := fn.sendTimes(addr)
			if len(sends) == 0 {
				t.Fatalf("%s: no echoes to %s", name, addr)
			}
			for k, at := range sends {
				if want := first.Add(time.Duration(k) * interval); !at.Equal(want) {
					t.Errorf("%s echo %d to %s at %v, want %v", name, k, addr, at.Sub(start), want.Sub(start))
				}
			}
		}
		onGrid("steady", "192.0.2.1", start)
		onGrid("added", "192.0.2.5", reload)
		onGrid("moved", "192.0.2.4", reload)
		if n := len(got["steady"]); n != len(fn.sendTimes("192.0.2.1")) {
			t.Errorf("steady: %d results for %d rounds", n, len(fn.sendTimes("192.0.2.1")))
		}
		for _, r := range got["moved"] {
			if r.Address == "192.0.2.4" && r.Time.Before(reload) {
				t.Errorf("moved: result for the new address before the reload: %+v", r)
			}
		}
	})
}

func TestEchoSpacing(t *testing.T) {
	cases := []struct {
		name              string
		count             int
		interval, timeout time.Duration
		want              []time.Duration // send offsets within a round
	}{
		{"default spacing", 3, 10 * time.Second, time.Second, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}},
		{"squeezed into the interval", 5, time.Second, 800 * time.Millisecond, []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond}},
		{"timeout fills the interval", 3, time.Second, time.Second, []time.Duration{0, 0, 0}},
		{"timeout clamped to the interval", 2, 500 * time.Millisecond, 2 * time.Second, []time.Duration{0, 0}},
		{"single echo", 1, time.Second, 300 * time.Millisecond, []time.Duration{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fn := newFakeNet()
				fn.host("192.0.2.1", fakeHost{drop: true})
				e := newFakeEngine(t, fn, ModeRaw)
				e.SetTargets([]Target{{Device: "d", Address: "192.0.2.1", Interval: c.interval, Timeout: c.timeout, Count: c.count}})
				rec, stop := startFake(t, e)
				time.Sleep(3*c.interval - time.Millisecond)
				stop()
				sends := fn.sendTimes("192.0.2.1")
				rounds := rec.byDevice()["d"]
				if len(rounds) < 2 || len(sends) < 2*c.count {
					t.Fatalf("%d rounds, %d echoes", len(rounds), len(sends))
				}
				for r := range 2 {
					base := sends[r*c.count]
					for i, off := range c.want {
						if got := sends[r*c.count+i].Sub(base); got != off {
							t.Errorf("round %d echo %d at +%v, want +%v", r, i, got, off)
						}
					}
					if rounds[r].Sent != c.count || rounds[r].Loss != 100 {
						t.Errorf("round %d: %+v", r, rounds[r])
					}
					// The round ends before the next one starts.
					if next := sends[(r+1)*c.count]; rounds[r].Time.After(next) {
						t.Errorf("round %d ended at %v, after round %d started at %v", r, rounds[r].Time, r+1, next)
					}
				}
				if gap := sends[c.count].Sub(sends[0]); gap != c.interval {
					t.Errorf("rounds %v apart, want the interval %v", gap, c.interval)
				}
			})
		})
	}
}

func TestDNSNamesResolvedEveryRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.host("192.0.2.10", fakeHost{delay: 3 * time.Millisecond})
		fn.host("192.0.2.20", fakeHost{delay: 3 * time.Millisecond})
		fn.host("192.0.2.21", fakeHost{drop: true})
		fn.host("2001:db8::7", fakeHost{delay: 3 * time.Millisecond})
		fixed := func(addrs ...string) func(context.Context, int) ([]netip.Addr, error) {
			return func(context.Context, int) ([]netip.Addr, error) {
				var out []netip.Addr
				for _, a := range addrs {
					out = append(out, netip.MustParseAddr(a))
				}
				return out, nil
			}
		}
		fn.resolvers["ok.example"] = fixed("2001:db8::5", "192.0.2.10") // IPv4 preferred
		fn.resolvers["v6only.example"] = fixed("2001:db8::7")
		fn.resolvers["empty.example"] = fixed()
		fn.resolvers["slow.example"] = func(ctx context.Context, _ int) ([]netip.Addr, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		fn.resolvers["moving.example"] = func(_ context.Context, round int) ([]netip.Addr, error) {
			if round == 1 {
				return []netip.Addr{netip.MustParseAddr("192.0.2.20")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("192.0.2.21")}, nil
		}
		names := []string{"ok.example", "v6only.example", "empty.example", "slow.example", "moving.example", "nx.example"}
		var targets []Target
		for _, n := range names {
			targets = append(targets, Target{Device: n, Address: n, Interval: 10 * time.Second, Timeout: time.Second, Count: 1})
		}
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets(targets)
		rec, stop := startFake(t, e)
		time.Sleep(33 * time.Second)
		stop()

		got := rec.byDevice()
		for _, n := range names {
			if len(got[n]) < 3 {
				t.Errorf("%s: %d rounds in 33s, want 3: a failing name must not stall its schedule", n, len(got[n]))
			}
			if lookups := fn.lookupCount(n); lookups < len(got[n]) || lookups > len(got[n])+1 {
				t.Errorf("%s: %d lookups for %d rounds, want one per round", n, lookups, len(got[n]))
			}
		}
		for _, n := range []string{"ok.example", "v6only.example"} {
			for _, r := range got[n] {
				if r.Recv != 1 || r.Err != nil || r.RTT != 3*time.Millisecond {
					t.Errorf("%s: %+v", n, r)
				}
			}
		}
		if len(fn.sendTimes("2001:db8::5")) != 0 {
			t.Error("ok.example probed over IPv6 though it has an IPv4 address")
		}
		var dnsErr *net.DNSError
		for _, r := range got["nx.example"] {
			if r.Sent != 0 || r.Loss != 100 || !errors.As(r.Err, &dnsErr) || !strings.Contains(r.Err.Error(), `resolve "nx.example"`) {
				t.Errorf("nx.example: %+v, want 100%% loss and the DNS error", r)
			}
		}
		for _, r := range got["empty.example"] {
			if r.Loss != 100 || r.Err == nil || !strings.Contains(r.Err.Error(), "no addresses") {
				t.Errorf("empty.example: %+v", r)
			}
		}
		for _, r := range got["slow.example"] {
			if r.Loss != 100 || !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("slow.example: %+v, want a lookup timeout", r)
			}
		}
		moving := got["moving.example"]
		if len(moving) < 2 || moving[0].Recv != 1 || moving[1].Recv != 0 || moving[1].Loss != 100 {
			t.Errorf("moving.example did not follow its DNS change: %+v", moving)
		}
	})
}

func TestIPv6TargetWithoutIPv6Socket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.openErr[fakeKind{v6, true}] = syscall.EAFNOSUPPORT
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond})
		fn.host("2001:db8::1", fakeHost{delay: time.Millisecond})
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets([]Target{
			{Device: "v4", Address: "192.0.2.1", Interval: time.Second, Timeout: 500 * time.Millisecond},
			{Device: "v6", Address: "2001:db8::1", Interval: time.Second, Timeout: 500 * time.Millisecond},
		})
		rec, stop := startFake(t, e)
		time.Sleep(2 * time.Second)
		stop()
		got := rec.byDevice()
		if len(got["v4"]) == 0 || got["v4"][0].Recv != 1 {
			t.Errorf("v4 beside a missing IPv6 socket: %+v", got["v4"])
		}
		if len(got["v6"]) == 0 {
			t.Fatal("no result for the IPv6 target")
		}
		for _, r := range got["v6"] {
			if r.Sent != 0 || r.Loss != 100 || !errors.Is(r.Err, syscall.EAFNOSUPPORT) || !strings.Contains(r.Err.Error(), "IPv6") {
				t.Errorf("v6: %+v, want 100%% loss explained by the missing IPv6 socket", r)
			}
		}
	})
}

func TestNewChoosesSockets(t *testing.T) {
	eacces, eperm := syscall.EACCES, syscall.EPERM
	cases := []struct {
		name       string
		mode       Mode
		fail       map[fakeKind]error
		privileged bool
		noV6       bool
		errHas     []string // New fails and its message contains these
		errIs      error
	}{
		{name: "auto prefers ping sockets", mode: ModeAuto},
		{name: "empty means auto", mode: ""},
		{name: "auto falls back to raw", mode: ModeAuto, fail: map[fakeKind]error{{v4, false}: eacces, {v6, false}: eacces}, privileged: true},
		{name: "auto, neither", mode: ModeAuto,
			fail:   map[fakeKind]error{{v4, false}: eacces, {v6, false}: eacces, {v4, true}: eperm, {v6, true}: eperm},
			errHas: []string{"icmp.privileged: auto", "ping socket:", "raw socket:", "net.ipv4.ping_group_range", `sysctl -w net.ipv4.ping_group_range="0 2147483647"`, "CAP_NET_RAW", "setcap cap_net_raw+ep", "AmbientCapabilities=CAP_NET_RAW"},
			errIs:  eacces},
		{name: "false needs ping sockets", mode: ModePing, fail: map[fakeKind]error{{v4, false}: eacces, {v6, false}: eacces},
			errHas: []string{"icmp.privileged: false", "net.ipv4.ping_group_range", "CAP_NET_RAW"}, errIs: eacces},
		{name: "true needs raw sockets", mode: ModeRaw, fail: map[fakeKind]error{{v4, true}: eperm, {v6, true}: eperm},
			errHas: []string{"icmp.privileged: true", "CAP_NET_RAW", "lacks CAP_NET_RAW", "net.ipv4.ping_group_range"}, errIs: eperm},
		{name: "true uses raw", mode: ModeRaw, privileged: true},
		{name: "no IPv6 is fine", mode: ModeAuto, fail: map[fakeKind]error{{v6, false}: syscall.EAFNOSUPPORT}, noV6: true},
		{name: "IPv6 only is enough", mode: ModeAuto, fail: map[fakeKind]error{{v4, false}: syscall.EAFNOSUPPORT}},
		{name: "unknown mode", mode: "yes", errHas: []string{`privileged "yes"`, "auto", "true", "false"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fn := newFakeNet()
			for k, err := range c.fail {
				fn.openErr[k] = err
			}
			e, err := newEngine(Options{Privileged: c.mode, Logger: discard()}, fn.open, fn.lookup)
			if c.errHas != nil {
				if err == nil {
					t.Fatalf("New succeeded (privileged %v)", e.Privileged())
				}
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if c.errIs != nil && !errors.Is(err, c.errIs) {
					t.Errorf("error %v does not wrap %v", err, c.errIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if e.Privileged() != c.privileged {
				t.Errorf("Privileged() = %v, want %v", e.Privileged(), c.privileged)
			}
			if (e.socks[v6] == nil) != c.noV6 || (e.sockErr[v6] != nil) != c.noV6 {
				t.Errorf("IPv6 socket %v, err %v; want missing=%v", e.socks[v6], e.sockErr[v6], c.noV6)
			}
			for _, s := range e.socks {
				if s != nil && s.raw != c.privileged {
					t.Errorf("%s socket raw=%v with Privileged() %v", s.fam, s.raw, c.privileged)
				}
			}
			e.closeSockets()
		})
	}
}

func TestRunStopsAndReleasesSockets(t *testing.T) {
	t.Run("cancelled before start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fn := newFakeNet()
			e := newFakeEngine(t, fn, ModeAuto)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := e.run(ctx, func(Result) {}); err != nil {
				t.Fatalf("Run with a cancelled context = %v, want nil", err)
			}
			if !fn.allClosed() {
				t.Error("sockets left open")
			}
			if err := e.run(context.Background(), func(Result) {}); err == nil {
				t.Error("a second Run succeeded on closed sockets")
			}
		})
	})
	t.Run("cancelled mid-round", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fn := newFakeNet()
			fn.host("192.0.2.1", fakeHost{delay: 500 * time.Millisecond})
			fn.resolvers["hang.example"] = func(ctx context.Context, _ int) ([]netip.Addr, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			e := newFakeEngine(t, fn, ModeRaw)
			e.SetTargets([]Target{
				{Device: "a", Address: "192.0.2.1", Interval: time.Second, Timeout: 900 * time.Millisecond, Count: 3},
				{Device: "b", Address: "hang.example", Interval: time.Second, Timeout: 900 * time.Millisecond},
			})
			_, stop := startFake(t, e)
			time.Sleep(1500 * time.Millisecond)
			stop() // returns only after the readers and resolvers are gone; the bubble checks for leaks
			if !fn.allClosed() {
				t.Error("sockets left open")
			}
		})
	})
}

func TestSocketReadErrorsAreRetriedAndLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.readErrs = 5
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond})
		fn.host("2001:db8::1", fakeHost{delay: time.Millisecond})
		logs := &logRecords{}
		e, err := newEngine(Options{Privileged: ModeRaw, Logger: slog.New(logs)}, fn.open, fn.lookup)
		if err != nil {
			t.Fatal(err)
		}
		e.SetTargets([]Target{
			{Device: "a", Address: "192.0.2.1", Interval: time.Second, Timeout: 500 * time.Millisecond},
			{Device: "b", Address: "2001:db8::1", Interval: time.Second, Timeout: 500 * time.Millisecond},
		})
		rec, stop := startFake(t, e)
		time.Sleep(3 * time.Second)
		stop()
		got := rec.byDevice()
		for _, d := range []string{"a", "b"} {
			if len(got[d]) < 2 {
				t.Errorf("%s: %d rounds in 3s", d, len(got[d]))
			}
			for _, r := range got[d] {
				if r.Recv != 1 {
					t.Errorf("%s: round after read errors: %+v", d, r)
				}
			}
		}
		// Each of the two sockets fails five times: one warning each.
		if n := logs.count("reading ICMP socket failed; retrying"); n != 2 {
			t.Errorf("%d read-failure warnings for 2 sockets failing 5 times each, want 2", n)
		}
		if n := logs.count("reading ICMP socket works again"); n != 2 {
			t.Errorf("%d recovery messages, want 2", n)
		}
	})
}

func TestPersistentFailureLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.host("192.0.2.1", fakeHost{sendErr: syscall.ENOBUFS})
		logs := &logRecords{}
		e, err := newEngine(Options{Privileged: ModeRaw, Logger: slog.New(logs)}, fn.open, fn.lookup)
		if err != nil {
			t.Fatal(err)
		}
		e.SetTargets([]Target{{Device: "a", Address: "192.0.2.1", Interval: time.Second, Timeout: 500 * time.Millisecond}})
		rec, stop := startFake(t, e)
		time.Sleep(5 * time.Second)
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond})
		time.Sleep(5 * time.Second)
		stop()
		rs := rec.byDevice()["a"]
		if len(rs) < 9 || rs[0].Err == nil || rs[len(rs)-1].Err != nil || rs[len(rs)-1].Recv != 1 {
			t.Fatalf("rounds %+v: want failures, then answers", rs)
		}
		if n := logs.count("ICMP round failed"); n != 1 {
			t.Errorf("the same send failure logged %d times over 5 rounds, want once", n)
		}
		if n := logs.count("ICMP round works again"); n != 1 {
			t.Errorf("recovery logged %d times, want once", n)
		}
	})
}

func TestOddTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond})
		fn.host("192.0.2.2", fakeHost{delay: time.Millisecond})
		logs := &logRecords{}
		e, err := newEngine(Options{Privileged: ModeRaw, Logger: slog.New(logs)}, fn.open, fn.lookup)
		if err != nil {
			t.Fatal(err)
		}
		e.SetTargets([]Target{
			{Device: "defaults", Address: "192.0.2.1"},
			{Device: "defaults", Address: "192.0.2.2"},
			{Device: "no-address"},
		})
		rec, stop := startFake(t, e)
		time.Sleep(DefaultInterval + DefaultTimeout)
		stop()
		got := rec.byDevice()
		if rs := got["defaults"]; len(rs) == 0 {
			t.Error("no round for a target with zero interval, timeout and count")
		}
		for _, r := range got["defaults"] {
			if r.Sent != DefaultCount || r.Recv != DefaultCount {
				t.Errorf("zero interval/timeout/count: %+v, want default rounds", r)
			}
		}
		if len(fn.sendTimes("192.0.2.2")) != 0 {
			t.Error("the duplicate device name was probed too")
		}
		if logs.count("duplicate ICMP target ignored; the first one is used") != 1 {
			t.Error("the duplicate device name was not logged")
		}
		if len(got["no-address"]) == 0 {
			t.Error("no round for a target without address")
		}
		for _, r := range got["no-address"] {
			if !errors.Is(r.Err, errNoAddress) || r.Loss != 100 {
				t.Errorf("no address: %+v", r)
			}
		}
	})
}

// Run emits each round as an observation carrying the inventory's record
// of the device; a reload that renews the record (a label changed) keeps
// the device's schedule and hands the next rounds the new record.
func TestRunEmitsObservationsWithTheInventoryRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		fn := newFakeNet()
		fn.host("192.0.2.1", fakeHost{delay: 2 * time.Millisecond})
		icmpSettings := &inventory.ICMP{Interval: interval, Timeout: time.Second, Count: 2}
		first := inventory.Of(
			inventory.Device{Name: "sw1", Address: "192.0.2.1", Site: "HQ", ICMP: icmpSettings},
			inventory.Device{Name: "quiet", Address: "192.0.2.9"}, // not pinged: no ICMP settings
		)
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets(Targets(first))
		var mu sync.Mutex
		var got []observation.Observation
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- e.Run(ctx, func(o observation.Observation) {
				mu.Lock()
				got = append(got, o)
				mu.Unlock()
			})
		}()
		time.Sleep(interval + time.Second)
		second := inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1", Site: "DC", ICMP: icmpSettings})
		e.SetTargets(Targets(second))
		time.Sleep(2 * interval)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if sends := fn.sendTimes("192.0.2.9"); len(sends) != 0 {
			t.Errorf("a device without ICMP settings was pinged %d times", len(sends))
		}
		if len(got) != 3 {
			t.Fatalf("%d observations, want one per round (3)", len(got))
		}
		for i, o := range got {
			want, _ := first.Device("sw1")
			if i > 0 {
				want, _ = second.Device("sw1")
			}
			if o.Source != observation.ICMP || o.Device != want || o.Err != nil {
				t.Errorf("observation %d: source %s device %+v err %v; want icmp from %+v", i, o.Source, o.Device, o.Err, want)
			}
			if o.Vars["up"] != true || o.Vars["loss"] != 0.0 || o.Vars["rtt_ms"] != 2.0 || o.Vars["rtt_min_ms"] != 2.0 || o.Vars["rtt_max_ms"] != 2.0 ||
				o.Vars["sent"] != 2 || o.Vars["recv"] != 2 {
				t.Errorf("observation %d vars %v", i, o.Vars)
			}
			if err := o.CheckVars(); err != nil {
				t.Error(err)
			}
		}
		sends := fn.sendTimes("192.0.2.1")
		for i, o := range got { // the time of the probe, not of its end
			if !o.Time.Equal(sends[2*i]) {
				t.Errorf("observation %d at %v, want its first echo's time %v", i, o.Time, sends[2*i])
			}
		}
		for k := 2; k < len(sends); k += 2 {
			if d := sends[k].Sub(sends[k-2]); d != interval {
				t.Errorf("rounds %v apart across the reload, want the schedule kept (%v)", d, interval)
			}
		}
	})
}

// ProbeNow sends a round at once, out of the grid, and leaves the grid as
// it was; a device already probing is not probed twice.
func TestProbeNowRunsOutOfRoundKeepingTheGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		fn := newFakeNet()
		fn.host("192.0.2.1", fakeHost{delay: time.Millisecond})
		fn.host("192.0.2.2", fakeHost{delay: 900 * time.Millisecond})
		e := newFakeEngine(t, fn, ModeRaw)
		e.SetTargets([]Target{
			{Device: "parent", Address: "192.0.2.1", Interval: interval, Timeout: time.Second, Count: 1},
			{Device: "slow", Address: "192.0.2.2", Interval: interval, Timeout: time.Second, Count: 1},
		})
		start := time.Now()
		rec, stop := startFake(t, e)
		phase := schedule.Phase("parent", interval, phaseQuantum)
		first := schedule.Slot(start, interval, phase)
		// Ask halfway between two of parent's slots.
		time.Sleep(first.Add(interval / 2).Sub(time.Now()))
		asked := time.Now()
		e.ProbeNow("parent", "unknown-device")
		synctest.Wait()
		slowPhase := schedule.Phase("slow", interval, phaseQuantum)
		// And slow while its round is in flight.
		time.Sleep(schedule.Slot(time.Now(), interval, slowPhase).Add(100 * time.Millisecond).Sub(time.Now()))
		e.ProbeNow("slow")
		time.Sleep(3*interval - time.Since(start))
		stop()

		sends := fn.sendTimes("192.0.2.1")
		var grid []time.Time
		extra := 0
		for _, at := range sends {
			switch {
			case at.Equal(asked):
				extra++
			case at.Sub(first)%interval == 0:
				grid = append(grid, at)
			default:
				t.Errorf("parent echo at +%v: neither on its grid nor at the ProbeNow", at.Sub(start))
			}
		}
		var want []time.Time // every slot of the grid in the run, none skipped
		for at := first; at.Before(start.Add(3 * interval)); at = at.Add(interval) {
			want = append(want, at)
		}
		if extra != 1 || !slices.EqualFunc(grid, want, time.Time.Equal) {
			t.Errorf("parent: %d out-of-round echoes, grid echoes at %v; want 1 and every slot %v", extra, grid, want)
		}
		if n := len(rec.byDevice()["parent"]); n != len(sends) {
			t.Errorf("parent: %d results for %d rounds", n, len(sends))
		}
		for _, at := range fn.sendTimes("192.0.2.2") {
			if at.Sub(schedule.Slot(start, interval, slowPhase))%interval != 0 {
				t.Errorf("slow echo at +%v off its grid: a ProbeNow during its round started another", at.Sub(start))
			}
		}
	})
}
