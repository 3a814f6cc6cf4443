package alert

import (
	"encoding/json"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
)

// In a cluster the leader acknowledges a trap on the observation bus only
// after its transitions are committed; a leader killed between the two
// leaves it to the next, which gets it again. For a trap whose alert is
// still stored that changes nothing (a linkDown for a firing alert), but a
// linkDown and its linkUp both committed, the alert resolved and its
// record deleted, would raise and resolve the alert a second time, with a
// new instance id the receiver cannot tell from a new outage. So each
// trap alert stores the bus sequence of the last trap applied to it, a
// resolved one leaves a tombstone with it for tombKeep, and a trap at or
// below that sequence is not applied again. Alone (sequence 0) nothing
// changes: a resolved alert is deleted.

// tombKeep is how long a tombstone is kept: longer than the bus keeps a
// record (10 minutes), after which no trap can be delivered again.
const tombKeep = 15 * time.Minute

// tomb is a resolved trap alert: the sequence of the last trap applied to
// it, and when it was resolved.
type tomb struct {
	seq uint64
	at  time.Time
}

// tracked reports whether obs carries a bus sequence this guard uses:
// traps, evaluated in bus order. (A probe's verdict may be judged from
// several nodes' results in another order, and a state observed again
// converges to the same state anyway.)
func tracked(obs observation.Observation) bool {
	return obs.Seq > 0 && obs.Source == observation.Trap
}

// replay reports whether obs was already applied to the alert at k,
// counting it. The caller holds m.mu.
func (m *Manager) replay(k string, obs observation.Observation) bool {
	if !tracked(obs) {
		return false
	}
	applied := m.tombs[k].seq
	if in := m.instances[k]; in != nil {
		applied = max(applied, in.BusSeq)
	}
	if obs.Seq > applied {
		return false
	}
	m.replayed.Add(1)
	return true
}

// Replayed counts the traps not applied twice
// (nocbridge_alert_traps_replayed_total).
func (m *Manager) Replayed() uint64 { return m.replayed.Load() }

// noteSeq records obs's sequence on the alert at k, if it has one. The
// caller holds m.mu.
func (m *Manager) noteSeq(k string, obs observation.Observation) {
	if in := m.instances[k]; in != nil && tracked(obs) && obs.Seq > in.BusSeq {
		in.BusSeq = obs.Seq
	}
}

// bury writes a resolved trap alert's tombstone behind, in place of its
// deletion. The caller holds m.mu.
func (m *Manager) bury(k string, in *Instance) {
	t := tomb{seq: in.BusSeq, at: m.now()}
	m.tombs[k] = t
	b, err := json.Marshal(record{Instance: Instance{EventID: in.EventID, Device: in.Device, Key: in.Key, BusSeq: t.seq}, Rev: m.rev, ResolvedAt: t.at})
	if err != nil { // a plain struct always encodes; delete rather than keep stale state
		b = nil
	}
	m.behind.put(k, b, in.EventID, in.Device.Name)
}

// sweep deletes tombstones older than tombKeep, at most once a minute,
// unless a new alert took the key. The caller holds m.mu.
func (m *Manager) sweep(now time.Time) {
	if len(m.tombs) == 0 || now.Sub(m.lastSweep) < time.Minute {
		return
	}
	m.lastSweep = now
	for k, t := range m.tombs {
		if now.Sub(t.at) < tombKeep {
			continue
		}
		delete(m.tombs, k)
		if m.instances[k] == nil {
			m.behind.put(k, nil, "", "")
		}
	}
}
