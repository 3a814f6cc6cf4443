// Package schedule spreads periodic work (ICMP rounds, SNMP polls) across its
// interval: each device gets a fixed phase from a hash of its name, and its
// rounds fall on a grid of that phase plus whole intervals, the same in every
// process and after every reload, so a fleet never fires in one burst. It
// also holds the one timer queue (Queue) of the ICMP and SNMP schedulers and
// the outbox, and the target-list hand-over and reconciliation (Latest,
// Reconciler) the two schedulers share.
package schedule

import (
	"hash/fnv"
	"time"
)

// Phase places device within interval by a hash of its name. With quantum
// > 0 the phase is a whole number of quanta (when the interval holds at
// least two), so devices sharing a slot are served in one wake-up.
func Phase(device string, interval, quantum time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(device))
	if quantum <= 0 || interval < 2*quantum {
		return time.Duration(h.Sum64() % uint64(interval))
	}
	return time.Duration(h.Sum64()%uint64(interval/quantum)) * quantum
}

// Slot is the first time at or after now that lies on phase + k*interval
// from the Unix epoch. It is derived from now to keep the monotonic clock.
func Slot(now time.Time, interval, phase time.Duration) time.Time {
	off := (now.UnixNano() - int64(phase)) % int64(interval)
	if off < 0 {
		off += int64(interval)
	}
	if off == 0 {
		return now
	}
	return now.Add(interval - time.Duration(off))
}
