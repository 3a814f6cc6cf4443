// Package loadgen sends paced SNMPv2c traps from several source addresses,
// for load tests of trap receivers (nocbridge's and snmptrapd).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
	"golang.org/x/net/ipv4"
)

// LinkDown encodes an SNMPv2c linkDown trap (IF-MIB) for ifIndex, shaped
// like the ones switches send: sysUpTime.0, snmpTrapOID.0, ifIndex,
// ifAdminStatus, ifOperStatus, ifDescr.
func LinkDown(community string, requestID uint32, ifIndex int) ([]byte, error) {
	idx := fmt.Sprint(ifIndex)
	p := &gosnmp.SnmpPacket{
		Version: gosnmp.Version2c, Community: community, PDUType: gosnmp.SNMPv2Trap, RequestID: requestID,
		Variables: []gosnmp.SnmpPDU{
			{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(123456)},
			{Name: ".1.3.6.1.6.3.1.1.4.1.0", Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.6.3.1.1.5.3"},
			{Name: ".1.3.6.1.2.1.2.2.1.1." + idx, Type: gosnmp.Integer, Value: ifIndex},
			{Name: ".1.3.6.1.2.1.2.2.1.7." + idx, Type: gosnmp.Integer, Value: 1},
			{Name: ".1.3.6.1.2.1.2.2.1.8." + idx, Type: gosnmp.Integer, Value: 2},
			{Name: ".1.3.6.1.2.1.2.2.1.2." + idx, Type: gosnmp.OctetString, Value: "GigabitEthernet1/0/" + idx},
		},
	}
	return p.MarshalMsg()
}

// Config describes one load run.
type Config struct {
	Target    netip.AddrPort
	Rate      int           // traps per second, all sources together
	Duration  time.Duration // how long to send
	Sources   int           // sockets, bound to consecutive loopback addresses
	FirstAddr netip.Addr    // first source address (default 127.0.0.10)
	Community string        // default "public"
}

// Result is what was sent.
type Result struct {
	Sent      uint64
	PerSource []uint64
	Elapsed   time.Duration
	Errors    uint64 // send calls that failed (buffers full, ICMP errors)
}

// Rate is the achieved send rate.
func (r Result) Rate() float64 { return float64(r.Sent) / r.Elapsed.Seconds() }

const batch = 64

// Run sends until cfg.Duration has passed or ctx ends. Packets are encoded
// beforehand and sent with sendmmsg, paced every millisecond, so the
// generator spends little CPU on its own.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if !cfg.Target.IsValid() || cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Sources <= 0 {
		return Result{}, errors.New("loadgen: target, rate, duration and sources are required")
	}
	if !cfg.Target.Addr().IsLoopback() {
		// Load tests never leave the machine.
		return Result{}, fmt.Errorf("loadgen: target %s is not a loopback address", cfg.Target)
	}
	if !cfg.FirstAddr.IsValid() {
		cfg.FirstAddr = netip.AddrFrom4([4]byte{127, 0, 0, 10})
	}
	if cfg.Community == "" {
		cfg.Community = "public"
	}
	pkts := make([][]byte, 256)
	for i := range pkts {
		var err error
		if pkts[i], err = LinkDown(cfg.Community, uint32(i+1), i%48+1); err != nil {
			return Result{}, fmt.Errorf("loadgen: encoding trap: %w", err)
		}
	}
	conns := make([]*net.UDPConn, cfg.Sources)
	src := cfg.FirstAddr
	if cfg.Target.Addr().Is6() {
		src = netip.IPv6Loopback()
	}
	for i := range conns {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return Result{}, fmt.Errorf("loadgen: binding source %s: %w", src, err)
		}
		_ = c.SetWriteBuffer(4 << 20)
		conns[i] = c
		if src.Is4() {
			src = src.Next()
		}
	}
	res := Result{PerSource: make([]uint64, cfg.Sources)}
	var errCount atomic.Uint64
	target := net.UDPAddrFromAddrPort(cfg.Target)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	perSource := float64(cfg.Rate) / float64(cfg.Sources)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			defer c.Close()
			pc := ipv4.NewPacketConn(c)
			msgs := make([]ipv4.Message, batch)
			for j := range msgs {
				msgs[j].Addr = target
			}
			next := i * 37 // sources send different packets
			var sent uint64
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				now := time.Now()
				if now.After(deadline) {
					now = deadline
				}
				due := uint64(perSource*now.Sub(start).Seconds()) - sent
				for due > 0 {
					n := min(int(due), batch)
					for j := range n {
						msgs[j].Buffers = [][]byte{pkts[next%len(pkts)]}
						next++
					}
					w, err := pc.WriteBatch(msgs[:n], 0)
					sent += uint64(max(w, 0))
					due -= uint64(max(w, 0))
					if err != nil {
						// Full socket buffer or an ICMP error: retry on the next tick.
						errCount.Add(1)
						break
					}
				}
				if now.Equal(deadline) || ctx.Err() != nil {
					res.PerSource[i] = sent
					return
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Errors = errCount.Load()
	for _, n := range res.PerSource {
		res.Sent += n
	}
	return res, ctx.Err()
}
