// Package config is the configuration as data: the types of
// nocbridge.yaml, defaults applied in one place (defaults.go), *_file
// secrets that never print, validation with every error at once as
// FILE:LINE, and the one strict YAML decoder (Strict) that destinations and
// rule files use too. It imports no other nocbridge package.
package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole of nocbridge.yaml after defaults and validation.
type Config struct {
	// File is the absolute path the config was loaded from; BaseDir its folder,
	// against which relative paths were resolved.
	File    string `yaml:"-"`
	BaseDir string `yaml:"-"`

	StateDir    string   `yaml:"state_dir"`
	ExternalURL string   `yaml:"external_url"`
	HTTP        HTTP     `yaml:"http"`
	Rules       []string `yaml:"rules"` // globs, resolved against BaseDir
	Store       Store    `yaml:"store"`
	// Cluster joins this node to others (SPEC 9); nil runs one node alone.
	Cluster *Cluster `yaml:"cluster"`
	// Edge runs this node as an edge site's collector, a NATS leaf node of
	// the hub (SPEC 9); Hub makes this node the hub edge sites connect to.
	Edge *Edge `yaml:"edge"`
	Hub  *Hub  `yaml:"hub"`

	ICMP  ICMP  `yaml:"icmp"`
	SNMP  SNMP  `yaml:"snmp"`
	Traps Traps `yaml:"traps"`

	Devices       []Device       `yaml:"devices"`
	Destinations  []Destination  `yaml:"destinations"`
	Subscriptions []Subscription `yaml:"subscriptions"`

	Noise       Noise         `yaml:"noise"` // noise control (SPEC 11)
	Maintenance []Maintenance `yaml:"maintenance"`
	History     History       `yaml:"history"` // alert history (SPEC 12)

	// Warnings are the risky settings found (Warning): the config's own,
	// then the destination types' once their notifiers are built.
	Warnings Warnings `yaml:"-"`
}

