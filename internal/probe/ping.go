package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	probing "github.com/prometheus-community/pro-bing"

	"github.com/nocbridge/nocbridge/internal/probe/icmp"
)

// Pinger sends one round of ICMP echoes; ProBing is the real one, tests
// substitute a fake.
type Pinger interface {
	// Ping sends req.Count echoes req.Spacing apart and waits for their
	// replies, req.Timeout after the last one at most. The statistics hold
	// what happened even when an error ends the round early.
	Ping(ctx context.Context, req PingRequest) (PingStats, error)
}

// PingRequest is one round, as the daemon's engine sends it.
type PingRequest struct {
	Address string // IPv4 or IPv6 literal, or a DNS name
	Count   int
	Spacing time.Duration // between echoes
	Timeout time.Duration // for the last echo's reply
	Mode    icmp.Mode     // icmp.privileged: which kind of socket
}

// PingStats is the outcome of one round.
type PingStats struct {
	IP                  string // the address pinged, resolved
	Socket              string // "ping socket" or "raw socket"
	Sent, Recv          int
	Late                int     // replies that came after their echo's timeout: lost, as the engine counts them
	Loss                float64 // percent
	Min, Avg, Max, Mdev time.Duration
}

// ProBing pings through github.com/prometheus-community/pro-bing: ping
// sockets (SOCK_DGRAM, net.ipv4.ping_group_range) or raw sockets
// (CAP_NET_RAW) as icmp.privileged says; auto tries ping sockets first, as
// the daemon's engine does.
type ProBing struct{}

// Ping implements Pinger.
func (ProBing) Ping(ctx context.Context, req PingRequest) (PingStats, error) {
	var kinds []bool // raw?
	switch req.Mode {
	case "", icmp.ModeAuto:
		kinds = []bool{false, true}
	case icmp.ModePing:
		kinds = []bool{false}
	case icmp.ModeRaw:
		kinds = []bool{true}
	default:
		return PingStats{}, fmt.Errorf("icmp.privileged %q is not one of auto, true or false", req.Mode)
	}
	var errs []error
	for _, raw := range kinds {
		st, err := pingOnce(ctx, req, raw)
		if err != nil && st.Sent == 0 && errors.Is(err, os.ErrPermission) {
			errs = append(errs, fmt.Errorf("%s: %w", socketName(raw), err))
			continue // this kind of socket is not allowed: try the next
		}
		return st, err
	}
	return PingStats{}, fmt.Errorf("cannot open an ICMP socket (icmp.privileged: %s): %w; allow ping sockets (sysctl net.ipv4.ping_group_range) or grant CAP_NET_RAW",
		cmpOr(string(req.Mode), string(icmp.ModeAuto)), errors.Join(errs...))
}

func socketName(raw bool) string {
	if raw {
		return "raw socket"
	}
	return "ping socket"
}

func pingOnce(ctx context.Context, req PingRequest, raw bool) (PingStats, error) {
	p := probing.New(req.Address)
	p.SetPrivileged(raw)
	p.Count = max(req.Count, 1)
	p.Interval = max(req.Spacing, time.Millisecond) // a ticker's period must be positive
	p.Timeout = time.Duration(p.Count-1)*req.Spacing + req.Timeout
	p.ResolveTimeout = resolveTimeout
	p.RecordRtts = true // to hold each reply to its echo's timeout, as the engine does
	st := PingStats{Socket: socketName(raw)}
	if dl, ok := ctx.Deadline(); ok {
		p.ResolveTimeout = min(p.ResolveTimeout, time.Until(dl))
	}
	if err := p.Resolve(); err != nil {
		return st, fmt.Errorf("resolving: %w", err)
	}
	st.IP = p.IPAddr().IP.String()
	err := p.RunWithContext(ctx)
	st.fill(p.Statistics().PacketsSent, p.Statistics().Rtts, req.Timeout)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The round was cut short: what was sent and answered stands.
		return st, fmt.Errorf("round cut short: %w", err)
	}
	return st, err
}

// fill sets the counts and RTT statistics from the RTTs of the replies:
// pro-bing waits for the round as a whole, the engine gives each echo its
// own timeout, and a reply later than that counts as lost (Late).
func (st *PingStats) fill(sent int, rtts []time.Duration, timeout time.Duration) {
	st.Sent = sent
	var sum float64
	for _, r := range rtts {
		if r > timeout {
			st.Late++
			continue
		}
		if st.Recv == 0 || r < st.Min {
			st.Min = r
		}
		st.Max = max(st.Max, r)
		st.Recv++
		sum += float64(r)
	}
	if sent > 0 {
		st.Loss = 100 * float64(sent-st.Recv) / float64(sent)
	}
	if st.Recv == 0 {
		return
	}
	mean := sum / float64(st.Recv)
	var sq float64
	for _, r := range rtts {
		if r <= timeout {
			sq += (float64(r) - mean) * (float64(r) - mean)
		}
	}
	st.Avg, st.Mdev = time.Duration(mean), time.Duration(math.Sqrt(sq/float64(st.Recv)))
}
