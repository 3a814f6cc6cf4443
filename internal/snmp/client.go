package snmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/snmp/usm"
)

// Client is the slice of gosnmp the poller needs; tests substitute a fake.
// A Client is used by one goroutine at a time.
type Client interface {
	// Connect opens the socket (and resolves a DNS name) within ctx.
	Connect(ctx context.Context) error
	// Get returns one PDU per OID, in order. An object the agent does not
	// have comes back with Type NoSuchObject or NoSuchInstance (SNMPv1's
	// noSuchName included), never as an error.
	Get(ctx context.Context, oids []string) ([]gosnmp.SnmpPDU, error)
	// BulkWalk returns every object below root, in OID order (GETNEXT for
	// SNMPv1). An empty subtree is no error.
	BulkWalk(ctx context.Context, root string) ([]gosnmp.SnmpPDU, error)
	Close() error
}

// StatusError is an SNMP response whose error-status is not noError.
type StatusError struct {
	Status gosnmp.SNMPError
	Index  uint8 // 1-based index of the varbind concerned; 0 for none
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("agent answered error-status %v (index %d)", e.Status, e.Index)
}

// Reasons a poll failed, as Result.Reason reports them.
const (
	ReasonTimeout     = "timeout"     // no answer within timeout × retries (a wrong community or v3 privacy key looks the same)
	ReasonAuth        = "auth"        // v3 wrong digest / unknown user / security level, or authorizationError
	ReasonUnreachable = "unreachable" // ICMP unreachable (nothing listens), no route, DNS failure
	ReasonError       = "error"       // anything else: bad profile, no such object, protocol errors
)

// ErrNoSuchObject means the agent answered but holds none of the polled
// objects (a restricted view, or an agent without the standard MIBs).
var ErrNoSuchObject = errors.New("no such object: the agent has none of the polled objects")

// classify maps a poll error to a Result.Reason.
func classify(err error) string {
	var status *StatusError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, gosnmp.ErrWrongDigest), errors.Is(err, gosnmp.ErrUnknownUsername),
		errors.Is(err, gosnmp.ErrUnknownSecurityLevel), errors.Is(err, gosnmp.ErrDecryption), errors.Is(err, ErrNotAuthentic),
		errors.As(err, &status) && status.Status == gosnmp.AuthorizationError:
		return ReasonAuth
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTDOWN), errors.As(err, &dnsErr):
		return ReasonUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, gosnmp.ErrMaxRetriesExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	default:
		return ReasonError
	}
}

// maxRepetitions keeps a GETBULK answer of a typical table column well under
// one Ethernet MTU; big answers get fragmented and lost on busy links.
const maxRepetitions = 25

// gosnmpClient is the real Client.
type gosnmpClient struct {
	g    *gosnmp.GoSNMP
	conn *recordingConn // v3 only: keeps the last datagram to explain auth failures
}

// NewClient builds a gosnmp client for t; it validates the profile but does
// not open a socket. Errors name the bad field, never a secret.
func NewClient(t Target) (Client, error) {
	t = withDefaults(t)
	p := t.Profile
	if p.Port < 1 || p.Port > 65535 {
		return nil, fmt.Errorf("SNMP port %d out of range", p.Port)
	}
	g := &gosnmp.GoSNMP{
		Target:         t.Address,
		Port:           uint16(p.Port),
		Transport:      "udp",
		Timeout:        t.Timeout,
		Retries:        t.Retries,
		MaxOids:        gosnmp.MaxOids,
		MaxRepetitions: maxRepetitions,
	}
	switch p.Version {
	case "1":
		g.Version, g.Community = gosnmp.Version1, p.Community.Reveal()
	case "2c":
		g.Version, g.Community = gosnmp.Version2c, p.Community.Reveal()
	case "3":
		u, err := usm.New(p)
		if err != nil {
			return nil, err
		}
		g.Version, g.SecurityModel, g.MsgFlags, g.SecurityParameters = gosnmp.Version3, gosnmp.UserSecurityModel, u.Flags(), u.Params("")
	default:
		return nil, fmt.Errorf("unknown SNMP version %q (want 1, 2c or 3)", p.Version)
	}
	return &gosnmpClient{g: g}, nil
}

func (c *gosnmpClient) Connect(ctx context.Context) error {
	c.g.Context = ctx
	if err := c.g.Connect(); err != nil {
		return err
	}
	if c.g.Version == gosnmp.Version3 {
		c.conn = &recordingConn{Conn: c.g.Conn}
		c.g.Conn = c.conn
	}
	return nil
}

func (c *gosnmpClient) Close() error { return c.g.Close() }

