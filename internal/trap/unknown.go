package trap

import (
	"net/netip"
	"sync"
	"time"
)

// unknownSenders are the senders outside the inventory whose traps were let
// in (traps.unknown_sources: accept), each with the time of its last trap.
// First come, first served: a sender is tracked from its first trap until
// its expiry (traps.unknown_expire) after its last, and while max others
// are tracked a new one is refused, so a spoofing storm cannot grow alert
// state without bound and cannot push out the senders already tracked. The
// set lives in memory: after a restart it fills again as senders send.
type unknownSenders struct {
	mu     sync.Mutex
	last   map[netip.Addr]time.Time
	pruned time.Time
}

// unknownPruneEvery spaces the scans for expired senders a full set makes, so a
// storm of new senders costs a map lookup each, not a scan each.
const unknownPruneEvery = time.Second

// admit tracks ip as seen at now and reports whether its trap may pass.
func (u *unknownSenders) admit(ip netip.Addr, now time.Time, max int, expire time.Duration) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = map[netip.Addr]time.Time{}
	}
	if _, ok := u.last[ip]; !ok && len(u.last) >= max && now.Sub(u.pruned) >= unknownPruneEvery {
		u.pruned = now
		for a, at := range u.last {
			if now.Sub(at) >= expire {
				delete(u.last, a)
			}
		}
	}
	if _, ok := u.last[ip]; !ok && len(u.last) >= max {
		return false
	}
	u.last[ip] = now
	return true
}

// tracked counts the senders not expired at now.
func (u *unknownSenders) tracked(now time.Time, expire time.Duration) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, at := range u.last {
		if now.Sub(at) < expire {
			n++
		}
	}
	return n
}
