package icmp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// These tests use real sockets: loopback, and devices in network namespaces
// the tests create. Nothing else is ever probed.

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newRealEngine opens real sockets or skips (fails under CI) without
// permission.
func newRealEngine(t *testing.T, mode Mode) *Engine {
	t.Helper()
	e, err := New(Options{Privileged: mode, Logger: discard()})
	if err != nil {
		netns.SkipOrFail(t, "needs ICMP sockets (root, CAP_NET_RAW or net.ipv4.ping_group_range): %v", err)
	}
	return e
}

// runEngine runs e in the background and returns its results; the engine
// stops, and its Run is checked, when the test ends.
func runEngine(t *testing.T, e *Engine) <-chan Result {
	t.Helper()
	results := make(chan Result, 1<<16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, func(r Result) { results <- r }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	})
	return results
}

// nextResult waits for the next result of device.
func nextResult(t *testing.T, results <-chan Result, device string, within time.Duration) Result {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case r := <-results:
			if r.Device == device {
				return r
			}
		case <-deadline:
			t.Fatalf("no result for %s within %v", device, within)
		}
	}
}

func TestLoopbackAnswers(t *testing.T) {
	t.Parallel()
	e := newRealEngine(t, ModeAuto)
	targets := []Target{
		{Device: "lo-a", Address: "127.0.0.1", Interval: 400 * time.Millisecond, Timeout: 400 * time.Millisecond, Count: 2},
		{Device: "lo-b", Address: "127.0.0.2", Interval: 400 * time.Millisecond, Timeout: 400 * time.Millisecond, Count: 1},
		{Device: "lo-name", Address: "localhost", Interval: 400 * time.Millisecond, Timeout: 400 * time.Millisecond, Count: 1},
	}
	if e.socks[v6] != nil && hasIPv6Loopback() {
		targets = append(targets, Target{Device: "lo6", Address: "::1", Interval: 400 * time.Millisecond, Timeout: 400 * time.Millisecond, Count: 2})
	}
	e.SetTargets(targets)
	got := collect(t, runEngine(t, e), len(targets), 2, 5*time.Second)
	for _, tg := range targets {
		for _, r := range got[tg.Device] {
			if r.Err != nil || r.Sent != tg.Count || r.Recv != tg.Count || r.Loss != 0 {
				t.Fatalf("%s: %+v, want %d/%d answered without error", tg.Device, r, tg.Count, tg.Count)
			}
			if r.RTT <= 0 || r.RTT > 100*time.Millisecond {
				t.Errorf("%s: RTT %v on loopback", tg.Device, r.RTT)
			}
		}
	}
}

// collect gathers the first results of each device, rounds of them, from
// devices devices.
func collect(t *testing.T, results <-chan Result, devices, rounds int, within time.Duration) map[string][]Result {
	t.Helper()
	got := map[string][]Result{}
	complete := 0
	deadline := time.After(within)
	for complete < devices {
		select {
		case r := <-results:
			if len(got[r.Device]) < rounds {
				got[r.Device] = append(got[r.Device], r)
				if len(got[r.Device]) == rounds {
					complete++
				}
			}
		case <-deadline:
			t.Fatalf("after %v, %d of %d devices have %d rounds: %v", within, complete, devices, rounds, got)
		}
	}
	return got
}

func hasIPv6Loopback() bool {
	b, err := os.ReadFile("/proc/net/if_inet6")
	return err == nil && strings.Contains(string(b), "00000000000000000000000000000001")
}

// TestRawSocketsAsRoot exercises raw mode, with two engines at once: each
// sees every echo reply of the host and must keep only its own.
func TestRawSocketsAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "raw sockets need root or CAP_NET_RAW (euid %d)", os.Geteuid())
	}
	engines := []*Engine{newRealEngine(t, ModeRaw), newRealEngine(t, ModeRaw)}
	for i, e := range engines {
		if !e.Privileged() {
			t.Fatalf("engine %d: Privileged() = false in mode %q", i, ModeRaw)
		}
		e.SetTargets([]Target{{Device: "lo", Address: "127.0.0.1", Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, Count: 3}})
	}
	a, b := runEngine(t, engines[0]), runEngine(t, engines[1])
	for range 3 {
		for i, results := range []<-chan Result{a, b} {
			if r := nextResult(t, results, "lo", 2*time.Second); r.Sent != 3 || r.Recv != 3 || r.Err != nil {
				t.Fatalf("engine %d: %+v, want 3/3 (a reply for the other engine must not count)", i, r)
			}
		}
	}
}

// The ping-socket child runs inside a namespace whose ping_group_range the
// parent opened (the sysctl is per network namespace; the host's is left
// alone). It probes the namespace's loopback and the monitor across the veth.
const envPingChild = "NOCBRIDGE_ICMP_PING_CHILD"

