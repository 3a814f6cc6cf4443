package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Edge sites (SPEC 9). An edge node's embedded server is a NATS leaf node
// of the hub, with its own JetStream domain (the site's name). What the
// edge sees goes into its local stream EDGE, bounded by edge.buffer
// (oldest dropped past it). The hub holds, per expected site, a stream
// EDGE_<site> that sources EDGE across the leaf connection through the
// site's domain ($JS.<site>.API): JetStream itself copies every record
// over, in order, and after a WAN outage resumes from the last one it has.
// Nothing of nocbridge's own does replication or replay.

const (
	// edgeStream is the edge's local buffer; hubStreamPrefix+site the
	// hub's copy of it.
	edgeStream      = "EDGE"
	hubStreamPrefix = "EDGE_"
	// edgeSubjectPrefix+site+".obs" carries observations, ".hb" the
	// edge's heartbeats. The leaf connection never carries these subjects
	// (edgeDeny): records cross only through the hub's source.
	edgeSubjectPrefix = "nocbridge.edge."
	// edgeConfirmPrefix+site carries the hub's confirmations to the edge:
	// the last edge sequence it has (core NATS, across the leaf).
	edgeConfirmPrefix = "nocbridge_edge_confirm."
	// confirmEvery spaces the confirmations while records flow.
	confirmEvery = 500 * time.Millisecond
	// hubConsumer is the hub's durable reader of each EDGE_<site>.
	hubConsumer = "hub"
	// hubRetention bounds how long the hub keeps what it read.
	hubRetention = 24 * time.Hour
	// leafTLSTimeout bounds a leaf connection's TLS handshake, in seconds.
	leafTLSTimeout = 5
	// leafReconnect is how often an edge tries to reach its hub again.
	leafReconnect = time.Second
	// leafPing and leafPingsOut find a dead WAN link: a connection whose
	// pings go unanswered leafPingsOut times leafPing apart is closed (NATS'
	// default, two minutes apart, would show a cut-off edge connected for
	// minutes).
	leafPing     = 5 * time.Second
	leafPingsOut = 3
)

// Kinds of edge records.
const (
	EdgeObservation = "obs"
	EdgeHeartbeat   = "hb"
)

// edgeDeny are the subjects an edge and its hub never exchange over the
// leaf connection: both run a whole store (KV buckets, the outbox, history)
// on the same subjects, which must stay each node's own.
var edgeDeny = []string{"nocbridge.>", "$KV.>", "$O.>"}

// EdgeServerName is the name an edge's embedded server has, and the hub
// sees its leaf connection by.
func EdgeServerName(site string) string { return "edge-" + site }

// edgeOptions makes the embedded server an edge's leaf node (e) or a hub's
// leaf listener (h); both nil: neither.
func edgeOptions(o *server.Options, e *config.Edge, h *config.Hub) error {
	if e != nil || h != nil {
		o.PingInterval, o.MaxPingsOut = leafPing, leafPingsOut
	}
	if e != nil {
		u, err := url.Parse(e.Hub)
		if err != nil {
			return fmt.Errorf("edge hub %q is not a URL", e.Hub)
		}
		o.ServerName = EdgeServerName(e.Site)
		o.JetStreamDomain = e.Site
		o.LeafNode.ReconnectInterval = leafReconnect
		remote := &server.RemoteLeafOpts{URLs: []*url.URL{u}, DenyImports: edgeDeny, DenyExports: edgeDeny}
		if t := e.TLS; t != nil {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile, Timeout: leafTLSTimeout})
			if err != nil {
				return fmt.Errorf("edge tls (%s, %s, %s): %w", t.CertFile, t.KeyFile, t.CAFile, err)
			}
			tc.RootCAs = tc.ClientCAs
			remote.TLS, remote.TLSConfig, remote.TLSTimeout = true, tc, leafTLSTimeout
		}
		o.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
	}
	if h != nil {
		host, port, err := net.SplitHostPort(h.Listen)
		if err != nil {
			return fmt.Errorf("hub listen %q: %w", h.Listen, err)
		}
		o.JetStreamDomain = config.HubDomain
		// Edges connect to the address they are given (a WAN address, a
		// NAT), never to the addresses the hub would advertise.
		o.LeafNode.NoAdvertise = true
		o.LeafNode.Host = cmpOr(host, "0.0.0.0")
		if o.LeafNode.Port, err = strconv.Atoi(port); err != nil {
			return fmt.Errorf("hub listen %q: port: %w", h.Listen, err)
		}
		if o.LeafNode.Port == 0 {
			o.LeafNode.Port = server.RANDOM_PORT // tests: any free port (LeafAddr)
		}
		if t := h.TLS; t != nil {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile,
				Verify: true, Timeout: leafTLSTimeout})
			if err != nil {
				return fmt.Errorf("hub tls (%s, %s, %s): %w", t.CertFile, t.KeyFile, t.CAFile, err)
			}
			o.LeafNode.TLSConfig, o.LeafNode.TLSTimeout = tc, leafTLSTimeout
		}
	}
	return nil
}