func (c *gosnmpClient) Get(ctx context.Context, oids []string) ([]gosnmp.SnmpPDU, error) {
	c.g.Context = ctx
	out := make([]gosnmp.SnmpPDU, 0, len(oids))
	for chunk := range slices.Chunk(oids, c.g.MaxOids) {
		pdus, err := c.getChunk(chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, pdus...)
	}
	return out, nil
}

// getChunk GETs at most MaxOids objects. SNMPv1 fails a whole request for
// one missing object (noSuchName at its index): that object is marked
// NoSuchObject and the rest asked again.
func (c *gosnmpClient) getChunk(oids []string) ([]gosnmp.SnmpPDU, error) {
	out := make([]gosnmp.SnmpPDU, len(oids))
	ask := make([]int, len(oids)) // positions in out still to fetch
	for i := range ask {
		ask[i] = i
	}
	for len(ask) > 0 {
		names := make([]string, len(ask))
		for i, pos := range ask {
			names[i] = oids[pos]
		}
		pkt, err := c.g.Get(names)
		if err != nil {
			return nil, c.explain(err)
		}
		if pkt.Error == gosnmp.NoSuchName && int(pkt.ErrorIndex) >= 1 && int(pkt.ErrorIndex) <= len(ask) {
			bad := int(pkt.ErrorIndex) - 1
			out[ask[bad]] = gosnmp.SnmpPDU{Name: oids[ask[bad]], Type: gosnmp.NoSuchObject}
			ask = append(ask[:bad], ask[bad+1:]...)
			continue
		}
		if pkt.Error != gosnmp.NoError {
			return nil, &StatusError{Status: pkt.Error, Index: pkt.ErrorIndex}
		}
		if len(pkt.Variables) != len(ask) {
			return nil, fmt.Errorf("agent answered %d varbinds for %d requested", len(pkt.Variables), len(ask))
		}
		for i, pos := range ask {
			out[pos] = pkt.Variables[i]
		}
		ask = nil
	}
	return out, nil
}

func (c *gosnmpClient) BulkWalk(ctx context.Context, root string) ([]gosnmp.SnmpPDU, error) {
	c.g.Context = ctx
	walk := c.g.BulkWalkAll
	if c.g.Version == gosnmp.Version1 {
		walk = c.g.WalkAll
	}
	pdus, err := walk(root)
	if err != nil {
		return nil, c.explain(err)
	}
	return pdus, nil
}

// ErrNotAuthentic is an SNMPv3 answer that does not authenticate with our
// keys: the agent and this profile disagree on the auth key or protocol.
var ErrNotAuthentic = errors.New("SNMPv3 answer not authentic")

// usmReports maps the USM error counters an agent reports, unauthenticated,
// when it rejects a request (RFC 3414 section 3.2), to gosnmp's errors.
var usmReports = map[string]struct {
	err  error
	hint string
}{
	".1.3.6.1.6.3.15.1.1.5.0": {gosnmp.ErrWrongDigest, "usmStatsWrongDigests: wrong auth passphrase or protocol"},
	".1.3.6.1.6.3.15.1.1.3.0": {gosnmp.ErrUnknownUsername, "usmStatsUnknownUserNames: the agent has no such user"},
	".1.3.6.1.6.3.15.1.1.1.0": {gosnmp.ErrUnknownSecurityLevel, "usmStatsUnsupportedSecLevels: the user is not configured for this security level"},
	".1.3.6.1.6.3.15.1.1.6.0": {gosnmp.ErrDecryption, "usmStatsDecryptionErrors: wrong priv passphrase or protocol"},
}

// explain turns gosnmp's "incoming packet is not authentic" into the
// reason the agent gave. gosnmp rightly refuses the unauthenticated Report
// that carries it once the engine is known, and says no more; the Report's
// varbind names the USM counter the agent raised.
func (c *gosnmpClient) explain(err error) error {
	if c.conn == nil || c.conn.last == nil || !strings.Contains(err.Error(), "not authentic") {
		return err
	}
	decoder := &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.NoAuthNoPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: "report", AuthenticationProtocol: gosnmp.NoAuth, PrivacyProtocol: gosnmp.NoPriv}}
	pkt, decErr := decoder.SnmpDecodePacket(c.conn.last)
	if decErr == nil && pkt.PDUType == gosnmp.Report && len(pkt.Variables) == 1 {
		if r, ok := usmReports[pkt.Variables[0].Name]; ok {
			return fmt.Errorf("agent reported %s: %w", r.hint, r.err)
		}
	}
	return fmt.Errorf("%w: %w", ErrNotAuthentic, err)
}

// recordingConn keeps the last datagram received.
type recordingConn struct {
	net.Conn
	last []byte
}

func (r *recordingConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n > 0 {
		r.last = append(r.last[:0], b[:n]...)
	}
	return n, err
}
