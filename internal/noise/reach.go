package noise

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// devState is what the last ICMP rounds say of one device.
type devState struct {
	known   bool      // a round seen since start
	failing bool      // the last round got no answer
	since   time.Time // first failing round of the current streak
	last    time.Time // the last round
}

// Observe takes every observation before rules do. ICMP rounds update the
// device picture; a device that starts failing gets its parents probed at
// once (parent first). A site's own observation, when a site goes down or
// comes back, goes out through Options.Emit.
func (g *Gate) Observe(o observation.Observation) {
	if o.Source != observation.ICMP || o.Device == nil {
		return
	}
	up, _ := o.Vars["up"].(bool)
	g.mu.Lock()
	d := g.devs[o.Device.Name]
	if d == nil {
		d = &devState{}
		g.devs[o.Device.Name] = d
	}
	changed := !d.known || d.failing == up
	started := !up && (!d.known || !d.failing)
	d.known, d.last = true, o.Time
	if started {
		d.since = o.Time
	}
	d.failing = !up
	var probe []string
	if started {
		probe = g.pingedParentsLocked(o.Device)
	}
	g.rejudgeLocked(o.Device.Name, o.Time)
	if changed {
		if st := g.siteLocked(o.Device.Site); st != nil {
			st.dirty = true
		}
		if len(g.inv.Children(o.Device.Name)) > 0 {
			for _, st := range g.sites { // its children may be explained now, or no longer
				st.dirty = true
			}
		}
		g.poke() // held alerts may be decided now
	}
	derived := g.evaluateSitesLocked(o.Time)
	prober := g.prober
	g.mu.Unlock()
	if len(probe) > 0 && prober != nil {
		prober.ProbeNow(probe...)
	}
	for _, d := range derived {
		g.emitOne(d)
	}
}

// pingedParentsLocked are the device's parents that are pinged: only they
// can explain it.
func (g *Gate) pingedParentsLocked(d *inventory.Device) []string {
	var out []string
	for _, p := range g.inv.Parents(d) {
		if p.ICMP != nil {
			out = append(out, p.Name)
		}
	}
	return out
}

func (g *Gate) failingLocked(name string) bool {
	d := g.devs[name]
	return d != nil && d.failing
}

// parentExplainedLocked: the device has pinged parents and every one of
// them fails (it is down itself or unreachable behind its own).
func (g *Gate) parentExplainedLocked(d *inventory.Device) bool {
	parents := g.pingedParentsLocked(d)
	if len(parents) == 0 {
		return false
	}
	for _, p := range parents {
		if !g.failingLocked(p) {
			return false
		}
	}
	return true
}

// unreachableLocked: the device fails, and its parents or its site's
// outage explain it (SPEC 11.1, 11.2).
func (g *Gate) unreachableLocked(name string) bool {
	d, ok := g.inv.Device(name)
	if !ok || !g.failingLocked(name) {
		return false
	}
	return g.parentExplainedLocked(d) || g.siteOutageLocked(d.Site)
}

// causesLocked are what a device is unreachable behind: the failing
// ancestors that are down themselves (not unreachable), and its site when a
// site outage explains it.
func (g *Gate) causesLocked(d *inventory.Device) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(d *inventory.Device)
	walk = func(d *inventory.Device) {
		if seen[d.Name] {
			return // config rejects cycles; this only guards the walk
		}
		seen[d.Name] = true
		if g.parentExplainedLocked(d) {
			for _, p := range g.inv.Parents(d) {
				if p.ICMP == nil {
					continue
				}
				if g.unreachableLocked(p.Name) {
					walk(p)
				} else if !slices.Contains(out, p.Name) {
					out = append(out, p.Name)
				}
			}
			return
		}
		if g.siteOutageLocked(d.Site) && !slices.Contains(out, siteCause(d.Site)) {
			out = append(out, siteCause(d.Site))
		}
	}
	walk(d)
	sort.Strings(out)
	return out
}

func siteCause(site string) string { return "site " + site }

// verdictLocked reports whether every pinged parent of a device failing
// since t has been probed since (or is known to fail): then whether the
// device is unreachable is known.
func (g *Gate) verdictLocked(d *inventory.Device) bool {
	st := g.devs[d.Name]
	if st == nil || !st.failing {
		return true
	}
	for _, p := range g.pingedParentsLocked(d) {
		ps := g.devs[p]
		if ps == nil || !ps.known || (!ps.failing && ps.last.Before(st.since)) {
			return false
		}
	}
	return true
}

// parentRoundTrip bounds the wait for a verdict: the slowest pinged
// parent's timeout × count, plus a second (SPEC 11.1).
func (g *Gate) parentRoundTripLocked(d *inventory.Device) time.Duration {
	var rt time.Duration
	for _, p := range g.inv.Parents(d) {
		if p.ICMP != nil {
			rt = max(rt, p.ICMP.Timeout*time.Duration(max(p.ICMP.Count, 1)))
		}
	}
	return rt + time.Second
}

// affectedLocked lists the devices unreachable behind the alert's subject:
// behind a device, those with it among their causes; for a site, the site's.
func (g *Gate) affectedLocked(subject *inventory.Device) []string {
	cause := subject.Name
	if subject.Role == inventory.SiteRole && subject.Address == "" {
		cause = siteCause(subject.Name)
	}
	var out []string
	for _, d := range g.inv.Devices() {
		if d.Name != subject.Name && g.unreachableLocked(d.Name) && slices.Contains(g.causesLocked(d), cause) {
			out = append(out, d.Name)
		}
	}
	return out
}

// affectedDetail is details["Affected Devices"]: "23: acc-sw7, acc-sw8, …".
func affectedDetail(names []string) string {
	const shown = 10
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(names)))
	b.WriteString(": ")
	b.WriteString(strings.Join(names[:min(shown, len(names))], ", "))
	if len(names) > shown {
		b.WriteString(", …")
	}
	return b.String()
}