// LeafAddr is the hub's bound leaf-node listener (host:port), "" when this
// store is no hub. Tests listen on port 0 and read it here.
func (s *Store) LeafAddr() string {
	if s.srv == nil || s.hub == nil {
		return ""
	}
	v, err := s.srv.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	return net.JoinHostPort(v.LeafNode.Host, strconv.Itoa(v.LeafNode.Port))
}

// LeafConnected reports whether the leaf connection of the server named
// name (an edge's, EdgeServerName) is up, as this hub sees it; on an edge,
// name is ignored and it reports whether the connection to the hub is up.
func (s *Store) LeafConnected(name string) bool {
	if s.srv == nil {
		return false
	}
	if s.edge != nil {
		return s.srv.NumLeafNodes() > 0
	}
	lz, err := s.srv.Leafz(&server.LeafzOptions{})
	if err != nil {
		return false
	}
	for _, l := range lz.Leafs {
		if l.Name == name {
			return true
		}
	}
	return false
}

// EdgeBuffer is an edge's local stream of records, bounded: past its limit
// JetStream drops the oldest.
type EdgeBuffer struct {
	st     *Store
	stream jetstream.Stream
	site   string
	limit  int64

	mu sync.Mutex
	// delivered is the highest sequence the hub confirmed it has; evicted
	// records above it never reached the hub (dropped).
	delivered uint64
	dropped   uint64
	lastFirst uint64
}

