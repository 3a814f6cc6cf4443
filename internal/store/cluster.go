package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nocbridge/nocbridge/internal/config"
)

// clusterReplicas is how many copies a clustered store keeps of every
// stream and bucket: three nodes survive the loss of any one (SPEC 9).
const clusterReplicas = 3

// replicasFor is the one place that decides a stream's or bucket's
// replicas: R3 when clustered, else 1.
func replicasFor(clustered bool) int {
	if clustered {
		return clusterReplicas
	}
	return 1
}

// createAttempt bounds one attempt to create or update a stream or bucket
// in a cluster. When several nodes create the same one at once (every
// node's first start), JetStream can leave all their requests unanswered
// (measured: none within 20 s); a request made after that is answered at
// once.
const createAttempt = 3 * time.Second

// creating runs op, a stream's or bucket's creation or update: alone once,
// in a cluster again after each attempt that got no answer within
// createAttempt, until ctx is done.
func (s *Store) creating(ctx context.Context, op func(context.Context) error) error {
	if s.replicas == 1 {
		return op(ctx)
	}
	for {
		actx, cancel := context.WithTimeout(ctx, createAttempt)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return err
		}
		s.log.Debug("creating a stream: no answer, asking again", "err", err)
	}
}

// routeTLSTimeout bounds a route's TLS handshake, in seconds.
const routeTLSTimeout = 5

// clusterOptions makes the embedded server a node of the cluster c: its
// name is the node's, it listens for routes and routes to the peers, with
// mutual TLS when configured. JetStream is then clustered. nil: alone.
//
// The server starts its routes only once it listens for clients: it then
// listens on a random loopback port that only a random token opens, which
// the in-process connection presents (token).
func clusterOptions(o *server.Options, c *config.Cluster) (token string, err error) {
	if c == nil {
		return "", nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making the client token: %w", err)
	}
	token = hex.EncodeToString(b[:])
	o.DontListen, o.Host, o.Port, o.Authorization = false, "127.0.0.1", server.RANDOM_PORT, token
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", fmt.Errorf("cluster listen %q: %w", c.Listen, err)
	}
	o.ServerName = c.Node
	o.Cluster.Name = c.Name
	o.Cluster.Host = cmpOr(host, "0.0.0.0")
	if o.Cluster.Port, err = strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("cluster listen %q: port: %w", c.Listen, err)
	}
	for _, p := range c.Peers {
		u, err := url.Parse(p)
		if err != nil {
			return "", fmt.Errorf("cluster peer %q is not a URL", p)
		}
		o.Routes = append(o.Routes, u)
	}
	if t := c.TLS; t != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile,
			Verify: true, Timeout: routeTLSTimeout})
		if err != nil {
			return "", fmt.Errorf("cluster tls (%s, %s, %s): %w", t.CertFile, t.KeyFile, t.CAFile, err)
		}
		// A route is both client and server: the CA checks both ends (as
		// nats-server does for a cluster tls block).
		tc.RootCAs = tc.ClientCAs
		o.Cluster.TLSConfig, o.Cluster.TLSTimeout = tc, routeTLSTimeout
	}
	return token, nil
}

func cmpOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// awaitJetStream creates the store's probe log, which a cluster can only do
// once it has a meta leader and enough nodes for the replicas: until then
// (the other nodes are starting too) it tries again, until ctx is done.
func (s *Store) awaitJetStream(ctx context.Context) error {
	err := s.ensureProbeLog()
	if err == nil || s.replicas == 1 {
		return err
	}
	s.log.Info("waiting for the JetStream cluster: a meta leader and enough nodes for R3", "err", err)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	logged := time.Now()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream cluster not ready (%w); last error: %w", ctx.Err(), err)
		case <-tick.C:
		}
		if err = s.ensureProbeLog(); err == nil {
			s.log.Info("JetStream cluster ready")
			return nil
		}
		if time.Since(logged) >= 30*time.Second {
			logged = time.Now()
			s.log.Warn("still waiting for the JetStream cluster: a meta leader and enough nodes for R3", "err", err)
		}
	}
}

// remoteConnectTimeout bounds the first connection to store.nats_url.
const remoteConnectTimeout = 5 * time.Second

