package icmp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// family indexes the engine's per-address-family sockets.
type family int

const (
	v4 family = iota
	v6
	numFamilies
)

func (f family) String() string {
	if f == v6 {
		return "IPv6"
	}
	return "IPv4"
}

// proto is the IANA protocol number that icmp.ParseMessage expects.
func (f family) proto() int {
	if f == v6 {
		return 58 // ICMPv6
	}
	return 1
}

func (f family) echoRequest() icmp.Type {
	if f == v6 {
		return ipv6.ICMPTypeEchoRequest
	}
	return ipv4.ICMPTypeEcho
}

func (f family) echoReply() icmp.Type {
	if f == v6 {
		return ipv6.ICMPTypeEchoReply
	}
	return ipv4.ICMPTypeEchoReply
}

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return v4
	}
	return v6
}

// packetConn is the part of a socket the engine uses; tests substitute a
// fake network for it.
type packetConn interface {
	ReadFrom(b []byte) (n int, src net.Addr, err error)
	WriteTo(b []byte, dst net.Addr) (int, error)
	// SetWriteDeadline bounds a send that would block on a full send
	// buffer, which would otherwise stall every other target's schedule.
	SetWriteDeadline(t time.Time) error
	Close() error
}

// opener opens one socket: raw (true) or ping (false), for one family. id
// is the ICMP ID raw sockets filter replies on.
type opener func(fam family, raw bool, id uint16, log *slog.Logger) (packetConn, error)

type socket struct {
	fam  family
	raw  bool
	conn packetConn
}

// addr converts a destination to the address type the socket kind expects.
func (s *socket) addr(dst netip.Addr) net.Addr {
	if s.raw {
		return &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	}
	return &net.UDPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
}

// sockBufBytes is the receive and send buffer asked of the kernel (capped by
// net.core.rmem_max and wmem_max): room for bursts of replies, and for echoes
// queued behind ARP resolution when a whole subnet of devices is down.
const sockBufBytes = 1 << 20

// sendTimeout bounds one send on a full send buffer; the echo then counts as
// lost with the timeout as its reason.
const sendTimeout = 20 * time.Millisecond

func kindName(raw bool) string {
	if raw {
		return "raw socket"
	}
	return "ping socket"
}

// openSockets opens one socket per family of the first kind the mode allows
// that works for at least one family.
func (e *Engine) openSockets(mode Mode, open opener) error {
	var kinds []bool // raw?
	switch mode {
	case "", ModeAuto:
		kinds = []bool{false, true}
	case ModePing:
		kinds = []bool{false}
	case ModeRaw:
		kinds = []bool{true}
	default:
		return fmt.Errorf("icmp: privileged %q is not one of auto, true (raw sockets) or false (ping sockets)", mode)
	}
	var failures []error
	for _, raw := range kinds {
		var conns [numFamilies]packetConn
		var errs [numFamilies]error
		for fam := range numFamilies {
			conns[fam], errs[fam] = open(fam, raw, e.id, e.log)
		}
		if conns[v4] == nil && conns[v6] == nil {
			failures = append(failures, fmt.Errorf("%s: %w", kindName(raw), explainOpenErr(raw, errs[v4])))
			continue
		}
		e.privileged = raw
		for fam, c := range conns {
			if c != nil {
				e.socks[fam] = &socket{fam: family(fam), raw: raw, conn: c}
			} else {
				e.sockErr[fam] = fmt.Errorf("no %s %s: %w", family(fam), kindName(raw), errs[fam])
			}
		}
		return nil
	}
	return noSocketError(mode, failures)
}

// The two ways to allow ICMP, named in every "cannot open" error.
const (
	fixPing = `allow ping sockets with sysctl -w net.ipv4.ping_group_range="0 2147483647" (persist it under /etc/sysctl.d/)`
	fixRaw  = `grant CAP_NET_RAW with setcap cap_net_raw+ep on the nocbridge binary, or AmbientCapabilities=CAP_NET_RAW in the systemd unit`
)

func noSocketError(mode Mode, failures []error) error {
	var fix string
	switch mode {
	case ModePing:
		fix = "fix: " + fixPing + "; or " + fixRaw + " and set icmp.privileged: auto"
	case ModeRaw:
		fix = "fix: " + fixRaw + "; or " + fixPing + " and set icmp.privileged: auto"
	default:
		mode = ModeAuto
		fix = "fix either: " + fixPing + "; or " + fixRaw
	}
	format := "icmp: cannot open ICMP sockets (icmp.privileged: %s): " + strings.Repeat("%w; ", len(failures)) + "%s"
	args := []any{mode}
	for _, f := range failures {
		args = append(args, f)
	}
	return fmt.Errorf(format, append(args, fix)...)
}