// EdgeBufferStatus is the edge's buffer as /api/v1/cluster shows it.
type EdgeBufferStatus struct {
	Hub       string `json:"hub"`
	Site      string `json:"site"`
	Connected bool   `json:"connected"`
	Bytes     uint64 `json:"buffer_bytes"`
	Limit     int64  `json:"buffer_limit_bytes"`
	Messages  uint64 `json:"buffer_messages"`
	// Delivered is the last record the hub confirmed it has (it confirms
	// twice a second while records flow); Pending the records after it.
	Delivered uint64 `json:"delivered_seq"`
	Pending   uint64 `json:"pending"`
	// Dropped counts records evicted past the limit before the hub
	// confirmed them, since this process started, as far as the edge can
	// tell (it notices evictions when it looks, every heartbeat, and
	// learns what the hub has twice a second): close, not exact. The
	// hub's own count, by the gaps it sees, is exact.
	Dropped uint64 `json:"dropped"`
	// Unsent are observations the edge could not write to this buffer,
	// by reason (edge.Publisher's nocbridge_edge_unsent_total).
	Unsent map[string]uint64 `json:"unsent,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// EdgeBuffer opens (creating or resizing) the edge's stream. The store must
// have been opened with Options.Edge.
func (s *Store) EdgeBuffer(ctx context.Context) (*EdgeBuffer, error) {
	if s.edge == nil {
		return nil, errors.New("store: not an edge node (no edge: section)")
	}
	site := s.edge.Site
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        edgeStream,
		Description: "observations and heartbeats of edge site " + site + ", sourced by the hub",
		Subjects:    []string{edgeSubjectPrefix + site + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld, // a bounded buffer: the oldest go first
		MaxBytes:    int64(s.edge.Buffer),
		MaxMsgs:     -1,
	})
	if err != nil {
		return nil, fmt.Errorf("opening edge buffer %s in %s: %w", edgeStream, s.dir, err)
	}
	b := &EdgeBuffer{st: s, stream: st, site: site, limit: int64(s.edge.Buffer)}
	if info, err := st.Info(ctx); err == nil && info.State.FirstSeq > 0 {
		// What left before this start is not known to be undelivered.
		b.delivered, b.lastFirst = info.State.FirstSeq-1, info.State.FirstSeq
	}
	if _, err := s.nc.Subscribe(edgeConfirmPrefix+site, func(m *nats.Msg) {
		if n, err := strconv.ParseUint(string(m.Data), 10, 64); err == nil {
			b.mu.Lock()
			b.delivered = max(b.delivered, n)
			b.mu.Unlock()
		}
	}); err != nil {
		return nil, fmt.Errorf("edge buffer: listening for the hub's confirmations: %w", err)
	}
	return b, nil
}

// Append stores one record of kind (EdgeObservation, EdgeHeartbeat) and
// returns its sequence.
func (b *EdgeBuffer) Append(ctx context.Context, kind string, data []byte) (uint64, error) {
	var ack *jetstream.PubAck
	err := b.st.write(ctx, func(ctx context.Context) (err error) {
		ack, err = b.st.js.Publish(ctx, edgeSubjectPrefix+b.site+"."+kind, data, jetstream.WithExpectStream(edgeStream))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("appending to edge buffer: %w", err)
	}
	return ack.Sequence, nil
}

// Status reads the buffer's state and the hub's source consumer on it,
// counting records evicted before the hub took them.
func (b *EdgeBuffer) Status(ctx context.Context) EdgeBufferStatus {
	out := EdgeBufferStatus{Hub: redactLeaf(b.st.edge.Hub), Site: b.site, Limit: b.limit, Connected: b.st.LeafConnected("")}
	ctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		out.Error = "reading the edge buffer: " + err.Error()
		b.mu.Lock()
		out.Delivered, out.Dropped = b.delivered, b.dropped
		b.mu.Unlock()
		return out
	}
	out.Bytes, out.Messages = info.State.Bytes, info.State.Msgs
	b.mu.Lock()
	defer b.mu.Unlock()
	if first := info.State.FirstSeq; first > b.lastFirst {
		// Records lastFirst..first-1 were evicted; those above delivered
		// never reached the hub.
		lo := max(b.lastFirst, b.delivered+1)
		if first > lo {
			b.dropped += first - lo
		}
		b.lastFirst = first
		b.delivered = max(b.delivered, first-1)
	}
	out.Delivered, out.Dropped = b.delivered, b.dropped
	if info.State.LastSeq > b.delivered {
		out.Pending = info.State.LastSeq - b.delivered
	}
	return out
}

// redactLeaf is a leaf URL without its password.
func redactLeaf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// EdgeRecord is one record of an edge site, as the hub reads it.
type EdgeRecord struct {
	Kind string // EdgeObservation or EdgeHeartbeat
	Data []byte
	// Origin is the record's sequence in the edge's buffer; Gap how many
	// records before it the hub never received (evicted at the edge
	// during an outage).
	Origin, Gap uint64
	// Behind: its origin is not after the last record's (a record again,
	// or an edge whose buffer was made anew and starts again at 1).
	Behind bool
}

// EdgeSource is the hub's copy of one edge site's buffer and its durable
// reader.
type EdgeSource struct {
	st     *Store
	site   string
	stream jetstream.Stream
	cons   jetstream.Consumer

	mu         sync.Mutex
	lastOrigin uint64
}

// hubStreamConfig is the hub's stream of site, sourcing its edge's buffer
// (without the source: sourced false).
func (s *Store) hubStreamConfig(site string, sourced bool) jetstream.StreamConfig {
	sc := jetstream.StreamConfig{
		Name:        hubStreamPrefix + site,
		Description: "edge site " + site + "'s observations, sourced from its buffer",
		Storage:     jetstream.FileStorage,
		Replicas:    s.replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      hubRetention,
		MaxMsgs:     -1,
		MaxBytes:    -1,
	}
	if sourced {
		sc.Sources = []*jetstream.StreamSource{{
			Name:     edgeStream,
			External: &jetstream.ExternalStream{APIPrefix: "$JS." + site + ".API"},
		}}
	}
	return sc
}

// EdgeSource opens (creating) the hub's stream EDGE_<site>, which sources
// the site's EDGE stream through its JetStream domain, and the hub's
// durable consumer on it.
func (s *Store) EdgeSource(ctx context.Context, site string) (*EdgeSource, error) {
	name := hubStreamPrefix + site
	st, err := s.js.CreateOrUpdateStream(ctx, s.hubStreamConfig(site, true))
	if err != nil {
		return nil, fmt.Errorf("opening the hub's stream %s in %s: %w", name, s.dir, err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       hubConsumer,
		Description:   "the hub's evaluation of edge site " + site,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1024,
		AckWait:       30 * time.Second,
		Replicas:      s.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the hub's reader of %s: %w", name, err)
	}
	e := &EdgeSource{st: s, site: site, stream: st, cons: cons}
	// The last record read before a restart sets where gaps are counted
	// from.
	if ci, err := cons.Info(ctx); err == nil && ci.AckFloor.Stream > 0 {
		if m, err := st.GetMsg(ctx, ci.AckFloor.Stream); err == nil {
			e.lastOrigin = originSeq(m.Header)
		}
	}
	return e, nil
}

// Resume makes JetStream set the site's source up again now. A source
// whose edge is unreachable is retried with a growing back-off (10 s more
// each failure, up to two minutes), so after a WAN outage it could resume
// long after the leaf connection is back: the hub calls Resume when it sees
// the site's leaf connection come up. The source is removed and added
// again; JetStream finds where it stopped from the stream's last sourced
// record (its Nats-Stream-Source header) and resumes after it, so nothing
// is read twice or skipped.
func (e *EdgeSource) Resume(ctx context.Context) error {
	for _, sourced := range []bool{false, true} {
		if _, err := e.st.js.UpdateStream(ctx, e.st.hubStreamConfig(e.site, sourced)); err != nil {
			return fmt.Errorf("resuming the source of edge site %s: %w", e.site, err)
		}
	}
	return nil
}

// streamSourceHeader is the header JetStream puts on a sourced record.
const streamSourceHeader = "Nats-Stream-Source"

// originSeq is the edge buffer's sequence of a sourced record, from the
// Nats-Stream-Source header JetStream puts on it ("EDGE:… 42 …").
func originSeq(h nats.Header) uint64 {
	f := strings.Fields(h.Get(streamSourceHeader))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n
}

// Read calls fn for each record of the site, in the edge's order, from
// the first one not yet read, until ctx is done; a record is acknowledged
// once fn returns nil, and read again (after the ack wait) otherwise.
func (e *EdgeSource) Read(ctx context.Context, fn func(EdgeRecord) error) error {
	msgs, err := e.cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("reading edge site %s: %w", e.site, err)
	}
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	defer msgs.Stop()
	prefix := edgeSubjectPrefix + e.site + "."
	var confirmed time.Time
	for {
		m, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return fmt.Errorf("reading edge site %s: %w", e.site, err)
			}
			// A missed heartbeat of the pull, a reconnect: it goes on.
			e.st.log.Debug("reading an edge site", "site", e.site, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		rec := EdgeRecord{Kind: strings.TrimPrefix(m.Subject(), prefix), Data: m.Data(), Origin: originSeq(m.Headers())}
		e.mu.Lock()
		switch {
		case rec.Origin > e.lastOrigin+1:
			rec.Gap = rec.Origin - e.lastOrigin - 1
		case rec.Origin <= e.lastOrigin:
			rec.Behind = true // counted: an edge made anew starts again at 1
		}
		e.mu.Unlock()
		if err := fn(rec); err != nil {
			_ = m.Nak()
			continue
		}
		if err := m.Ack(); err != nil && ctx.Err() == nil {
			e.st.log.Warn("acknowledging an edge record", "site", e.site, "err", err)
		}
		e.mu.Lock()
		if rec.Origin > 0 {
			e.lastOrigin = rec.Origin
		}
		last := e.lastOrigin
		e.mu.Unlock()
		// Tell the edge what the hub has, so it can count what it drops
		// unsent: while records flow, and when caught up.
		if meta, err := m.Metadata(); err == nil && (meta.NumPending == 0 || time.Since(confirmed) >= confirmEvery) {
			confirmed = time.Now()
			_ = e.st.nc.Publish(edgeConfirmPrefix+e.site, strconv.AppendUint(nil, last, 10))
		}
	}
}

// EdgeSiteStream is the hub's view of one site's stream.
type EdgeSiteStream struct {
	Messages uint64 `json:"messages"`
	// Pending are records received from the edge not yet evaluated.
	Pending uint64 `json:"pending"`
	// SourceLag is how many records the edge holds that the hub has not
	// received yet, as JetStream last knew it.
	SourceLag uint64 `json:"source_lag"`
	// LastOrigin is the edge sequence of the last record evaluated.
	LastOrigin uint64 `json:"last_origin_seq"`
	Error      string `json:"error,omitempty"`
}

// Status reads the site's stream and reader.
func (e *EdgeSource) Status(ctx context.Context) EdgeSiteStream {
	ctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	defer cancel()
	var out EdgeSiteStream
	e.mu.Lock()
	out.LastOrigin = e.lastOrigin
	e.mu.Unlock()
	info, err := e.stream.Info(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Messages = info.State.Msgs
	for _, src := range info.Sources {
		out.SourceLag += src.Lag
	}
	if ci, err := e.cons.Info(ctx); err == nil {
		out.Pending = ci.NumPending + uint64(ci.NumAckPending)
	}
	return out
}
