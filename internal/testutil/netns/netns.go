// Package netns gives tests a network "device": a network namespace joined
// to the test process's namespace by a veth pair, with a /30 from
// 198.18.0.0/15 (the benchmarking range) on the link. The monitor, the test
// process, stays in its namespace and reaches the device at Addr; taking the
// device's link down makes it unreachable, as a device that died would be.
//
// Go runs the test binaries of several packages at once, so every device
// claims a numbered slot (its names and its subnet) under an exclusive
// flock in /run/nocbridge-netns; a slot left behind by a killed process is
// free again, and its leftovers are removed before reuse.
package netns

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Host is a test device in its own network namespace.
type Host struct {
	Name        string       // network namespace name (for ip netns exec)
	Addr        netip.Addr   // the device's address, inside the namespace
	MonitorAddr netip.Addr   // the test process's address on the same link
	Prefix      netip.Prefix // the /30 the two share
	HostLink    string       // veth end in the test process's namespace
	DeviceLink  string       // veth end inside the namespace

	lock   *os.File
	parent *Host // nil: joined to the test process's namespace
}

const (
	lockDir  = "/run/nocbridge-netns"
	numSlots = 1 << 15 // /30 subnets in 198.18.0.0/15
	envCI    = "NOCBRIDGE_REQUIRE_INTEROP"
)

var rangeBase = netip.MustParseAddr("198.18.0.0")

// SkipOrFail skips the test, or fails it when NOCBRIDGE_REQUIRE_INTEROP=1
// (CI), where every interop test must run.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(envCI) == "1" {
		t.Fatalf(envCI+"=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Require skips (or fails under CI) unless the process can build devices:
// root and the ip command.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "network namespaces need root (euid is %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		SkipOrFail(t, "network namespaces need the ip command (iproute2): %v", err)
	}
}

// New creates a device; t.Cleanup removes it, also when the test fails.
func New(t testing.TB) *Host {
	t.Helper()
	Require(t)
	d := claimSlot(t)
	t.Cleanup(func() { d.remove(t) })
	d.removeLeftovers()

	if out, err := exec.Command("ip", "netns", "add", d.Name).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "Permission denied") {
			SkipOrFail(t, "cannot create network namespaces here: ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
		}
		t.Fatalf("ip netns add %s: %v: %s", d.Name, err, strings.TrimSpace(string(out)))
	}
	monitor := netip.PrefixFrom(d.MonitorAddr, d.Prefix.Bits()).String()
	device := netip.PrefixFrom(d.Addr, d.Prefix.Bits()).String()
	ipCmd(t, "link", "add", d.HostLink, "type", "veth", "peer", "name", d.DeviceLink, "netns", d.Name)
	ipCmd(t, "addr", "add", monitor, "dev", d.HostLink)
	ipCmd(t, "link", "set", d.HostLink, "up")
	ipCmd(t, "-n", d.Name, "addr", "add", device, "dev", d.DeviceLink)
	ipCmd(t, "-n", d.Name, "link", "set", d.DeviceLink, "up")
	ipCmd(t, "-n", d.Name, "link", "set", "lo", "up")
	return d
}

// Behind creates a device whose only link goes to p's namespace, and routes
// it from the test process through p, which forwards: taking p's link down
// cuts it off too, as an access switch behind a failed core. t.Cleanup
// removes it (before p: cleanups run last-in first-out).
func (p *Host) Behind(t testing.TB) *Host {
	t.Helper()
	d := claimSlot(t)
	d.parent = p
	t.Cleanup(func() { d.remove(t) })
	d.removeLeftovers()
	ipCmd(t, "netns", "add", d.Name)
	ipCmd(t, "-n", p.Name, "link", "add", d.HostLink, "type", "veth", "peer", "name", d.DeviceLink, "netns", d.Name)
	ipCmd(t, "-n", p.Name, "addr", "add", netip.PrefixFrom(d.MonitorAddr, d.Prefix.Bits()).String(), "dev", d.HostLink)
	ipCmd(t, "-n", p.Name, "link", "set", d.HostLink, "up")
	ipCmd(t, "-n", d.Name, "addr", "add", netip.PrefixFrom(d.Addr, d.Prefix.Bits()).String(), "dev", d.DeviceLink)
	ipCmd(t, "-n", d.Name, "link", "set", d.DeviceLink, "up")
	ipCmd(t, "-n", d.Name, "link", "set", "lo", "up")
	ipCmd(t, "-n", d.Name, "route", "add", "default", "via", d.MonitorAddr.String())
	if out, err := exec.Command("ip", "netns", "exec", p.Name, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		t.Fatalf("enabling forwarding in %s: %v: %s", p.Name, err, strings.TrimSpace(string(out)))
	}
	ipCmd(t, "route", "add", d.Prefix.String(), "via", p.Addr.String())
	return d
}

