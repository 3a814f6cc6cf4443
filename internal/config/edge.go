package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Edge is the edge: block (SPEC 9): this node is an edge site's collector.
// Its embedded NATS server is a leaf node of the hub; it probes and
// receives traps for its site and publishes what it sees to a local,
// bounded stream that the hub sources. It evaluates no rules and sends no
// notifications: the hub does.
type Edge struct {
	// Hub is nats-leaf://host:port (or tls://host:port) of the hub's
	// leaf-node listener.
	Hub string `yaml:"hub"`
	// Site is this edge's site, as the hub's inventory names it; it is
	// also the edge's JetStream domain.
	Site string `yaml:"site"`
	// Buffer bounds the local stream: past it the oldest observations are
	// dropped (and counted at the hub).
	Buffer Size `yaml:"buffer"`
	// TLS is the leaf connection's mutual TLS; nil: plain.
	TLS *ClusterTLS `yaml:"tls"`
}

// Hub is the hub: block: this node accepts edge sites' leaf connections
// and evaluates their observations.
type Hub struct {
	// Listen is host:port of the leaf-node listener.
	Listen string `yaml:"listen"`
	// Sites are the edge sites expected; their devices are in this
	// node's inventory with that site, and are probed by the edge only.
	Sites []string `yaml:"sites"`
	// UnreachableAfter is how long a site may stay silent before its
	// collector is unreachable: its devices unknown, one alert raised.
	UnreachableAfter Duration `yaml:"unreachable_after"`
	// TLS is the leaf listener's mutual TLS; nil: plain.
	TLS *ClusterTLS `yaml:"tls"`
}

// HubDomain is the hub's JetStream domain: an edge's site may not be
// called so.
const HubDomain = "nocbridge_hub"

func edgeTLS(e *Edge) *ClusterTLS {
	if e == nil {
		return nil
	}
	return e.TLS
}

func hubTLS(h *Hub) *ClusterTLS {
	if h == nil {
		return nil
	}
	return h.TLS
}

// Size is a number of bytes, written 1GiB, 512MiB, 64KiB, 10MB or a plain
// number of bytes.
type Size int64

var sizeRE = regexp.MustCompile(`^([0-9]+)\s*([KMGT]i?B|B)?$`)

var sizeUnits = map[string]int64{"": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}

// ParseSize reads a Size.
func ParseSize(s string) (Size, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 1GiB, 512MiB or 10MB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	unit := sizeUnits[m[2]]
	if err != nil || n > (1<<62)/unit {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * unit), nil
}

// UnmarshalYAML reads a size ("1GiB").
func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a size such as 1GiB", n.Line)}}
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid size: %v", n.Line, err)}}
	}
	*z = v
	return nil
}

// String writes the size in the largest binary unit that divides it.
func (z Size) String() string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if m := sizeUnits[u]; z > 0 && int64(z)%m == 0 {
			return strconv.FormatInt(int64(z)/m, 10) + u
		}
	}
	return strconv.FormatInt(int64(z), 10) + "B"
}

// MarshalYAML writes the size back as String does.
func (z Size) MarshalYAML() (any, error) { return z.String(), nil }

// minEdgeBuffer is the smallest edge.buffer: a few thousand observations.
const minEdgeBuffer = 1 << 20

// validateEdge checks edge: and hub: (SPEC 9).
func (l *loader) validateEdge(c *Config) {
	if c.Edge == nil && l.find1("edge") {
		l.bad(l.line("edge"), "edge: section is empty: give hub and site, or remove it")
	}
	if c.Hub == nil && l.find1("hub") {
		l.bad(l.line("hub"), "hub: section is empty: give sites (and listen), or remove it")
	}
	if e := c.Edge; e != nil {
		l.validateEdgeNode(c, e)
	}
	if h := c.Hub; h != nil {
		l.validateHub(c, h)
	}
}

