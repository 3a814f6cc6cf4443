package noise

import (
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
)

// siteState is what noise control knows of one site (SPEC 11.2).
type siteState struct {
	outage  bool
	told    bool      // its state was handed to rules at least once
	dirty   bool      // a device of the site changed: evaluate again
	checked time.Time // last evaluation
}

// siteEvery bounds how often a site is evaluated while its devices change:
// an outage of thousands of devices costs a few evaluations, not one each.
const siteEvery = 250 * time.Millisecond

func (g *Gate) siteLocked(name string) *siteState {
	if name == "" {
		return nil
	}
	st := g.sites[name]
	if st == nil {
		st = &siteState{dirty: true}
		g.sites[name] = st
	}
	return st
}

func (g *Gate) siteOutageLocked(name string) bool {
	st := g.sites[name]
	return st != nil && st.outage && !g.cfg.SiteOutage.Off
}

// evaluateSitesLocked judges the sites whose devices changed, at most every
// siteEvery each, and returns the observations of sites whose state is new
// to rules: a site raises NETWORK-SITES-1-501 when, within the window, at
// least min_devices and ratio of its pinged devices start failing without a
// parent to explain them; it clears when fewer than min_devices stay down.
// A site's first state goes to rules only once every pinged device of it
// has answered or failed a round, so a restart does not resolve an outage
// before it is seen again.
func (g *Gate) evaluateSitesLocked(now time.Time) []observation.Observation {
	var out []observation.Observation
	for name, st := range g.sites {
		if !st.dirty || now.Sub(st.checked) < siteEvery {
			continue
		}
		st.dirty, st.checked = false, now
		siteDev, ok := g.inv.SiteDevice(name)
		if !ok {
			delete(g.sites, name)
			continue
		}
		var pinged, known int
		var down, recent []string
		for _, d := range g.inv.Site(name) {
			if d.ICMP == nil {
				continue
			}
			pinged++
			ds := g.devs[d.Name]
			if ds == nil || !ds.known {
				continue
			}
			known++
			if !ds.failing || g.parentExplainedLocked(d) {
				continue
			}
			down = append(down, d.Name)
			if now.Sub(ds.since) <= g.cfg.SiteOutage.Window.D() {
				recent = append(recent, d.Name)
			}
		}
		s := g.cfg.SiteOutage
		outage := st.outage
		switch {
		case s.Off:
			outage = false
		case !st.outage:
			outage = len(recent) >= s.MinDevices && float64(len(recent)) >= s.Ratio*float64(pinged)
		default:
			outage = len(down) >= s.MinDevices
		}
		if outage == st.outage && (st.told || known < pinged) {
			continue
		}
		if outage != st.outage {
			g.log.Warn(map[bool]string{true: "site outage: its failing devices are suppressed behind it", false: "site outage over"}[outage],
				"site", name, "down", len(down), "pinged", pinged)
		}
		st.outage, st.told = outage, true
		ratio := 0.0
		if pinged > 0 {
			ratio = float64(len(down)) / float64(pinged)
		}
		out = append(out, observation.Observation{Source: observation.Site, Device: siteDev, Time: now, Vars: map[string]any{
			"site": name, "outage": outage, "down": len(down), "pinged": pinged, "ratio": ratio, "devices": strings.Join(down, ", "),
		}})
		g.poke() // held alerts of its devices may be decided now
	}
	return out
}