// explainOpenErr adds what the kernel checked to a permission error.
func explainOpenErr(raw bool, err error) error {
	if !errors.Is(err, os.ErrPermission) {
		return err
	}
	if raw {
		return fmt.Errorf("%w (the process lacks CAP_NET_RAW)", err)
	}
	rng, rerr := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if rerr != nil {
		return fmt.Errorf("%w (group %d is outside net.ipv4.ping_group_range)", err, os.Getegid())
	}
	return fmt.Errorf("%w (group %d is outside net.ipv4.ping_group_range %q)", err, os.Getegid(),
		strings.Join(strings.Fields(string(rng)), " "))
}

// listen opens a real socket.
func listen(fam family, raw bool, id uint16, log *slog.Logger) (packetConn, error) {
	if raw {
		return listenRaw(fam, id, log)
	}
	return listenPing(fam, log)
}

func listenRaw(fam family, id uint16, log *slog.Logger) (packetConn, error) {
	network, laddr := "ip4:icmp", "0.0.0.0"
	if fam == v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		return nil, err
	}
	ipc := c.(*net.IPConn)
	setBuffers(ipc, log)
	// A raw socket receives every ICMP message of the host. Let the kernel
	// drop all but our echo replies; the reader checks again, so a kernel
	// without these filters costs CPU, not correctness.
	if err := setKernelFilters(ipc, fam, id); err != nil {
		log.Warn("kernel ICMP filter unavailable; filtering replies in user space", "family", fam, "err", err)
	}
	return ipc, nil
}

func setKernelFilters(c *net.IPConn, fam family, id uint16) error {
	const accept, drop = 0xffffffff, 0
	if fam == v4 {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		p := ipv4.NewPacketConn(c)
		if err := p.SetICMPFilter(&f); err != nil {
			return err
		}
		// IPv4 raw sockets filter on the whole datagram: skip the IP header.
		prog, err := bpf.Assemble([]bpf.Instruction{
			bpf.LoadMemShift{Off: 0},          // X = IP header length
			bpf.LoadIndirect{Off: 0, Size: 1}, // ICMP type
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv4.ICMPTypeEchoReply), SkipTrue: 3},
			bpf.LoadIndirect{Off: 4, Size: 2}, // ICMP echo ID
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 1},
			bpf.RetConstant{Val: accept},
			bpf.RetConstant{Val: drop},
		})
		if err != nil {
			return err
		}
		return p.SetBPF(prog)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeEchoReply)
	p := ipv6.NewPacketConn(c)
	if err := p.SetICMPFilter(&f); err != nil {
		return err
	}
	// IPv6 raw sockets filter on the ICMPv6 message itself.
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeEchoReply), SkipTrue: 3},
		bpf.LoadAbsolute{Off: 4, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 1},
		bpf.RetConstant{Val: accept},
		bpf.RetConstant{Val: drop},
	})
	if err != nil {
		return err
	}
	return p.SetBPF(prog)
}

// listenPing opens a ping socket (SOCK_DGRAM, IPPROTO_ICMP), which the
// kernel allows to groups in net.ipv4.ping_group_range (both families).
func listenPing(fam family, log *slog.Logger) (packetConn, error) {
	domain, proto := syscall.AF_INET, syscall.IPPROTO_ICMP
	var sa syscall.Sockaddr = &syscall.SockaddrInet4{}
	if fam == v6 {
		domain, proto, sa = syscall.AF_INET6, syscall.IPPROTO_ICMPV6, &syscall.SockaddrInet6{}
	}
	syscall.ForkLock.RLock() // no exec may inherit the descriptor before CloseOnExec
	fd, err := syscall.Socket(domain, syscall.SOCK_DGRAM, proto)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	// Binding picks the port, which the kernel uses as the echo ID.
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	f := os.NewFile(uintptr(fd), "icmp ping socket")
	c, err := net.FilePacketConn(f) // dups the descriptor into the runtime poller
	f.Close()
	if err != nil {
		return nil, err
	}
	if bc, ok := c.(bufferSetter); ok {
		setBuffers(bc, log)
	}
	return c, nil
}

type bufferSetter interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func setBuffers(c bufferSetter, log *slog.Logger) {
	for _, set := range []func(int) error{c.SetReadBuffer, c.SetWriteBuffer} {
		if err := set(sockBufBytes); err != nil {
			log.Warn("setting ICMP socket buffer size", "err", err)
		}
	}
}

// addrOf extracts the IP of a reply's source, without zone.
func addrOf(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}