// openRemote connects to the NATS server or cluster at opts.URL instead of
// embedding one. Errors name the URL without its credentials.
func openRemote(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	shown, secrets := redactURLs(opts.URL)
	where := "NATS at " + shown
	h, err := newHealth(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: where, log: log, h: h, cluster: opts.Cluster, remote: shown}
	s.nc, err = nats.Connect(opts.URL, nats.Name("nocbridge"), nats.Timeout(remoteConnectTimeout),
		nats.MaxReconnects(-1),
		clientErrors(log.With("nats_url", shown), secrets))
	if err != nil {
		return nil, fmt.Errorf("store: cannot reach %s: %w", where, scrub(err, secrets))
	}
	fail := func(what string, err error) (*Store, error) {
		s.nc.Close()
		return nil, fmt.Errorf("store: %s: %s: %w", where, what, scrub(err, secrets))
	}
	if s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncTimeout(asyncAckTimeout)); err != nil {
		return fail("using JetStream", err)
	}
	actx, cancel := context.WithTimeout(ctx, remoteConnectTimeout)
	_, err = s.js.AccountInfo(actx)
	cancel()
	if err != nil {
		return fail("JetStream not available", err)
	}
	s.replicas = replicasFor(s.nc.ConnectedClusterName() != "")
	if err := s.awaitJetStream(ctx); err != nil {
		return fail("preparing the store", err)
	}
	log.Debug("state store open", "url", shown, "replicas", s.replicas)
	return s, nil
}

// redactURLs is store.nats_url with passwords (and tokens) masked, and the
// secrets found, to be scrubbed from errors the client returns.
func redactURLs(raw string) (string, []string) {
	var shown, secrets []string
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			shown = append(shown, "(invalid URL)")
			continue
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok {
				secrets = append(secrets, pw)
			} else if tok := u.User.Username(); tok != "" {
				// nats://TOKEN@host: the user part alone is a token.
				secrets = append(secrets, tok)
				u.User = url.User("xxxxx")
			}
		}
		shown = append(shown, u.Redacted())
	}
	return strings.Join(shown, ","), secrets
}

