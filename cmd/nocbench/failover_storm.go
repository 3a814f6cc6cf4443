package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/nocbridge/nocbridge/internal/trap/loadgen"
)

// trapStorm is the daemon mode's storm: each run sends its traps (linkDown,
// one new alert each: ifIndex run*n+1 … run*n+n, from 127.0.0.1, the
// device bench-sw1) round-robin to the trap listeners of the nodes alive at
// that moment, at rate per second; the leader is killed half-way. Every
// trap must become exactly one notification at the receiver.
type trapStorm struct {
	n, rate int
	rcv     *latencyReceiver
	// The receiver's counts when the run began.
	dups0, unexpected0 int64
}

// inFlightAtKill: a trap sent to the leader this shortly before its kill
// may still be in its socket's buffer, unread, when it dies: lost with the
// process, as any datagram to a dead host, and counted apart; so is one the
// storm sent to it this shortly after, racing the kill.
const inFlightAtKill = 50 * time.Millisecond

// stormRun is what one run's storm came to.
type stormRun struct {
	sent, toKilled     int // traps sent; of them to the killed node before its kill
	received           int // alerts notified
	lost               int // alerts never notified, but for inFlight
	inFlight           int // never notified, sent to the killed node within inFlightAtKill before the kill
	dups, secondAlerts int64
	lastAfterKill      time.Duration // kill → the run's last notification
	firstMissing       string        // the first alert lost, and where its trap went when
}

func (r stormRun) String() string {
	s := fmt.Sprintf("storm: %d traps (%d to the leader before its kill), %d of %d notified, %d lost, %d in flight to the leader at its kill (sent < %v before), "+
		"%d duplicate deliveries (same webhook-id), %d second alerts",
		r.sent, r.toKilled, r.received, r.sent, r.lost, r.inFlight, inFlightAtKill, r.dups, r.secondAlerts)
	if r.received > 0 {
		s += fmt.Sprintf("; the last notification %v after the kill", r.lastAfterKill.Round(time.Millisecond))
	}
	if r.firstMissing != "" {
		s += "; first missing: " + r.firstMissing
	}
	return s
}

// send sends run's traps, noting where and when each went; half is closed
// once half of them are sent. targets returns the trap ports of the live
// nodes and which node each is.
func (s *trapStorm) send(ctx context.Context, run int, targets func() ([]int, []int), half chan<- struct{}) (sentTo []int, sentAt []time.Time, err error) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("trap storm: %w", err)
	}
	defer conn.Close()
	s.dups0, s.unexpected0 = s.rcv.dups.Load(), s.rcv.unexpected.Load()
	sentTo, sentAt = make([]int, s.n), make([]time.Time, s.n)
	start := time.Now()
	for k := range s.n {
		if k == s.n/2 {
			close(half)
		}
		due := start.Add(time.Duration(int64(k) * int64(time.Second) / int64(s.rate)))
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Until(due)):
		}
		ifIndex := run*s.n + k + 1
		pkt, err := loadgen.LinkDown("public", uint32(ifIndex), ifIndex)
		if err != nil {
			return nil, nil, err
		}
		ports, nodes := targets()
		if len(ports) == 0 {
			return nil, nil, fmt.Errorf("trap storm: no node alive for trap %d", k+1)
		}
		i := k % len(ports)
		sentAt[k] = time.Now()
		if _, err := conn.WriteTo(pkt, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports[i]}); err != nil {
			return nil, nil, fmt.Errorf("trap storm: sending trap %d to port %d: %w", k+1, ports[i], err)
		}
		sentTo[k] = nodes[i]
	}
	if s.n < 2 {
		close(half)
	}
	return sentTo, sentAt, nil
}

// result waits until every trap of run is notified, or none more comes
// for idle, and counts.
func (s *trapStorm) result(ctx context.Context, run int, sentTo []int, sentAt []time.Time, killed int, killAt time.Time, idle time.Duration) stormRun {
	s.rcv.wait(ctx, int64((run+1)*s.n), idle)
	r := stormRun{sent: len(sentTo), dups: s.rcv.dups.Load() - s.dups0, secondAlerts: s.rcv.unexpected.Load() - s.unexpected0}
	var last time.Time
	for k, node := range sentTo {
		if node == killed {
			r.toKilled++
		}
		ns := s.rcv.arrived[run*s.n+k].Load()
		if ns == 0 {
			before := killAt.Sub(sentAt[k])
			if node == killed && before > -inFlightAtKill && before < inFlightAtKill {
				r.inFlight++
			} else {
				r.lost++
			}
			if r.firstMissing == "" {
				r.firstMissing = fmt.Sprintf("ifIndex %d, its trap sent to nb%d %v before the kill", run*s.n+k+1, node+1, before.Round(time.Millisecond))
			}
			continue
		}
		r.received++
		if at := time.Unix(0, ns); at.After(last) {
			last = at
		}
	}
	if r.received > 0 {
		r.lastAfterKill = last.Sub(killAt)
	}
	return r
}

// trapTargets are the trap ports of the daemons alive now, and their nodes.
func (c *daemonCluster) trapTargets() ([]int, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ports, nodes []int
	for i, p := range c.nodes {
		if p != nil && p.alive() {
			ports = append(ports, c.traps[i])
			nodes = append(nodes, i)
		}
	}
	return ports, nodes
}