func (l *loader) validateEdgeNode(c *Config, e *Edge) {
	at := func(path ...any) int { return l.line(append([]any{"edge"}, path...)...) }
	if c.Cluster != nil {
		l.bad(at(), "edge: cannot be combined with cluster: an edge site runs one collector, a leaf node of its hub")
	}
	if c.Store.NATSURL != "" {
		l.bad(at(), "edge: cannot be used with store.nats_url: the edge's embedded server is the leaf node that buffers")
	}
	if c.Hub != nil {
		l.bad(at(), "edge: and hub: cannot both be set: a node is either an edge site or the hub")
	}
	if e.Hub == "" {
		l.bad(at(), "edge: hub is required: nats-leaf://host:port of the hub's leaf listener (7422)")
	} else if err := checkLeafURL(e.Hub); err != nil {
		l.bad(at("hub"), "edge: hub %v", err)
	} else if strings.HasPrefix(e.Hub, "tls://") && e.TLS == nil {
		l.bad(at("hub"), "edge: hub %s is tls:// but edge has no tls: give tls with cert_file, key_file and ca_file", e.Hub)
	}
	switch {
	case e.Site == "":
		l.bad(at(), "edge: site is required: this edge's site, as the hub's inventory names it")
	case !clusterToken.MatchString(e.Site):
		l.bad(at("site"), "edge: site %q must be 1..64 letters, digits, _ or - (it is the edge's JetStream domain)", e.Site)
	case strings.EqualFold(e.Site, HubDomain):
		l.bad(at("site"), "edge: site %q is the hub's own JetStream domain: choose another name", e.Site)
	default:
		known := false
		for _, d := range c.Devices {
			known = known || d.Site == e.Site
		}
		if !known && len(c.Devices) > 0 {
			l.bad(at("site"), "edge: site %q has no device in devices: an edge probes the devices of its site", e.Site)
		}
	}
	if e.Buffer < minEdgeBuffer {
		l.bad(at("buffer"), "edge: buffer %s is too small: at least 1MiB (default 1GiB)", e.Buffer)
	}
	if e.TLS != nil {
		l.checkClusterTLS(c, e.TLS, "edge", "the edge and the hub verify each other's certificate")
	}
}

func (l *loader) validateHub(c *Config, h *Hub) {
	at := func(path ...any) int { return l.line(append([]any{"hub"}, path...)...) }
	if c.Cluster != nil {
		l.bad(at(), "hub: cannot be combined with cluster: yet: every node of a cluster would read the edge sites' records, each a part, out of order")
	}
	if c.Store.NATSURL != "" {
		l.bad(at(), "hub: cannot be used with store.nats_url: the leaf listener is the embedded server's")
	}
	if err := checkListen(h.Listen); err != nil {
		l.bad(at("listen"), "hub: listen %v", err)
	} else if _, port, _ := net.SplitHostPort(h.Listen); port == "0" {
		l.bad(at("listen"), "hub: listen %q needs a fixed port: edges connect to it", h.Listen)
	}
	if len(h.Sites) == 0 {
		l.bad(at(), "hub: sites is required: the edge sites expected (their devices are in devices with that site)")
	}
	sites := map[string]bool{}
	for _, d := range c.Devices {
		sites[d.Site] = true
	}
	seen := map[string]int{}
	for i, s := range h.Sites {
		line := at("sites", i)
		switch first, dup := seen[s]; {
		case !clusterToken.MatchString(s):
			l.bad(line, "hub: sites[%d] %q must be 1..64 letters, digits, _ or -", i, s)
		case strings.EqualFold(s, HubDomain):
			l.bad(line, "hub: sites[%d] %q is the hub's own JetStream domain: choose another name", i, s)
		case dup:
			l.bad(line, "hub: sites[%d] %s is given twice (first as sites[%d])", i, s, first)
		case !sites[s]:
			l.bad(line, "hub: sites[%d] %s has no device in devices: give its devices with site: %s", i, s, s)
		}
		seen[s] = i
	}
	if h.UnreachableAfter <= 0 {
		l.bad(at("unreachable_after"), "hub: unreachable_after must be a positive duration such as 30s")
	}
	if h.TLS != nil {
		l.checkClusterTLS(c, h.TLS, "hub", "the hub and its edges verify each other's certificate")
	} else if checkListen(h.Listen) == nil && !LoopbackListen(h.Listen) {
		l.warn(at("listen"), "hub: listen %s is not a loopback address and hub.tls is not set: whoever reaches it can join as a leaf node and use this node's JetStream (alert state, outbox), and the edges' observations cross the WAN in clear text; set hub.tls (mutual TLS) or let only the edges reach the port", h.Listen)
	}
}

// checkLeafURL checks edge.hub: nats-leaf://host:port or tls://host:port.
// The message never holds a password given in the URL.
func checkLeafURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a valid URL")
	}
	switch {
	case u.Scheme != "nats-leaf" && u.Scheme != "tls" || u.Hostname() == "" || u.Port() == "":
		return fmt.Errorf("%q must be nats-leaf://host:port or tls://host:port (the hub's leaf listener)", u.Redacted())
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must be nats-leaf://host:port, without a path or query", u.Redacted())
	case !validAddress(u.Hostname()):
		return fmt.Errorf("%q: host is not an IP address or a DNS name", u.Redacted())
	}
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: port must be a number 1..65535", u.Redacted())
	}
	return nil
}