func TestPingSocketsInNamespace(t *testing.T) {
	t.Parallel()
	dev := netns.New(t)
	hostRange, _ := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	dev.AllowPingSockets(t)
	dev.RunTest(t, "TestPingSocketsChild", envPingChild+"="+dev.MonitorAddr.String())
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); string(after) != string(hostRange) {
		t.Fatalf("host ping_group_range changed from %q to %q", hostRange, after)
	}
}

func TestPingSocketsChild(t *testing.T) {
	monitor := os.Getenv(envPingChild)
	if monitor == "" {
		t.Skip("runs only inside TestPingSocketsInNamespace's namespace")
	}
	e, err := New(Options{Privileged: ModePing, Logger: discard()})
	if err != nil {
		t.Fatalf("New(privileged: false) with ping sockets allowed: %v", err)
	}
	if e.Privileged() {
		t.Fatal("Privileged() = true in ping-socket mode")
	}
	targets := []Target{
		{Device: "ns-lo", Address: "127.0.0.1", Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, Count: 2},
		{Device: "monitor", Address: monitor, Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, Count: 2},
	}
	e.SetTargets(targets)
	got := collect(t, runEngine(t, e), len(targets), 2, 2*time.Second)
	for _, tg := range targets {
		for _, r := range got[tg.Device] {
			if r.Sent != 2 || r.Recv != 2 || r.Err != nil {
				t.Fatalf("%s over a ping socket: %+v, want 2/2", tg.Device, r)
			}
		}
	}
}

// TestUnprivilegedUser runs the engine as nobody, without capabilities:
// ping sockets if the host's ping_group_range admits nobody's group, else a
// start failure that names both fixes.
const envNobodyChild = "NOCBRIDGE_ICMP_NOBODY_CHILD"

func TestUnprivilegedUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "switching to an unprivileged user needs root (euid %d)", os.Geteuid())
	}
	// nobody must be able to execute a copy of the test binary.
	dir, err := os.MkdirTemp("", "nocbridge-icmp-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "icmp.test")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, self, bin)
	const nobody = 65534
	cmd := exec.Command(bin, "-test.run=^TestUnprivilegedChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envNobodyChild+"=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestUnprivilegedChild") {
		t.Fatalf("child as uid %d: %v\n%s", nobody, err, out)
	}
	t.Logf("child as nobody:\n%s", out)
}

func TestUnprivilegedChild(t *testing.T) {
	if os.Getenv(envNobodyChild) == "" {
		t.Skip("runs only as TestUnprivilegedUser's child")
	}
	if _, err := New(Options{Privileged: ModeRaw, Logger: discard()}); err == nil {
		t.Error("New(privileged: true) succeeded without CAP_NET_RAW")
	} else {
		assertNamesFixes(t, err, "CAP_NET_RAW")
	}
	e, err := New(Options{Privileged: ModeAuto, Logger: discard()})
	if err != nil {
		assertNamesFixes(t, err, "ping socket:", "net.ipv4.ping_group_range", "raw socket:", "CAP_NET_RAW")
		t.Logf("as expected on this host: %v", err)
		return
	}
	if e.Privileged() {
		t.Fatal("an unprivileged process got raw sockets")
	}
	e.SetTargets([]Target{{Device: "lo", Address: "127.0.0.1", Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond}})
	if r := nextResult(t, runEngine(t, e), "lo", 2*time.Second); r.Recv != 1 {
		t.Fatalf("ping socket as nobody: %+v", r)
	}
	t.Log("host allows ping sockets to nobody; probed 127.0.0.1 over one")
}

func assertNamesFixes(t *testing.T, err error, want ...string) {
	t.Helper()
	want = append(want, `sysctl -w net.ipv4.ping_group_range="0 2147483647"`, "setcap cap_net_raw+ep", "AmbientCapabilities=CAP_NET_RAW")
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVethDeviceDown: a device in its own namespace answers; with its link
// down every echo is lost; back up, it answers again.
func TestVethDeviceDown(t *testing.T) {
	t.Parallel()
	dev := netns.New(t)
	e := newRealEngine(t, ModeAuto)
	const interval = 300 * time.Millisecond
	e.SetTargets([]Target{{Device: "sw1", Address: dev.Addr.String(), Interval: interval, Timeout: interval, Count: 2}})
	results := runEngine(t, e)

	waitFor := func(what string, ok func(Result) bool) Result {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			if r := nextResult(t, results, "sw1", 2*time.Second); ok(r) {
				return r
			}
		}
		t.Fatalf("sw1 never %s", what)
		return Result{}
	}
	up := func(r Result) bool { return r.Recv == 2 && r.Loss == 0 && r.Err == nil }
	waitFor("answered", up)
	dev.LinkDown(t)
	// The round in flight when the link went down may still see a reply.
	down := waitFor("lost every echo", func(r Result) bool { return r.Loss == 100 })
	if down.Sent != 2 || down.Recv != 0 || down.RTT != 0 {
		t.Errorf("down round %+v, want 2 sent, 0 received, no RTT", down)
	}
	if r := nextResult(t, results, "sw1", 2*time.Second); r.Loss != 100 {
		t.Errorf("second round with the link down: %+v, want 100%% loss", r)
	}
	dev.LinkUp(t)
	waitFor("answered again", up)
}

