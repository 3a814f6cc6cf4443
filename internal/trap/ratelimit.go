package trap

import (
	"net/netip"
	"time"
)

// sourceLimiter is a token bucket per source address. It is used by the
// single read goroutine only, so it needs no locking.
type sourceLimiter struct {
	buckets   map[netip.Addr]*bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// pruneEvery bounds the map: buckets that refilled completely carry no
// state and are dropped, so spoofed sources cannot grow it without limit.
const pruneEvery = 10 * time.Second

// allow takes one token from src's bucket, refilled at rate per second with
// a burst of one second's worth. rate <= 0 means no limit.
func (l *sourceLimiter) allow(src netip.Addr, now time.Time, rate int) bool {
	if rate <= 0 {
		return true
	}
	if l.buckets == nil {
		l.buckets = make(map[netip.Addr]*bucket)
		l.lastPrune = now
	}
	burst := float64(rate)
	if now.Sub(l.lastPrune) > pruneEvery {
		l.prune(now, float64(rate), burst)
	}
	b, ok := l.buckets[src]
	if !ok {
		b = &bucket{tokens: burst, last: now}
		l.buckets[src] = b
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*float64(rate))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *sourceLimiter) prune(now time.Time, rate, burst float64) {
	l.lastPrune = now
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*rate >= burst {
			delete(l.buckets, a)
		}
	}
}