// LinkDown takes the device's end of the link down: it stops answering.
func (d *Host) LinkDown(t testing.TB) {
	t.Helper()
	ipCmd(t, "-n", d.Name, "link", "set", d.DeviceLink, "down")
}

// LinkUp brings the device's end of the link back.
func (d *Host) LinkUp(t testing.TB) {
	t.Helper()
	ipCmd(t, "-n", d.Name, "link", "set", d.DeviceLink, "up")
}

// Exec prepares a command that runs inside the device's namespace (snmpd,
// snmptrap…). It is killed when the test ends, before the namespace goes.
func (d *Host) Exec(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.CommandContext(t.Context(), "ip", append([]string{"netns", "exec", d.Name, name}, args...)...)
}

// AllowPingSockets opens net.ipv4.ping_group_range to every group inside
// the device's namespace (the sysctl is per namespace: the host's is left
// alone), so a test run there by RunTest can open ping sockets.
func (d *Host) AllowPingSockets(t testing.TB) {
	t.Helper()
	if out, err := d.Exec(t, "sysctl", "-w", "net.ipv4.ping_group_range=0 2147483647").CombinedOutput(); err != nil {
		t.Fatalf("sysctl in %s: %v: %s", d.Name, err, out)
	}
}

// RunTest runs the test binary's test named name inside the device's
// namespace, with env ("KEY=value") added to the environment, and fails t
// unless that test passed. The child sees the device's network only: a
// per-namespace sysctl set there (net.ipv4.ping_group_range) applies to it.
func (d *Host) RunTest(t testing.TB, name string, env ...string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := d.Exec(t, self, "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	child.Env = append(os.Environ(), env...)
	out, err := child.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s in namespace %s: %v\n%s", name, d.Name, err, out)
	}
}

// claimSlot locks a free slot and derives the device's names and addresses
// from it. Slots are tried from a random start, so parallel test processes
// rarely contend.
func claimSlot(t testing.TB) *Host {
	t.Helper()
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatalf("netns slot locks: %v", err)
	}
	start := rand.IntN(numSlots)
	for i := range numSlots {
		slot := (start + i) % numSlots
		path := filepath.Join(lockDir, fmt.Sprintf("slot-%d.lock", slot))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatalf("netns slot lock %s: %v", path, err)
		}
		// flock is per open file: it excludes other processes and other
		// devices of this process alike, and dies with its holder.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			t.Fatalf("netns slot lock %s: %v", path, err)
		}
		return slotDevice(slot, f)
	}
	t.Fatalf("netns: all %d slots are in use", numSlots)
	return nil
}

func slotDevice(slot int, lock *os.File) *Host {
	b := rangeBase.As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(slot)*4
	addr := func(off uint32) netip.Addr {
		v := n + off
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return &Host{
		Name:        fmt.Sprintf("nocbr-%d", slot),
		Prefix:      netip.PrefixFrom(addr(0), 30),
		MonitorAddr: addr(1),
		Addr:        addr(2),
		HostLink:    fmt.Sprintf("nbh%d", slot), // link names are at most 15 bytes
		DeviceLink:  fmt.Sprintf("nbd%d", slot),
		lock:        lock,
	}
}

// removeLeftovers deletes what a killed process left in this slot.
func (d *Host) removeLeftovers() {
	_ = exec.Command("ip", "link", "del", d.HostLink).Run()
	_ = exec.Command("ip", "route", "del", d.Prefix.String()).Run()
	_ = exec.Command("ip", "netns", "del", d.Name).Run()
}

// remove deletes the link first (synchronously, both ends), then the
// namespace, whose own teardown in the kernel is asynchronous.
func (d *Host) remove(t testing.TB) {
	defer d.lock.Close() // releases the slot
	link := []string{"link", "del", d.HostLink}
	if d.parent != nil {
		link = append([]string{"-n", d.parent.Name}, link...)
		if out, err := exec.Command("ip", "route", "del", d.Prefix.String()).CombinedOutput(); err != nil && !notFound(out) && !strings.Contains(string(out), "No such process") {
			t.Errorf("netns cleanup: ip route del %s: %v: %s", d.Prefix, err, strings.TrimSpace(string(out)))
		}
	}
	if out, err := exec.Command("ip", link...).CombinedOutput(); err != nil && !notFound(out) {
		t.Errorf("netns cleanup: ip %s: %v: %s", strings.Join(link, " "), err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ip", "netns", "del", d.Name).CombinedOutput(); err != nil && !notFound(out) {
		t.Errorf("netns cleanup: ip netns del %s: %v: %s", d.Name, err, strings.TrimSpace(string(out)))
	}
}

func notFound(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "Cannot find device") || strings.Contains(s, "No such file or directory")
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}
