package config

import (
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validate checks the defaulted config, each problem at the offending key's
// line. Messages never hold a secret's value.
func (l *loader) validate(c *Config) {
	l.validateTop(c)
	l.validateAPI(c)
	l.validateICMP(c.ICMP)
	l.validateSNMP(c)
	l.validateTraps(c)
	l.validateDevices(c)
	l.validateDestinations(c)
	l.checkOutbound(c)
	l.validateSubscriptions(c)
	l.validateNoise(c)
	l.validateMaintenance(c)
	l.validateCluster(c)
	l.validateEdge(c)
}

func (l *loader) validateTop(c *Config) {
	listenErr := checkListen(c.HTTP.Listen)
	if listenErr != nil {
		l.bad(l.line("http", "listen"), "http: listen %v", listenErr)
	}
	switch u, err := url.Parse(c.ExternalURL); {
	case listenErr != nil && !l.has("external_url"):
		// The default is built from http.listen: reported there.
	case err != nil:
		l.bad(l.line("external_url"), "external_url is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		l.bad(l.line("external_url"), "external_url %s must be an absolute http:// or https:// URL", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		l.bad(l.line("external_url"), "external_url %s must not have a query or fragment: alert paths are appended to it", u.Redacted())
	}
	if c.History.Retention <= 0 {
		l.bad(l.line("history", "retention"), "history: retention must be a positive duration such as 720h (30 days)")
	}
	if c.Store.Sync != defaultStoreSync {
		if d, err := time.ParseDuration(c.Store.Sync); err != nil || d <= 0 {
			l.bad(l.line("store", "sync"), "store: sync %q must be always or a positive duration such as 1s", c.Store.Sync)
		}
	}
	for i, g := range c.Rules {
		if g == "" {
			l.bad(l.line("rules", i), "rules[%d] is empty", i)
		} else if _, err := filepath.Match(g, ""); err != nil {
			l.bad(l.line("rules", i), "rules[%d] %q: %v", i, g, err)
		}
	}
	if c.HTTP.Token == "" && c.HTTP.TokenFile == "" && l.has("http", "token") {
		l.bad(l.line("http", "token"), "http: token is empty")
	}
}

func (l *loader) validateICMP(ic ICMP) {
	switch ic.Privileged {
	case PrivilegedAuto, PrivilegedTrue, PrivilegedFalse:
	default:
		l.bad(l.line("icmp", "privileged"), "icmp: privileged %q must be auto, true or false", string(ic.Privileged))
	}
	l.checkRound("icmp", ic, []any{"icmp"}, func(string) bool { return true })
}

// checkRound checks ICMP settings found under path: the values the section
// sets itself (own), and that a round ends before the next one begins.
func (l *loader) checkRound(where string, ic ICMP, path []any, own func(key string) bool) {
	at := func(key string) int { return l.line(append(slices.Clone(path), key)...) }
	valid := true
	if ic.Interval <= 0 {
		valid = false
		if own("interval") {
			l.bad(at("interval"), "%s: interval must be positive", where)
		}
	}
	if ic.Timeout <= 0 {
		valid = false
		if own("timeout") {
			l.bad(at("timeout"), "%s: timeout must be positive", where)
		}
	}
	if ic.Count < 1 || ic.Count > 100 {
		valid = false
		if own("count") {
			l.bad(at("count"), "%s: count %d must be 1..100 echoes per round", where, ic.Count)
		}
	}
	if !valid {
		return
	}
	// Worst case, every echo is lost and waits its whole timeout.
	round := time.Duration(ic.Count)*ic.Timeout.D() + time.Duration(ic.Count-1)*ICMPEchoSpacing
	if round <= ic.Interval.D() {
		return
	}
	line := at("interval")
	for _, k := range []string{"timeout", "count", "interval"} {
		if own(k) && l.has(append(slices.Clone(path), k)...) {
			line = at(k)
			break
		}
	}
	parts := ""
	if ic.Count > 1 {
		parts = fmt.Sprintf(" (%d echoes × %s timeout + %d × %s spacing)", ic.Count, ic.Timeout, ic.Count-1, ICMPEchoSpacing)
	}
	l.bad(line, "%s: a round takes up to %s%s, longer than the %s interval: a round must end before the next one starts; raise interval or lower timeout or count",
		where, round, parts, ic.Interval)
}

var (
	authProtocols = []string{"MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"}
	privProtocols = []string{"DES", "AES", "AES192", "AES256", "AES192C", "AES256C"}
)

// minPassphrase is RFC 3414's minimum for SNMPv3 passphrases; net-snmp
// refuses shorter ones.
const minPassphrase = 8

var (
	customOIDName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	mibName         = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*::[A-Za-z][A-Za-z0-9_-]*$`)
	numericOID      = regexp.MustCompile(`^\.?[0-9]+(\.[0-9]+)+$`)
	builtinSNMPVars = map[string]bool{"cpu": true, "mem": true, "uptime_s": true, "uptime_reset": true, "device": true}
)

func (l *loader) validateSNMP(c *Config) {
	s := c.SNMP
	if s.PollInterval <= 0 {
		l.bad(l.line("snmp", "poll_interval"), "snmp: poll_interval must be positive")
	}
	if s.Timeout <= 0 {
		l.bad(l.line("snmp", "timeout"), "snmp: timeout must be positive")
	}
	if s.Retries < 0 {
		l.bad(l.line("snmp", "retries"), "snmp: retries %d must not be negative", s.Retries)
	}
	for _, name := range sortedKeys(s.OIDs) {
		at := l.line("snmp", "oids", name)
		switch {
		case !customOIDName.MatchString(name):
			l.bad(at, "snmp: oids name %q must be an identifier (letters, digits, _), as rules use it as a variable", name)
		case builtinSNMPVars[name]:
			l.bad(at, "snmp: oids name %q is a built-in variable", name)
		}
		if !numericOID.MatchString(s.OIDs[name]) {
			l.bad(at, "snmp: oids %s: %q is not a numeric OID such as .1.3.6.1.2.1.1.3.0", name, s.OIDs[name])
		}
	}
	for _, name := range sortedKeys(s.Profiles) {
		p := s.Profiles[name]
		where := "snmp profile " + strconv.Quote(name)
		at := func(keys ...any) int { return l.line(append([]any{"snmp", "profiles", name}, keys...)...) }
		if p.Port < 1 || p.Port > 65535 {
			l.bad(at("port"), "%s: port %d must be 1..65535", where, p.Port)
		}
		switch p.Version {
		case "1", "2c":
			if p.Community == "" && p.CommunityFile == "" {
				l.bad(at("version"), "%s: version %s needs community or community_file", where, p.Version)
			}
			for _, k := range []string{"user", "auth", "priv"} {
				if l.has("snmp", "profiles", name, k) {
					l.bad(at(k), "%s: %s is for version 3 only", where, k)
				}
			}
		case "3":
			if p.User == "" {
				l.bad(at("user"), "%s: version 3 needs user", where)
			}
			for _, k := range []string{"community", "community_file"} {
				if l.has("snmp", "profiles", name, k) {
					l.bad(at(k), "%s: %s is for versions 1 and 2c only; version 3 uses user, auth and priv", where, k)
				}
			}
			l.checkKey(where, "auth", p.Auth, authProtocols, at)
			l.checkKey(where, "priv", p.Priv, privProtocols, at)
			if p.Priv != nil && p.Auth == nil {
				l.bad(at("priv"), "%s: priv needs auth (SNMPv3 has no privacy without authentication)", where)
			}
		case "":
			l.bad(at("version"), "%s: version is required: 1, 2c or 3", where)
		default:
			l.bad(at("version"), "%s: version %q must be 1, 2c or 3", where, p.Version)
		}
	}
}

// checkKey checks an SNMPv3 auth or priv block. Protocol names are matched
// without regard to case and stored in their canonical spelling.
func (l *loader) checkKey(where, name string, k *SNMPKey, protocols []string, at func(...any) int) {
	if k == nil {
		return
	}
	i := slices.IndexFunc(protocols, func(p string) bool { return strings.EqualFold(p, k.Protocol) })
	switch {
	case k.Protocol == "":
		l.bad(at(name), "%s: %s needs protocol: %s", where, name, strings.Join(protocols, ", "))
	case i < 0:
		l.bad(at(name, "protocol"), "%s: %s protocol %q must be one of %s", where, name, k.Protocol, strings.Join(protocols, ", "))
	default:
		k.Protocol = protocols[i]
	}
	switch {
	case k.Passphrase == "" && k.PassphraseFile == "":
		l.bad(at(name), "%s: %s needs passphrase or passphrase_file", where, name)
	case k.Passphrase != "" && len(k.Passphrase) < minPassphrase:
		l.bad(at(name, passphraseKey(k)), "%s: %s passphrase is shorter than %d characters (RFC 3414 minimum)", where, name, minPassphrase)
	}
}

func passphraseKey(k *SNMPKey) string {
	if k.PassphraseFile != "" {
		return "passphrase_file"
	}
	return "passphrase"
}

func (l *loader) validateTraps(c *Config) {
	t := c.Traps
	if !l.has("traps") {
		return // no receiver
	}
	at := func(keys ...any) int { return l.line(append([]any{"traps"}, keys...)...) }
	if err := checkListen(t.Listen); err != nil {
		l.bad(at("listen"), "traps: listen %v", err)
	}
	for i, cm := range t.Communities {
		if cm == "" {
			l.bad(at("communities", i), "traps: communities[%d] is empty", i)
		}
	}
	for i, u := range t.Users {
		p, ok := c.SNMP.Profiles[u]
		switch {
		case !ok:
			l.bad(at("users", i), "traps: users[%d] %q is not a profile under snmp.profiles", i, u)
		case p.Version != "3":
			l.bad(at("users", i), "traps: users[%d] %q is an SNMP version %s profile; users must name version 3 profiles", i, u, p.Version)
		}
	}
	if len(t.Communities) == 0 && len(t.Users) == 0 {
		l.bad(at(), "traps: set communities or users (or both): with neither, every trap is dropped")
	}
	if t.EngineID != "" {
		h := strings.TrimPrefix(strings.TrimPrefix(t.EngineID, "0x"), "0X")
		b, err := hex.DecodeString(h)
		switch {
		case err != nil:
			l.bad(at("engine_id"), "traps: engine_id %q must be hexadecimal, optionally with a 0x prefix", t.EngineID)
		case len(b) < 5 || len(b) > 32:
			l.bad(at("engine_id"), "traps: engine_id is %d bytes; an SNMP engine ID is 5 to 32 bytes", len(b))
		}
	}
	switch t.UnknownSources {
	case "accept", "drop":
	default:
		l.bad(at("unknown_sources"), "traps: unknown_sources %q must be accept or drop", t.UnknownSources)
	}
	for _, oid := range sortedKeys(t.MIB) {
		switch name := t.MIB[oid]; {
		case !numericOID.MatchString(oid):
			l.bad(at("mib", oid), "traps: mib key %q is not a numeric OID such as .1.3.6.1.4.1.9.9.41.2.0.1", oid)
		case !mibName.MatchString(name):
			l.bad(at("mib", oid), "traps: mib name %q for %s must look like MIB-NAME::objectName", name, oid)
		}
	}
	if t.RateLimitPerSource < 0 {
		l.bad(at("rate_limit_per_source"), "traps: rate_limit_per_source %d must not be negative (0 means no limit)", t.RateLimitPerSource)
	}
	if t.MaxUnknownSources < 1 {
		l.bad(at("max_unknown_sources"), "traps: max_unknown_sources %d must be at least 1 (to refuse every unknown sender, set unknown_sources: drop)", t.MaxUnknownSources)
	}
	if t.UnknownExpire <= 0 {
		l.bad(at("unknown_expire"), "traps: unknown_expire must be a positive duration such as 24h")
	}
	for i, r := range t.Relays {
		if _, err := parsePrefix(r); err != nil {
			l.bad(at("relays", i), "traps: relays[%d] %q is not an IP address or prefix such as 10.0.0.5 or 10.1.0.0/16", i, r)
		}
	}
}

// named checks the name of entry i of the list at key: required, and
// unique (first maps each name to its first entry's index). It returns how
// messages name the entry.
func (l *loader) named(kind, key string, i int, name string, first map[string]int) string {
	where := itemWhere(kind, name, fmt.Sprintf("%s[%d]", key, i))
	switch j, dup := first[name]; {
	case name == "":
		l.bad(l.line(key, i, "name"), "%s: name is required", where)
	case dup:
		l.bad(l.line(key, i, "name"), "duplicate %s name %q (first at line %d)", kind, name, l.line(key, j))
	default:
		first[name] = i
	}
	return where
}

func (l *loader) validateDevices(c *Config) {
	first := map[string]int{} // name → index
	for i, d := range c.Devices {
		where := l.named("device", "devices", i, d.Name, first)
		at := func(keys ...any) int { return l.line(append([]any{"devices", i}, keys...)...) }
		switch {
		case d.Address == "":
			l.bad(at("address"), "%s: address is required", where)
		case !validAddress(d.Address):
			l.bad(at("address"), "%s: address %q is not an IPv4 or IPv6 address or a DNS name", where, d.Address)
		}
		if d.SNMP != "" {
			if _, ok := c.SNMP.Profiles[d.SNMP]; !ok {
				l.bad(at("snmp"), "%s: snmp profile %q is not defined under snmp.profiles", where, d.SNMP)
			}
		}
		l.validateDeviceICMP(c, d, where, i)
	}
	for i, d := range c.Devices {
		for j, p := range d.Parents {
			if _, ok := first[p]; !ok {
				l.bad(l.line("devices", i, "parents", j), "%s: parent %q is not a device", itemWhere("device", d.Name, fmt.Sprintf("devices[%d]", i)), p)
			}
		}
	}
	l.checkParentCycles(c, first)
}

func (l *loader) validateDeviceICMP(c *Config, d Device, where string, i int) {
	path := []any{"devices", i, "icmp"}
	own := func(k string) bool { return l.has(append(slices.Clone(path), k)...) }
	if !own("interval") && !own("timeout") && !own("count") {
		return
	}
	// EffectiveICMP skips zero and negative overrides; the ones set must be
	// checked as written. Broken inherited values are reported under icmp.
	eff := c.EffectiveICMP(d)
	if own("interval") {
		eff.Interval = d.ICMP.Interval
	}
	if own("timeout") {
		eff.Timeout = d.ICMP.Timeout
	}
	if own("count") {
		eff.Count = d.ICMP.Count
	}
	l.checkRound(where+" icmp", eff, path, own)
}

// checkParentCycles reports each parent cycle once, at the parents entry
// that closes it.
func (l *loader) checkParentCycles(c *Config, index map[string]int) {
	const (
		unvisited = iota
		inStack
		done
	)
	state := make([]int, len(c.Devices))
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		state[i] = inStack
		stack = append(stack, i)
		d := c.Devices[i]
		for j, p := range d.Parents {
			k, ok := index[p]
			if !ok {
				continue
			}
			switch state[k] {
			case unvisited:
				visit(k)
			case inStack:
				start := slices.Index(stack, k)
				var names []string
				for _, s := range stack[start:] {
					names = append(names, c.Devices[s].Name)
				}
				names = append(names, p)
				l.bad(l.line("devices", i, "parents", j), "device %q: parents form a cycle: %s", d.Name, strings.Join(names, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i, d := range c.Devices {
		// Duplicate names are reported already; walk each name's first device.
		if state[i] == unvisited && d.Name != "" && index[d.Name] == i {
			visit(i)
		}
	}
}

func (l *loader) validateDestinations(c *Config) {
	first := map[string]int{}
	for i, d := range c.Destinations {
		where := l.named("destination", "destinations", i, d.Name, first)
		at := func(keys ...any) int { return l.line(append([]any{"destinations", i}, keys...)...) }
		if d.Type == "" {
			l.bad(at("type"), "%s: type is required (webhook, slack, pagerduty, log, …)", where)
		}
		if d.Timeout < 0 {
			l.bad(at("timeout"), "%s: timeout must not be negative", where)
		}
		for _, r := range []struct {
			key string
			v   Duration
		}{{"initial", d.Retry.Initial}, {"max", d.Retry.Max}, {"max_age", d.Retry.MaxAge}, {"probe_interval", d.Retry.ProbeInterval}} {
			if r.v <= 0 {
				l.bad(at("retry", r.key), "%s: retry %s must be positive", where, r.key)
			}
		}
		if d.Retry.Initial > 0 && d.Retry.Initial > d.Retry.Max {
			l.bad(at("retry", "initial"), "%s: retry initial %s is longer than retry max %s", where, d.Retry.Initial, d.Retry.Max)
		}
		if d.RateLimit < 0 || math.IsNaN(d.RateLimit) || math.IsInf(d.RateLimit, 0) {
			l.bad(at("rate_limit"), "%s: rate_limit must be a number >= 0 (notifications per second; 0 means no limit)", where)
		}
		if d.ProxyURL != "" {
			// The URL may hold credentials: never quote it unredacted.
			u, err := url.Parse(d.ProxyURL)
			switch {
			case err != nil:
				l.bad(at("proxy_url"), "%s: proxy_url is not a valid URL", where)
			case !slices.Contains([]string{"http", "https", "socks5", "socks5h"}, u.Scheme) || u.Host == "":
				l.bad(at("proxy_url"), "%s: proxy_url %s must be an http://, https:// or socks5:// URL with a host", where, u.Redacted())
			}
		}
	}
}

var categories = []string{"ALERT", "ERROR", "WARN", "INFO"}

func (l *loader) validateSubscriptions(c *Config) {
	dests := map[string]bool{}
	for _, d := range c.Destinations {
		dests[d.Name] = true
	}
	first := map[string]int{}
	for i, s := range c.Subscriptions {
		where := l.named("subscription", "subscriptions", i, s.Name, first)
		at := func(keys ...any) int { return l.line(append([]any{"subscriptions", i}, keys...)...) }
		if len(s.Destinations) == 0 {
			l.bad(at("destinations"), "%s: needs at least one destination", where)
		}
		for j, d := range s.Destinations {
			if !dests[d] {
				l.bad(at("destinations", j), "%s: unknown destination %q", where, d)
			}
		}
		f := s.Filter
		for j, sev := range f.Severities {
			if sev < 1 || sev > 5 {
				l.bad(at("filter", "severities", j), "%s filter: severity %d must be 1..5", where, sev)
			}
		}
		for j, cat := range f.Categories {
			if !slices.Contains(categories, cat) {
				l.bad(at("filter", "categories", j), "%s filter: category %q must be one of %s", where, cat, strings.Join(categories, ", "))
			}
		}
		l.checkGlobs(where+" filter", []any{"subscriptions", i, "filter"}, f.Selector, f.EventIDs)
	}
}

// checkGlobs reports each invalid device or event_ids glob, under the
// entry at keys.
func (l *loader) checkGlobs(where string, keys []any, sel Selector, eventIDs []string) {
	for _, g := range (Match{Selector: sel, EventIDs: eventIDs}).InvalidGlobs() {
		l.bad(l.line(append(slices.Clone(keys), g.Key, g.Index)...), "%s: %s", where, g)
	}
}

func (l *loader) validateMaintenance(c *Config) {
	first := map[string]int{}
	for i, m := range c.Maintenance {
		where := l.named("maintenance", "maintenance", i, m.Name, first)
		at := func(keys ...any) int { return l.line(append([]any{"maintenance", i}, keys...)...) }
		has := func(key string) bool { return l.has("maintenance", i, key) }
		if m.Match.Empty() {
			l.bad(at("match"), `%s: match is empty, which would mute every alert; name devices, sites, roles, labels or event_ids (devices: ["*"] means every device)`, where)
		}
		l.checkGlobs(where+" match", []any{"maintenance", i, "match"}, m.Match.Selector, m.Match.EventIDs)
		if _, err := time.LoadLocation(m.Timezone); err != nil {
			l.bad(at("timezone"), "%s: timezone %q is not a known IANA time zone such as Europe/Berlin", where, m.Timezone)
		}
		every, once := has("every"), has("start") || has("end")
		switch {
		case every && once:
			l.bad(at("every"), "%s: every and start/end exclude each other: every repeats the window, start and end give a single one", where)
		case every:
			l.checkRecurring(where, m, at, has)
		case once:
			l.checkOnce(where, m, at, has)
		default:
			l.bad(at(), "%s: set every (with duration) for a recurring window, or start and end for a single one", where)
		}
	}
}

// checkRecurring checks a window given by every and duration.
func (l *loader) checkRecurring(where string, m Maintenance, at func(keys ...any) int, has func(string) bool) {
	r, err := ParseEvery(m.Every)
	if err != nil {
		l.bad(at("every"), `%s: every %q: %v; write "sun 02:00" (weekly, mon..sun) or "02:00" (daily)`, where, m.Every, err)
	}
	switch {
	case !has("duration"):
		l.bad(at("every"), "%s: every needs duration, how long each window lasts", where)
	case m.Duration <= 0:
		l.bad(at("duration"), "%s: duration must be positive", where)
	case err == nil && m.Duration.D() >= r.Period():
		l.bad(at("duration"), "%s: duration %s must be shorter than a %s, the time from one window to the next; use start and end for a longer one",
			where, m.Duration, map[bool]string{true: "day", false: "week"}[r.Daily])
	}
}

// checkOnce checks a window given by start and end.
func (l *loader) checkOnce(where string, m Maintenance, at func(keys ...any) int, has func(string) bool) {
	if has("duration") {
		l.bad(at("duration"), "%s: duration goes with every; a single window ends at end", where)
	}
	parse := func(key, other, v string) (time.Time, bool) {
		if v == "" {
			l.bad(at(other), "%s: %s needs %s", where, other, key)
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			l.bad(at(key), "%s: %s %q must be an RFC 3339 time such as 2026-12-12T22:00:00+01:00", where, key, v)
		}
		return t, err == nil
	}
	start, okStart := parse("start", "end", m.Start)
	end, okEnd := parse("end", "start", m.End)
	if okStart && okEnd && !end.After(start) {
		l.bad(at("end"), "%s: end %s must be after start %s", where, m.End, m.Start)
	}
}

// checkListen validates a host:port listen address; port 0 picks a free
// port, as tests do.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q must be host:port, such as 127.0.0.1:9720 or [::1]:9720", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p > 65535 {
		return fmt.Errorf("%q: port %q must be a number 0..65535", addr, port)
	}
	if host != "" && !validAddress(host) {
		return fmt.Errorf("%q: host %q is not an IP address or a DNS name", addr, host)
	}
	return nil
}

// validAddress accepts an IPv4 or IPv6 address (with an optional zone) or
// a DNS name.
func validAddress(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return validDNSName(s)
}

// validDNSName checks DNS name syntax: dot-separated labels of 1..63
// letters, digits, hyphens (not at either end) or underscores, at most 253
// characters, optionally ending with a dot. A name whose last label is all
// digits is a mistyped IPv4 address (10.0.0.256), not a name.
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, lb := range labels {
		if lb == "" || len(lb) > 63 || lb[0] == '-' || lb[len(lb)-1] == '-' {
			return false
		}
		for i := 0; i < len(lb); i++ {
			c := lb[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}