// scrub keeps err unless its text holds one of the secrets.
func scrub(err error, secrets []string) error {
	msg := err.Error()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(msg, sec) {
			msg = strings.ReplaceAll(msg, sec, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// ClusterInfo is the store's cluster as /api/v1/cluster shows it: the
// nodes JetStream knows, its meta leader, and every stream's replicas.
type ClusterInfo struct {
	Enabled bool   `json:"enabled"`
	Name    string `json:"name,omitempty"`
	Node    string `json:"node,omitempty"`
	// NATSURL is store.nats_url without credentials, when used.
	NATSURL string `json:"nats_url,omitempty"`
	// Ready: JetStream has a meta leader and this node is current with it.
	Ready      bool           `json:"ready"`
	MetaLeader string         `json:"meta_leader,omitempty"`
	Nodes      []ClusterNode  `json:"nodes,omitempty"`
	Streams    []StreamStatus `json:"streams,omitempty"`
	// Leader is the cluster's leader as this node knows it (nil: none
	// known); SelfLeader: this node leads. Bus is the observation bus.
	// The app fills these in: the store holds the lease, not the election.
	Leader     *ClusterLeader `json:"leader,omitempty"`
	SelfLeader bool           `json:"self_leader"`
	Bus        *BusState      `json:"bus,omitempty"`
	// Error says what could not be read (the rest is what could).
	Error string `json:"error,omitempty"`
	// Edge is the edge sites' status (SPEC 9), set by who runs them
	// (cluster/edge: a hub's sites, or an edge's buffer); nil: omitted.
	Edge any `json:"edge,omitempty"`
}

// MarshalJSON shows a store alone as {"enabled": false} (with its
// nats_url and edge, if any): nothing else applies to it.
func (ci ClusterInfo) MarshalJSON() ([]byte, error) {
	if !ci.Enabled {
		return json.Marshal(struct {
			Enabled bool   `json:"enabled"`
			NATSURL string `json:"nats_url,omitempty"`
			Edge    any    `json:"edge,omitempty"`
		}{false, ci.NATSURL, ci.Edge})
	}
	type plain ClusterInfo // without this method
	return json.Marshal(plain(ci))
}

// ClusterLeader is the node that leads and its lease term.
type ClusterLeader struct {
	Node string `json:"node"`
	Term uint64 `json:"term"`
	// Since is when the leader's lease was acquired (the winning write,
	// by the leader's clock): the moment it took over.
	Since time.Time `json:"since,omitzero"`
}

// ClusterNode is one NATS server of the cluster.
type ClusterNode struct {
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	// Current: seen recently and caught up with the leader.
	Current bool `json:"current"`
	// LastSeenSeconds is how long ago the leader last heard from it.
	LastSeenSeconds float64 `json:"last_seen_seconds"`
	// Lag is how many operations behind the leader it is.
	Lag    uint64 `json:"lag"`
	Leader bool   `json:"leader,omitempty"`
}

// StreamStatus is one stream (logs and KV buckets alike) and its replicas.
type StreamStatus struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Leader   string `json:"leader,omitempty"`
	Messages uint64 `json:"messages"`
	// Lag is the largest lag of a follower, in operations.
	Lag uint64 `json:"lag"`
	// Peers are the replicas with the leader first.
	Peers []ClusterNode `json:"peers,omitempty"`
}

// clusterInfoTimeout bounds reading the cluster's state.
const clusterInfoTimeout = 5 * time.Second

// statusTimeout bounds what /api/v1/cluster waits for JetStream: while
// stream leaders are being elected (a node died) a listing can take
// seconds, and the page must still say at once who leads; what did not
// answer in time is named in its error field.
const statusTimeout = time.Second

// Clustered reports whether streams and buckets are replicated.
func (s *Store) Clustered() bool { return s.replicas > 1 }

// ClusterInfo reads the cluster's state: {Enabled: false} for a store
// alone. With store.nats_url the meta leader is not visible to a client
// (it needs the system account): the nodes are those holding streams.
func (s *Store) ClusterInfo(ctx context.Context) ClusterInfo {
	if !s.Clustered() {
		return ClusterInfo{Enabled: false, NATSURL: s.remote}
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	ci := ClusterInfo{Enabled: true, NATSURL: s.remote}
	if s.cluster != nil {
		ci.Name, ci.Node = s.cluster.Name, s.cluster.Node
	}
	nodes := map[string]ClusterNode{}
	if s.srv != nil {
		ci.Ready = s.srv.JetStreamIsCurrent()
		routed := map[string]bool{}
		if rz, err := s.srv.Routez(&server.RoutezOptions{}); err == nil {
			for _, r := range rz.Routes {
				routed[r.RemoteName] = true
			}
		}
		self := s.srv.Name()
		nodes[self] = ClusterNode{Name: self, Reachable: true, Current: ci.Ready}
		jsz, err := s.srv.Jsz(&server.JSzOptions{})
		if err != nil {
			ci.Error = "reading JetStream's meta group: " + err.Error()
		} else if m := jsz.Meta; m != nil {
			ci.MetaLeader = m.Leader
			// Only the meta leader tracks how current its followers are:
			// reachable is this node's own view (a route to the node).
			for _, p := range m.Replicas {
				if p.Name != self {
					n := peerNode(p)
					n.Reachable = routed[p.Name]
					nodes[p.Name] = n
				}
			}
			if m.Leader != "" {
				n := nodes[m.Leader]
				n.Name, n.Leader, n.Reachable, n.Current = m.Leader, true, m.Leader == self || routed[m.Leader], true
				nodes[m.Leader] = n
			}
		}
	} else {
		_, err := s.js.AccountInfo(ctx)
		ci.Ready = err == nil
		if err != nil {
			ci.Error = "JetStream at " + s.remote + ": " + err.Error()
		}
	}
	streams := s.js.ListStreams(ctx)
	for info := range streams.Info() {
		name := info.Config.Name
		ss := StreamStatus{Name: name, Replicas: info.Config.Replicas, Messages: info.State.Msgs}
		if c := info.Cluster; c != nil {
			ss.Leader = c.Leader
			if c.Leader != "" {
				ss.Peers = append(ss.Peers, ClusterNode{Name: c.Leader, Reachable: true, Current: true, Leader: true})
				if _, ok := nodes[c.Leader]; !ok && s.srv == nil {
					nodes[c.Leader] = ClusterNode{Name: c.Leader, Reachable: true, Current: true}
				}
			}
			for _, p := range c.Replicas {
				n := ClusterNode{Name: p.Name, Reachable: !p.Offline, Current: p.Current, LastSeenSeconds: p.Active.Seconds(), Lag: p.Lag}
				ss.Peers = append(ss.Peers, n)
				ss.Lag = max(ss.Lag, p.Lag)
				if _, ok := nodes[p.Name]; !ok && s.srv == nil {
					n.Lag = 0 // a stream's lag, not the node's
					nodes[p.Name] = n
				}
			}
		}
		ci.Streams = append(ci.Streams, ss)
	}
	if err := streams.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		ci.Error = "listing streams: " + err.Error()
	}
	for _, n := range nodes {
		ci.Nodes = append(ci.Nodes, n)
	}
	slices.SortFunc(ci.Nodes, func(a, b ClusterNode) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(ci.Streams, func(a, b StreamStatus) int { return strings.Compare(a.Name, b.Name) })
	return ci
}

func peerNode(p *server.PeerInfo) ClusterNode {
	return ClusterNode{Name: p.Name, Reachable: !p.Offline, Current: p.Current, LastSeenSeconds: p.Active.Seconds(), Lag: p.Lag}
}

// ClusterReady is nil when the store can serve: alone always; clustered
// once JetStream has a meta leader this node is current with (the
// /readyz question).
func (s *Store) ClusterReady(ctx context.Context) error {
	switch {
	case !s.Clustered():
		return nil
	case s.srv != nil:
		if !s.srv.JetStreamIsCurrent() {
			return errors.New("JetStream cluster has no meta leader this node is current with: fewer than a quorum of nodes reachable")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	defer cancel()
	if _, err := s.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream at %s: %w", s.remote, err)
	}
	return nil
}

// AwaitStreamLeaders waits, at most until ctx is done, until every stream
// and bucket has a leader: after a node's death JetStream elects new ones
// for those it led, and a read sent meanwhile waits out its whole timeout.
// A cluster's new leader calls it before reading back what the previous
// one stored, so that the reading is not left half done. Alone: nil at
// once.
// awaitLeadersLogAfter: AwaitStreamLeaders says once what it waits for
// when it has waited this long. awaitLeaderAsk bounds one question to a
// stream: one without a leader does not answer.
const (
	awaitLeadersLogAfter = 5 * time.Second
	awaitLeaderAsk       = time.Second
)

func (s *Store) AwaitStreamLeaders(ctx context.Context) error {
	if !s.Clustered() {
		return nil
	}
	started := time.Now()
	// The names come from the meta leader alone. Listing the streams'
	// infos instead waits for every stream leader's answer, the dead
	// node's included: 4-9 s after a kill, however soon the elections
	// were over.
	var names []string
	for {
		lctx, cancel := context.WithTimeout(ctx, awaitLeaderAsk)
		lister := s.js.StreamNames(lctx)
		names = names[:0]
		for name := range lister.Name() {
			names = append(names, name)
		}
		err := lister.Err()
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrEndOfData) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("listing the streams: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Each stream is asked on its own, all at once, until it answers
	// with a leader.
	var mu sync.Mutex
	waiting := map[string]bool{}
	for _, n := range names {
		waiting[n] = true
	}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			for ctx.Err() == nil {
				ictx, cancel := context.WithTimeout(ctx, awaitLeaderAsk)
				st, err := s.js.Stream(ictx, name)
				cancel()
				if err == nil {
					if c := st.CachedInfo().Cluster; c == nil || c.Leader != "" {
						mu.Lock()
						delete(waiting, name)
						mu.Unlock()
						return
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(awaitLeadersLogAfter):
		mu.Lock()
		s.log.Warn("waiting for JetStream to elect stream leaders before leading", "waited", time.Since(started).Round(time.Millisecond).String(),
			"streams_without_leader", strings.Join(slices.Sorted(maps.Keys(waiting)), ", "))
		mu.Unlock()
		<-done
	}
	if ctx.Err() != nil {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("streams without a leader (%s): %w", strings.Join(slices.Sorted(maps.Keys(waiting)), ", "), ctx.Err())
	}
	return nil
}
