package devstate

import (
	"math"
	"time"
)

// Point is one minute of a device's ICMP results, for the console's chart
// of the last hour: RTT of the replies (0 when none came back) and the loss
// over every echo sent in that minute.
type Point struct {
	At       time.Time `json:"at"` // the minute's start
	RTTMinMs float64   `json:"rtt_min_ms"`
	RTTAvgMs float64   `json:"rtt_avg_ms"`
	RTTMaxMs float64   `json:"rtt_max_ms"`
	// LossPct is over every echo sent that minute; 100 when its rounds
	// could send none (a DNS or send failure counts as no answer, as
	// rules see it).
	LossPct float64 `json:"loss_pct"`
	Rounds  int     `json:"rounds"` // ICMP rounds that minute
	Sent    int     `json:"sent"`   // echoes sent that minute
	Recv    int     `json:"recv"`   // and answered
}

// SeriesMinutes is how many minutes a device's series holds: the last hour.
const SeriesMinutes = 60

// series is a device's last hour as a fixed ring of one bucket per minute:
// the bucket of unix minute m is buckets[m % SeriesMinutes]. Every bucket
// holds a minute of (newest-SeriesMinutes, newest] or is empty, since
// moving newest on empties the buckets it passes; a bucket therefore needs
// no minute of its own, and a device costs the same whatever its interval.
type series struct {
	newest  int64 // unix minute of the newest round; 0 before the first
	buckets [SeriesMinutes]bucket
}

// bucket is one minute, 20 bytes: counts saturate at 65535 rounds or
// echoes (an interval under a millisecond); RTTs are whole microseconds.
type bucket struct {
	rounds, sent, recv     uint16
	rttMin, rttMax, rttSum uint32 // µs, over the replies
}

// round is what a bucket takes of an ICMP observation.
type round struct {
	sent, recv          int
	minMs, avgMs, maxMs float64
}

// roundOf reads an ICMP observation's variables; an observation without
// rtt_min_ms/rtt_max_ms (from a test or an older source) counts its mean as
// both.
func roundOf(vars map[string]any) round {
	var r round
	r.sent, _ = vars["sent"].(int)
	r.recv, _ = vars["recv"].(int)
	r.avgMs, _ = vars["rtt_ms"].(float64)
	var ok bool
	if r.minMs, ok = vars["rtt_min_ms"].(float64); !ok {
		r.minMs = r.avgMs
	}
	if r.maxMs, ok = vars["rtt_max_ms"].(float64); !ok {
		r.maxMs = r.avgMs
	}
	return r
}

func unixMinute(t time.Time) int64 { return t.Unix() / 60 }

func slot(minute int64) int { return int((minute%SeriesMinutes + SeriesMinutes) % SeriesMinutes) }

// add counts a round that started at t. A round more than an hour older
// than the newest is left out of the chart (it still counts everywhere
// else); one far ahead empties the buckets in between.
func (s *series) add(t time.Time, r round) {
	m := unixMinute(t)
	switch {
	case m > s.newest:
		for gap := min(m-s.newest, SeriesMinutes); gap > 0; gap-- {
			s.buckets[slot(m-gap+1)] = bucket{}
		}
		s.newest = m
	case m <= s.newest-SeriesMinutes:
		return
	}
	b := &s.buckets[slot(m)]
	if int(b.rounds) >= math.MaxUint16 || int(b.sent)+r.sent > math.MaxUint16 {
		return // saturated: the minute shows its first 65535 echoes
	}
	b.rounds++
	b.sent += uint16(max(r.sent, 0))
	if r.recv <= 0 {
		return
	}
	lo, hi := micros(r.minMs), micros(r.maxMs)
	if b.recv == 0 || lo < b.rttMin {
		b.rttMin = lo
	}
	b.rttMax = max(b.rttMax, hi)
	b.rttSum = uint32(min(uint64(b.rttSum)+uint64(micros(r.avgMs))*uint64(r.recv), math.MaxUint32))
	b.recv += uint16(min(r.recv, r.sent))
}

// micros is a duration in milliseconds as whole microseconds, within
// uint32.
func micros(ms float64) uint32 {
	return uint32(min(max(math.Round(ms*1000), 0), math.MaxUint32))
}

// points are the minutes with rounds in the hour up to now, oldest first.
func (s *series) points(now time.Time) []Point {
	out := make([]Point, 0, SeriesMinutes)
	last := unixMinute(now)
	for m := last - SeriesMinutes + 1; m <= last; m++ {
		if m > s.newest || m <= s.newest-SeriesMinutes {
			continue
		}
		b := s.buckets[slot(m)]
		if b.rounds == 0 {
			continue
		}
		p := Point{At: time.Unix(m*60, 0).UTC(), Rounds: int(b.rounds), Sent: int(b.sent), Recv: int(b.recv), LossPct: 100}
		if b.sent > 0 {
			p.LossPct = 100 * float64(b.sent-b.recv) / float64(b.sent)
		}
		if b.recv > 0 {
			p.RTTMinMs = float64(b.rttMin) / 1000
			p.RTTMaxMs = float64(b.rttMax) / 1000
			p.RTTAvgMs = math.Round(float64(b.rttSum)/float64(b.recv)) / 1000
		}
		out = append(out, p)
	}
	return out
}