// HTTP is the API / metrics listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// Bearer token required by mutating endpoints, and by every endpoint
	// but /healthz, /readyz and /metrics when Listen is not loopback.
	Token     Secret `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// MetricsAuth makes /metrics need the token too.
	MetricsAuth bool `yaml:"metrics_auth"`
	// TLS serves HTTPS; nil serves plain HTTP.
	TLS *HTTPTLS `yaml:"tls"`
}

// HTTPTLS is the API's certificate (with its chain) and private key, PEM.
type HTTPTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Scheme is https with TLS, else http.
func (h HTTP) Scheme() string {
	if h.TLS != nil {
		return "https"
	}
	return "http"
}

// Store tunes the embedded JetStream store.
type Store struct {
	// Sync is "always" (default: fsync every write) or a Go duration for a
	// periodic sync, trading durability on power loss for throughput.
	Sync string `yaml:"sync"`
	// NATSURL uses an existing NATS (JetStream) server or cluster instead
	// of the embedded server: nats://host:4222 or tls://host:4222, several
	// comma-separated. It may hold credentials, which never print.
	NATSURL string `yaml:"nats_url"`
}

// Cluster is the cluster: block (SPEC 9): the embedded NATS servers of the
// nodes route to each other and form one JetStream cluster. With
// store.nats_url only name, node and down_when apply (the NATS cluster is
// someone else's): listen, peers and tls are then errors.
type Cluster struct {
	Name     string      `yaml:"name"`      // NATS cluster name, the same on every node
	Node     string      `yaml:"node"`      // this node's name, unique in the cluster
	Listen   string      `yaml:"listen"`    // host:port of the route listener
	Peers    []string    `yaml:"peers"`     // nats://host:port of the other nodes' route listeners
	TLS      *ClusterTLS `yaml:"tls"`       // mutual TLS on the routes; nil: plain
	DownWhen DownWhen    `yaml:"down_when"` // how many vantage points must see a device fail
}

// ClusterTLS is the routes' mutual TLS: this node's certificate and key and
// the CA that signed every node's, PEM.
type ClusterTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

// DownWhen is cluster.down_when: all | majority.
type DownWhen string

const (
	DownWhenAll      DownWhen = "all"
	DownWhenMajority DownWhen = "majority"
)

// History is how long the alert history (each alert's transitions, delivery
// attempts and noise-control decisions) is kept in the store.
type History struct {
	Retention Duration `yaml:"retention"`
}

// Privileged is icmp.privileged: auto | true | false.
type Privileged string

const (
	PrivilegedAuto  Privileged = "auto"
	PrivilegedTrue  Privileged = "true"
	PrivilegedFalse Privileged = "false"
)

// UnmarshalYAML accepts the YAML booleans true/false as well as the strings
// "auto", "true" and "false"; validation rejects anything else.
func (p *Privileged) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want auto, true or false", n.Line)}}
	}
	if n.ShortTag() == "!!bool" {
		var b bool
		if err := n.Decode(&b); err != nil {
			return err
		}
		*p = Privileged(strconv.FormatBool(b)) // True, TRUE… become the canonical "true"
		return nil
	}
	*p = Privileged(n.Value)
	return nil
}

// ICMPEchoSpacing is the longest gap the ICMP engine leaves between the
// echoes of one round. Validation requires count × timeout plus the gaps to
// fit in the interval, so a round ends before the next one starts.
const ICMPEchoSpacing = 100 * time.Millisecond

// ICMP holds defaults and per-device overrides (nil fields inherit).
type ICMP struct {
	Interval   Duration   `yaml:"interval"`
	Timeout    Duration   `yaml:"timeout"`
	Count      int        `yaml:"count"`
	Privileged Privileged `yaml:"privileged"`
}

// DeviceICMP is a device's override; zero values inherit from ICMP.
type DeviceICMP struct {
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Count    int      `yaml:"count"`
	// Disabled turns ICMP off for this device.
	Disabled bool `yaml:"disabled"`
}

type SNMP struct {
	PollInterval Duration               `yaml:"poll_interval"`
	Timeout      Duration               `yaml:"timeout"`
	Retries      int                    `yaml:"retries"`
	Profiles     map[string]SNMPProfile `yaml:"profiles"`
	// OIDs are custom values polled from every SNMP device, name → numeric
	// OID; snmp rules see each by its name.
	OIDs map[string]string `yaml:"oids"`
}

type SNMPProfile struct {
	Version       string   `yaml:"version"` // 1 | 2c | 3
	Community     Secret   `yaml:"community"`
	CommunityFile string   `yaml:"community_file"`
	Port          int      `yaml:"port"`
	User          string   `yaml:"user"`
	Auth          *SNMPKey `yaml:"auth"`
	Priv          *SNMPKey `yaml:"priv"`
	Line          int      `yaml:"-"`
}

type SNMPKey struct {
	Protocol       string `yaml:"protocol"`
	Passphrase     Secret `yaml:"passphrase"`
	PassphraseFile string `yaml:"passphrase_file"`
}

// Traps configures the trap receiver. Without a traps section in the file
// the receiver is off and Listen is empty; with one, defaults fill it in.
type Traps struct {
	Listen             string   `yaml:"listen"`
	Communities        []Secret `yaml:"communities"`
	Users              []string `yaml:"users"`
	EngineID           string   `yaml:"engine_id"`
	UnknownSources     string   `yaml:"unknown_sources"` // accept | drop
	RateLimitPerSource int      `yaml:"rate_limit_per_source"`
	// Unknown senders (accepted): how many are tracked at once, and how
	// long their alerts stay open without their clear trap.
	MaxUnknownSources int      `yaml:"max_unknown_sources"`
	UnknownExpire     Duration `yaml:"unknown_expire"`
	// Relays are the addresses or prefixes whose v1 traps' agent address
	// is believed (trap forwarders); known devices' is believed too.
	Relays []string `yaml:"relays"`
	// MIB names OIDs the built-in table lacks: numeric OID → "MIB::name".
	MIB map[string]string `yaml:"mib"`
}

// EngineIDBytes is engine_id decoded (validated by Load); nil when unset.
func (t Traps) EngineIDBytes() []byte {
	h := strings.TrimPrefix(strings.TrimPrefix(t.EngineID, "0x"), "0X")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// RelayPrefixes is relays parsed (validated by Load).
func (t Traps) RelayPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range t.Relays {
		if p, err := parsePrefix(r); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix reads an address (a prefix of its full length) or a prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

type Device struct {
	Name    string            `yaml:"name"`
	Address string            `yaml:"address"`
	Site    string            `yaml:"site"`
	Role    string            `yaml:"role"`
	Labels  map[string]string `yaml:"labels"`
	SNMP    string            `yaml:"snmp"`
	ICMP    DeviceICMP        `yaml:"icmp"`
	Parents []string          `yaml:"parents"`
	Line    int               `yaml:"-"`
}

// EffectiveICMP is the device's ICMP settings with defaults filled in.
func (c *Config) EffectiveICMP(d Device) ICMP {
	out := c.ICMP
	if d.ICMP.Interval > 0 {
		out.Interval = d.ICMP.Interval
	}
	if d.ICMP.Timeout > 0 {
		out.Timeout = d.ICMP.Timeout
	}
	if d.ICMP.Count > 0 {
		out.Count = d.ICMP.Count
	}
	return out
}

// Destination holds the keys every destination type takes; the type-specific
// keys stay in Node and are decoded strictly by the type's own package.
type Destination struct {
	Name      string   `yaml:"name"`
	Type      string   `yaml:"type"`
	Timeout   Duration `yaml:"timeout"`
	Retry     Retry    `yaml:"retry"`
	TLS       TLS      `yaml:"tls"`
	ProxyURL  string   `yaml:"proxy_url"`
	RateLimit float64  `yaml:"rate_limit"` // notifications per second; 0 = unlimited
	// FollowRedirects is never ("", the default) or same_host.
	FollowRedirects string `yaml:"follow_redirects"`

	Node *yaml.Node `yaml:"-"` // the whole mapping node, for the type's decoder
	Line int        `yaml:"-"`
}

// UnmarshalYAML decodes only the common keys and keeps the whole mapping in
// Node: the type-specific keys are checked strictly later, by the type's own
// decoder (notify.DecodeConfig), which knows them.
func (d *Destination) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a destination must be a mapping with name, type and the type's keys", n.Line)}}
	}
	common := *n
	common.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		// Merge keys stay too, so a shared `<<: *retry-defaults` still applies.
		if slices.Contains(CommonDestinationKeys, k.Value) || k.ShortTag() == "!!merge" {
			common.Content = append(common.Content, k, n.Content[i+1])
		}
	}
	type plain Destination // no UnmarshalYAML: avoids recursing into this one
	var p plain
	err := common.Decode(&p)
	*d = Destination(p)
	d.Node, d.Line = n, n.Line
	return err
}

// CommonDestinationKeys are the keys Destination decodes; a type's decoder
// ignores them.
var CommonDestinationKeys = []string{"name", "type", "timeout", "retry", "tls", "proxy_url", "rate_limit", "follow_redirects"}

// follow_redirects values.
const (
	RedirectsNever    = "never"
	RedirectsSameHost = "same_host"
)

// Retry is a destination's `retry` block (README, Delivery guarantees):
// Initial and Max bound the backoff of one notification that fails while its
// destination works, ProbeInterval spaces the probes of a destination that
// fails as a whole, and MaxAge is when a notification goes to the dead letters.
type Retry struct {
	Initial       Duration `yaml:"initial"`
	Max           Duration `yaml:"max"`
	MaxAge        Duration `yaml:"max_age"`
	ProbeInterval Duration `yaml:"probe_interval"`
}

type TLS struct {
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

type Subscription struct {
	Name         string   `yaml:"name"`
	Filter       Filter   `yaml:"filter"`
	Destinations []string `yaml:"destinations"`
	SendResolved *bool    `yaml:"send_resolved"` // default true
	Line         int      `yaml:"-"`
}

type Filter struct {
	Selector   `yaml:",inline"` // devices, sites, roles, labels
	EventIDs   []string         `yaml:"event_ids"` // globs
	Severities []int            `yaml:"severities"`
	Categories []string         `yaml:"categories"`
}

// Selector picks devices, as rules' `match`, subscriptions' filters,
// maintenance windows and silences write it: every non-empty field must
// match; device names are globs (path.Match).
type Selector struct {
	Devices []string          `yaml:"devices" json:"devices,omitempty"`
	Sites   []string          `yaml:"sites" json:"sites,omitempty"`
	Roles   []string          `yaml:"roles" json:"roles,omitempty"`
	Labels  map[string]string `yaml:"labels" json:"labels,omitempty"`
}

// Matches reports whether a device with these attributes is selected.
func (s Selector) Matches(name, site, role string, labels map[string]string) bool {
	if len(s.Devices) > 0 && !anyGlob(s.Devices, name) {
		return false
	}
	if len(s.Sites) > 0 && !slices.Contains(s.Sites, site) {
		return false
	}
	if len(s.Roles) > 0 && !slices.Contains(s.Roles, role) {
		return false
	}
	for k, v := range s.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// anyGlob reports whether s matches one of globs (path.Match).
func anyGlob(globs []string, s string) bool {
	return slices.ContainsFunc(globs, func(g string) bool {
		ok, _ := path.Match(g, s)
		return ok
	})
}

// Maintenance is a planned window in which the alerts it matches are muted
// (SPEC 11.4): recurring (every with duration) or once (start and end).
type Maintenance struct {
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	// Every is "sun 02:00" (weekly, mon..sun) or "02:00" (daily), wall-clock
	// time in Timezone; ParseEvery reads it.
	Every    string   `yaml:"every"`
	Duration Duration `yaml:"duration"`
	// Start and End are RFC 3339 times, for a single window.
	Start string `yaml:"start"`
	End   string `yaml:"end"`
	// Timezone is an IANA name for time.LoadLocation; "Local" by default.
	Timezone string `yaml:"timezone"`
	Line     int    `yaml:"-"`
}

// Match is what a maintenance window or a silence mutes: the devices the
// selector picks and, when EventIDs is set, only those events (globs). An
// empty Match would mute everything, so validation refuses it; muting
// everything is written devices: ["*"].
type Match struct {
	Selector `yaml:",inline"`
	EventIDs []string `yaml:"event_ids" json:"event_ids,omitempty"`
}

// Empty reports whether no field is set.
func (m Match) Empty() bool {
	return len(m.Devices) == 0 && len(m.Sites) == 0 && len(m.Roles) == 0 && len(m.Labels) == 0 && len(m.EventIDs) == 0
}

// MatchesEvent reports whether the event ID is one Match covers.
func (m Match) MatchesEvent(eventID string) bool {
	return len(m.EventIDs) == 0 || anyGlob(m.EventIDs, eventID)
}

// BadGlob is an entry of a match's devices or event_ids that is not a
// valid glob.
type BadGlob struct {
	Key   string // devices | event_ids
	Index int
	Glob  string
	Err   error
}

func (g BadGlob) String() string {
	return fmt.Sprintf("%s[%d] %q is not a valid glob: %v", g.Key, g.Index, g.Glob, g.Err)
}

// InvalidGlobs lists the entries of event_ids and devices that are not
// valid globs, in that order.
func (m Match) InvalidGlobs() []BadGlob {
	var out []BadGlob
	for _, globs := range []struct {
		key  string
		list []string
	}{{"event_ids", m.EventIDs}, {"devices", m.Devices}} {
		for i, g := range globs.list {
			if _, err := path.Match(g, ""); err != nil {
				out = append(out, BadGlob{Key: globs.key, Index: i, Glob: g, Err: err})
			}
		}
	}
	return out
}

// String is the match as people read it: "devices=core-sw1,core-sw2 sites=HQ".
func (m Match) String() string {
	var parts []string
	for _, f := range []struct {
		key  string
		list []string
	}{{"devices", m.Devices}, {"sites", m.Sites}, {"roles", m.Roles}} {
		if len(f.list) > 0 {
			parts = append(parts, f.key+"="+strings.Join(f.list, ","))
		}
	}
	for _, k := range sortedKeys(m.Labels) {
		parts = append(parts, "label:"+k+"="+m.Labels[k])
	}
	if len(m.EventIDs) > 0 {
		parts = append(parts, "event_ids="+strings.Join(m.EventIDs, ","))
	}
	return strings.Join(parts, " ")
}

// Recurrence is a parsed `every`: a wall-clock time each day, or each week
// on one day.
type Recurrence struct {
	Daily        bool
	Weekday      time.Weekday // when not Daily
	Hour, Minute int
}

var clockRE = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // time.Weekday order

// ParseEvery reads "sun 02:00" (weekly; day names mon..sun, any case) or
// "02:00" (daily).
func ParseEvery(s string) (Recurrence, error) {
	var r Recurrence
	clock := strings.TrimSpace(s)
	if day, rest, ok := strings.Cut(clock, " "); ok {
		i := slices.Index(weekdays, strings.ToLower(day))
		if i < 0 {
			return r, fmt.Errorf("day %q must be one of %s", day, strings.Join(weekdays, ", "))
		}
		r.Weekday, clock = time.Weekday(i), strings.TrimSpace(rest)
	} else {
		r.Daily = true
	}
	m := clockRE.FindStringSubmatch(clock)
	if m == nil {
		return r, fmt.Errorf("time %q must be HH:MM, 00:00 to 23:59", clock)
	}
	r.Hour, _ = strconv.Atoi(m[1])
	r.Minute, _ = strconv.Atoi(m[2])
	return r, nil
}

// Period is the time between occurrences on the wall clock.
func (r Recurrence) Period() time.Duration {
	if r.Daily {
		return 24 * time.Hour
	}
	return 7 * 24 * time.Hour
}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a Go duration string ("10s", "1m30s"). A bare 0 is
// accepted as zero; any other number is an error, because "10" is ambiguous.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 10s", n.Line)}}
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		// A TypeError lets the decoder go on and report every bad field at once.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration: want a Go duration such as 500ms, 10s or 5m", n.Line)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in Go notation.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String is the Go notation.
func (d Duration) String() string { return time.Duration(d).String() }
