package config

import (
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// clusterToken is what NATS accepts in a cluster or server name and what
// a stream subject token can hold.
var clusterToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// sharedNodeNames are names that every machine would have unless told
// otherwise: a node called so is almost certainly not unique.
var sharedNodeNames = map[string]bool{"localhost": true, "nocbridge": true, "node": true, "default": true}

// validateCluster checks cluster: and store.nats_url (SPEC 9).
func (l *loader) validateCluster(c *Config) {
	remote := c.Store.NATSURL != ""
	if remote {
		l.checkNATSURL(c.Store.NATSURL)
		if l.has("store", "sync") {
			l.bad(l.line("store", "sync"), "store: sync applies to the embedded server only; with store.nats_url the NATS server's own sync setting decides")
		}
	}
	k := c.Cluster
	if k == nil {
		if l.find1("cluster") {
			l.bad(l.line("cluster"), "cluster: section is empty: give name, node, listen and peers, or remove it")
		}
		return
	}
	at := func(path ...any) int { return l.line(append([]any{"cluster"}, path...)...) }
	switch {
	case k.Name == "":
		l.bad(at(), "cluster: name is required (the NATS cluster name, the same on every node)")
	case !clusterToken.MatchString(k.Name):
		l.bad(at("name"), "cluster: name %q must be 1..64 letters, digits, _ or -", k.Name)
	}
	switch {
	case k.Node == "":
		l.bad(at(), "cluster: node is required (this node's name, unique in the cluster, such as nb1)")
	case !clusterToken.MatchString(k.Node):
		l.bad(at("node"), "cluster: node %q must be 1..64 letters, digits, _ or -", k.Node)
	case sharedNodeNames[strings.ToLower(k.Node)]:
		l.bad(at("node"), "cluster: node %q is a name every machine would share: give each node its own (nb1, nb2, …)", k.Node)
	}
	switch k.DownWhen {
	case DownWhenAll, DownWhenMajority:
	default:
		l.bad(at("down_when"), "cluster: down_when %q must be all or majority", string(k.DownWhen))
	}
	if remote {
		// The NATS cluster is someone else's: this node has no routes.
		for _, key := range []string{"listen", "peers", "tls"} {
			if l.has("cluster", key) {
				l.bad(at(key), "cluster: %s configures the embedded server's routes and cannot be used with store.nats_url (the existing NATS cluster routes itself)", key)
			}
		}
		return
	}
	if k.Listen == "" {
		l.bad(at(), "cluster: listen is required (host:port of the NATS route listener, such as 0.0.0.0:6222)")
	} else if err := checkListen(k.Listen); err != nil {
		l.bad(at("listen"), "cluster: listen %v", err)
	} else if _, port, _ := net.SplitHostPort(k.Listen); port == "0" {
		l.bad(at("listen"), "cluster: listen %q needs a fixed port: the peers route to it", k.Listen)
	}
	if len(k.Peers) == 0 {
		l.bad(at(), "cluster: peers is required: the nats://host:port route URLs of the other nodes")
	}
	seen := map[string]int{}
	for i, p := range k.Peers {
		line := at("peers", i)
		host, err := peerHost(p)
		if err != nil {
			l.bad(line, "cluster: peers[%d] %v", i, err)
			continue
		}
		if first, dup := seen[host]; dup {
			l.bad(line, "cluster: peers[%d] %s is given twice (first as peers[%d])", i, host, first)
			continue
		}
		seen[host] = i
		if host == k.Listen {
			l.bad(line, "cluster: peers[%d] %s is this node's own listen address: list the other nodes only", i, host)
		}
	}
	if t := k.TLS; t != nil {
		l.checkClusterTLS(c, t, "cluster", "the routes verify each other's certificate")
	}
}

// find1 reports whether the key exists at all, even with an empty value.
func (l *loader) find1(path ...any) bool {
	n, _ := l.find(path...)
	return n != nil
}

// peerHost checks a route URL, nats://host:port, and returns host:port.
// The message never holds a password given in the URL.
func peerHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("is not a valid URL")
	}
	port := u.Port()
	switch {
	case u.Scheme != "nats" || u.Hostname() == "" || port == "":
		return "", errors.New(strconv.Quote(u.Redacted()) + " must be nats://host:port (the peer's cluster listen address)")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return "", errors.New(strconv.Quote(u.Redacted()) + " must be nats://host:port, without a path or query")
	case !validAddress(u.Hostname()):
		return "", errors.New(strconv.Quote(u.Redacted()) + ": host is not an IP address or a DNS name")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", errors.New(strconv.Quote(u.Redacted()) + ": port must be a number 1..65535")
	}
	return u.Host, nil
}

// checkNATSURL checks store.nats_url: one or more comma-separated
// nats:// or tls:// URLs with host and port.
func (l *loader) checkNATSURL(raw string) {
	line := l.line("store", "nats_url")
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			l.bad(line, "store: nats_url is not a valid URL")
			continue
		}
		if (u.Scheme != "nats" && u.Scheme != "tls") || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			l.bad(line, "store: nats_url %s must be nats://host:port or tls://host:port (several separated by commas)", u.Redacted())
		}
	}
}

// checkClusterTLS checks a mutual TLS block (cluster routes, edge leaf
// connections) under section: why says who verifies whom.
func (l *loader) checkClusterTLS(c *Config, t *ClusterTLS, section, why string) {
	at := func(key string) int { return l.line(section, "tls", key) }
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		l.bad(l.line(section, "tls"), "%s: tls needs cert_file, key_file and ca_file (PEM): %s", section, why)
		return
	}
	if key, err := loadKeyPair(absFrom(c.BaseDir, t.CertFile), absFrom(c.BaseDir, t.KeyFile)); err != nil {
		line := at("cert_file")
		if key {
			line = at("key_file")
		}
		l.bad(line, "%s: tls: cannot load the certificate and key: %v", section, err)
	} else {
		l.warnSecretFile(t.KeyFile, c.BaseDir, section, "tls", "key_file")
	}
	ca, err := readBounded(absFrom(c.BaseDir, t.CAFile))
	if err != nil {
		l.bad(at("ca_file"), "%s: tls: ca_file: %v", section, err)
	} else if !x509.NewCertPool().AppendCertsFromPEM(ca) {
		l.bad(at("ca_file"), "%s: tls: ca_file %s holds no PEM certificate", section, t.CAFile)
	}
}
