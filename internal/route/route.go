// Package route matches events to destinations by subscription, as DNA
// Center subscriptions do.
package route

import (
	"path"
	"slices"
	"sort"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
)

// Target is a destination an event goes to.
type Target struct {
	Destination string
	// SendResolved: at least one matching subscription wants the resolve.
	SendResolved bool
}

// Router holds the subscriptions of one config generation.
type Router struct {
	subs []config.Subscription
}

// New builds a router. Subscriptions are validated by config.
func New(subs []config.Subscription) *Router {
	return &Router{subs: subs}
}

// Match returns the destinations for ev, each once, sorted by name.
func (r *Router) Match(ev event.Event) []Target {
	byDest := map[string]bool{}
	for _, s := range r.subs {
		if !matches(s.Filter, ev) {
			continue
		}
		sendResolved := s.SendResolved == nil || *s.SendResolved
		for _, d := range s.Destinations {
			byDest[d] = byDest[d] || sendResolved
		}
	}
	out := make([]Target, 0, len(byDest))
	for d, sr := range byDest {
		out = append(out, Target{Destination: d, SendResolved: sr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

func matches(f config.Filter, ev event.Event) bool {
	if len(f.EventIDs) > 0 && !slices.ContainsFunc(f.EventIDs, func(g string) bool {
		ok, _ := path.Match(g, ev.EventID)
		return ok
	}) {
		return false
	}
	if len(f.Severities) > 0 && !slices.Contains(f.Severities, ev.Severity) {
		return false
	}
	if len(f.Categories) > 0 && !slices.Contains(f.Categories, ev.Category) {
		return false
	}
	return ev.Device.In(f.Selector)
}