// TestLoopbackScale is a small cmd/nocbench icmp: many devices on
// 127.0.0.0/8 at a short interval, every echo answered.
func TestLoopbackScale(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("scale test in -short mode")
	}
	e := newRealEngine(t, ModeAuto)
	const devices, rounds = 2000, 2
	interval := time.Second
	targets := make([]Target, devices)
	for i := range targets {
		targets[i] = Target{Device: fmt.Sprintf("dev%05d", i), Address: loopbackAddr(i).String(), Interval: interval, Timeout: time.Second, Count: 1}
	}
	e.SetTargets(targets)
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	results := runEngine(t, e)
	seen := map[string]int{}
	var lossy []Result
	deadline := time.After(time.Duration(rounds+1)*interval + 2*time.Second)
	for n := 0; n < devices*rounds; n++ {
		select {
		case r := <-results:
			seen[r.Device]++
			if r.Recv != 1 || r.Err != nil {
				lossy = append(lossy, r)
			}
		case <-deadline:
			t.Fatalf("%d of %d results after %v", n, devices*rounds, time.Since(start))
		}
	}
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	if len(lossy) > 0 {
		t.Fatalf("%d false losses on loopback, first %+v", len(lossy), lossy[0])
	}
	for _, tg := range targets {
		if seen[tg.Device] != rounds {
			t.Fatalf("%s: %d rounds, want %d", tg.Device, seen[tg.Device], rounds)
		}
	}
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	t.Logf("%d devices x %d rounds in %v; test process CPU %v (%.1f%% of one core, includes the test itself)",
		devices, rounds, time.Since(start).Round(time.Millisecond), cpu, 100*cpu.Seconds()/time.Since(start).Seconds())
}

// loopbackAddr is the i-th loopback address used by the scale test and
// cmd/nocbench, from 127.1.0.1, skipping .0 and .255 host bytes.
func loopbackAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + i/(256*254)), byte(i / 254 % 256), byte(1 + i%254)})
}

// TestKernelFilterPassesOnlyOurEchoReplies: of two raw sockets, only the one
// filtering on the echo's ID receives its reply, and neither receives the
// echo request that loopback also delivers to raw sockets.
func TestKernelFilterPassesOnlyOurEchoReplies(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "raw sockets need root or CAP_NET_RAW (euid %d)", os.Geteuid())
	}
	for _, fam := range []family{v4, v6} {
		dst := netip.MustParseAddr("127.0.0.1")
		if fam == v6 {
			if !hasIPv6Loopback() {
				continue
			}
			dst = netip.IPv6Loopback()
		}
		t.Run(fam.String(), func(t *testing.T) {
			const id = 0x4e42
			open := func(id uint16) *net.IPConn {
				c, err := listenRaw(fam, id, discard())
				if err != nil {
					t.Fatalf("raw %s socket: %v", fam, err)
				}
				t.Cleanup(func() { c.Close() })
				return c.(*net.IPConn)
			}
			ours, others := open(id), open(id+1)
			e := &Engine{id: id}
			copy(e.nonce[:], "filter-t")
			req, err := e.echoRequest(fam, 7, time.Now().UnixNano())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ours.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				t.Fatalf("send: %v", err)
			}
			buf := make([]byte, readBufLen)
			_ = ours.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, from, err := ours.ReadFrom(buf)
				if err != nil {
					t.Fatalf("our reply did not pass the filter: %v", err)
				}
				m, err := icmp.ParseMessage(fam.proto(), buf[:n])
				if err != nil || m.Type != fam.echoReply() {
					t.Fatalf("the filter let through something else than an echo reply: % x from %v", buf[:n], from)
				}
				if r, ok := e.parseReply(&socket{fam: fam, raw: true}, buf[:n], from); ok && r.seq == 7 && r.src == dst {
					break
				} // else a parallel test's echo that drew the same ID
			}
			_ = others.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, from, err := others.ReadFrom(buf); err == nil {
				if m, perr := icmp.ParseMessage(fam.proto(), buf[:n]); perr == nil {
					if echo, ok := m.Body.(*icmp.Echo); ok && echo.ID == id {
						t.Fatalf("a socket filtering on ID %#x received %v with ID %#x from %v", id+1, m.Type, echo.ID, from)
					}
				}
			}
		})
	}
}
