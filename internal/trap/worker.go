package trap

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"

	"github.com/gosnmp/gosnmp"
	"github.com/nocbridge/nocbridge/internal/snmp/usm"
)

// OIDs of the USM reports the receiver sends (RFC 3414 section 5).
const (
	oidUsmStatsNotInTimeWindows = ".1.3.6.1.6.3.15.1.1.2.0"
	oidUsmStatsUnknownEngineIDs = ".1.3.6.1.6.3.15.1.1.4.0"
)

// worker owns its gosnmp values: gosnmp's decoder state is per value, and
// this keeps workers from sharing it.
type worker struct {
	r   *Receiver
	v12 *gosnmp.GoSNMP
	v3  *gosnmp.GoSNMP
}

func newWorker(r *Receiver) *worker {
	return &worker{
		r:   r,
		v12: &gosnmp.GoSNMP{Version: gosnmp.Version2c},
		v3:  &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel},
	}
}

// drop is a refused datagram: why, and what to log about it (empty: the
// reason says it all and the datagram is not worth a log line).
type drop struct {
	reason string
	msg    string
	args   []any
}

// handleDatagram decodes one datagram, counts it exactly once (received or
// dropped), hands an accepted trap to handle and returns the reply to send,
// if any (inform acknowledgement or USM report).
func (w *worker) handleDatagram(d datagram, handle func(Trap)) []byte {
	t, reply, dr := w.decode(d)
	if dr != nil {
		w.r.counts.dropped[reasonIndex(dr.reason)].Add(1)
		if dr.msg != "" {
			args := append([]any{"source", d.from.Addr(), "reason", dr.reason}, dr.args...)
			w.r.logs.Log(w.r.log, slog.LevelWarn, dr.reason+":"+dr.msg, dr.msg, args...)
		}
		return reply
	}
	w.r.counts.received[versionIndex(t.Version)].Add(1)
	w.deliver(handle, t, d.from)
	return reply
}

// deliver calls handle; a panicking handler loses this trap only, never the
// worker.
func (w *worker) deliver(handle func(Trap), t Trap, from netip.AddrPort) {
	defer func() {
		if p := recover(); p != nil {
			w.r.logs.Log(w.r.log, slog.LevelError, "handler-panic", "trap handler panicked",
				"source", from.Addr(), "trap", t.Trap, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	handle(t)
}

// decode turns one datagram into a trap, or says why not. A panic in the
// decoder (gosnmp parses attacker-controlled bytes) is recovered here and
// becomes a drop.
func (w *worker) decode(d datagram) (t Trap, reply []byte, dr *drop) {
	defer func() {
		if p := recover(); p != nil {
			t, reply = Trap{}, nil
			dr = &drop{reason: ReasonPanic, msg: "trap decoder panicked",
				args: []any{"panic", fmt.Sprint(p), "stack", string(debug.Stack())}}
		}
	}()
	h, err := parseHeader(d.b)
	if err != nil {
		return t, nil, &drop{reason: ReasonMalformed, msg: "malformed SNMP datagram", args: []any{"bytes", len(d.b)}}
	}
	pol := w.r.policy.Load()
	switch h.version {
	case 0, 1:
		if !pol.communityOK(h.community) {
			// The community itself is a secret of someone's: never logged.
			return t, nil, &drop{reason: ReasonCommunity, msg: "unknown SNMP community"}
		}
		pkt, err := w.v12.UnmarshalTrap(d.b, false)
		if err != nil {
			return t, nil, &drop{reason: ReasonMalformed, msg: "undecodable SNMP message", args: []any{"err", err}}
		}
		return w.accept(pol, d, pkt, nil)
	default: // 3: parseHeader admits no other version
		return w.decodeV3(pol, d, h)
	}
}

func (w *worker) decodeV3(pol *policy, d datagram, h header) (Trap, []byte, *drop) {
	if h.securityModel != int(gosnmp.UserSecurityModel) {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "unsupported SNMPv3 security model", args: []any{"model", h.securityModel}}
	}
	if h.msgFlags&flagReportable != 0 && h.msgFlags&(flagAuth|flagPriv) == 0 &&
		len(h.userName) == 0 && len(h.engineID) == 0 {
		return w.discovery(d)
	}
	user, engineID := string(h.userName), string(h.engineID)
	cands := pol.users[user]
	if len(cands) == 0 {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "unknown SNMPv3 user", args: []any{"user", user}}
	}
	if n := len(engineID); n < 5 || n > 32 {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "SNMPv3 engine ID of invalid length", args: []any{"user", user, "length", n}}
	}
	reason, cause := ReasonAuth, "SNMPv3 authentication failed"
	for _, u := range cands {
		if need := byte(u.Flags()); h.msgFlags&need != need { // gosnmp's flag bits are the wire's
			cause = "SNMPv3 message below the user's security level"
			continue
		}
		sp, cached, err := pol.keys.get(u, engineID)
		if err != nil {
			cause = err.Error()
			continue
		}
		w.v3.SecurityParameters = sp
		// UnmarshalTrap blanks the MAC in place: each attempt needs the
		// original bytes.
		pkt, err := w.v3.UnmarshalTrap(bytes.Clone(d.b), true)
		if err != nil {
			if u.Auth == gosnmp.NoAuth {
				// Nothing to authenticate: the message itself is bad.
				reason, cause = ReasonMalformed, "undecodable SNMPv3 message"
			}
			continue
		}
		if !cached {
			pol.keys.put(u, engineID, sp)
		}
		return w.acceptV3(pol, d, pkt, u, engineID)
	}
	return Trap{}, nil, &drop{reason: reason, msg: cause, args: []any{"user", user}}
}

// discovery answers an RFC 3414 section 4 engine discovery probe with a
// Report carrying the local engine ID, so senders can then send informs.
// The probe is not a trap: it is counted under its own drop reason,
// "discovery", so that received + dropped still adds up to every datagram
// without raising the auth-failure count an operator watches.
func (w *worker) discovery(d datagram) (Trap, []byte, *drop) {
	if len(w.r.engineID) == 0 {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "SNMPv3 engine discovery received but traps.engine_id is not set"}
	}
	w.v3.SecurityParameters = &gosnmp.UsmSecurityParameters{}
	pkt, err := w.v3.UnmarshalTrap(bytes.Clone(d.b), true)
	if err != nil || pkt.PDUType != gosnmp.GetRequest || len(pkt.Variables) != 0 {
		return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "invalid SNMPv3 engine discovery request"}
	}
	n := w.r.unknownID.Add(1)
	reply, err := w.r.v3Message(pkt, gosnmp.Report, gosnmp.NoAuthNoPriv, "",
		[]gosnmp.SnmpPDU{{Name: oidUsmStatsUnknownEngineIDs, Type: gosnmp.Counter32, Value: n}}, nil)
	if err != nil {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "building engine discovery report failed", args: []any{"err", err}}
	}
	return Trap{}, reply, &drop{reason: ReasonDiscovery}
}

func (w *worker) acceptV3(pol *policy, d datagram, pkt *gosnmp.SnmpPacket, u *usm.User, engineID string) (Trap, []byte, *drop) {
	switch pkt.PDUType {
	case gosnmp.SNMPv2Trap:
		// A trap is authoritative at the sender: its own engine ID.
		return w.accept(pol, d, pkt, nil)
	case gosnmp.InformRequest:
	default:
		return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "SNMPv3 PDU is not a trap or inform", args: []any{"pdu", pkt.PDUType.String()}}
	}
	// An inform is authoritative at the receiver: it must use our engine
	// ID and be within our time window (RFC 3414 3.2.7).
	if len(w.r.engineID) == 0 {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "SNMPv3 inform received but traps.engine_id is not set", args: []any{"user", u.Name}}
	}
	if engineID != string(w.r.engineID) {
		n := w.r.unknownID.Add(1)
		reply, err := w.r.v3Message(pkt, gosnmp.Report, gosnmp.NoAuthNoPriv, u.Name,
			[]gosnmp.SnmpPDU{{Name: oidUsmStatsUnknownEngineIDs, Type: gosnmp.Counter32, Value: n}}, nil)
		if err != nil {
			reply = nil
		}
		return Trap{}, reply, &drop{reason: ReasonAuth, msg: "SNMPv3 inform for another engine ID", args: []any{"user", u.Name}}
	}
	usm, _ := pkt.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if usm == nil {
		return Trap{}, nil, &drop{reason: ReasonAuth, msg: "SNMPv3 inform without USM parameters"}
	}
	if u.Auth != gosnmp.NoAuth {
		now := w.r.engineTime()
		if usm.AuthoritativeEngineBoots != w.r.boots || diff(usm.AuthoritativeEngineTime, now) > timeWindow {
			n := w.r.notInTime.Add(1)
			reply, err := w.r.v3Message(pkt, gosnmp.Report, gosnmp.AuthNoPriv, u.Name,
				[]gosnmp.SnmpPDU{{Name: oidUsmStatsNotInTimeWindows, Type: gosnmp.Counter32, Value: n}}, usm)
			if err != nil {
				reply = nil
			}
			return Trap{}, reply, &drop{reason: ReasonAuth, msg: "SNMPv3 inform outside the time window", args: []any{"user", u.Name}}
		}
	}
	return w.accept(pol, d, pkt, usm)
}

func diff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// accept turns a decoded, authenticated packet into a Trap, applies the
// unknown-source policy and builds the inform acknowledgement.
func (w *worker) accept(pol *policy, d datagram, pkt *gosnmp.SnmpPacket, usm *gosnmp.UsmSecurityParameters) (Trap, []byte, *drop) {
	t := Trap{Time: d.at, Source: d.from.Addr()}
	names := w.r.names
	switch pkt.Version {
	case gosnmp.Version1:
		if pkt.PDUType != gosnmp.Trap {
			return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "SNMPv1 PDU is not a trap", args: []any{"pdu", pkt.PDUType.String()}}
		}
		t.Version = Version1
		oid, ok := v1TrapOID(pkt.Enterprise, pkt.GenericTrap, pkt.SpecificTrap)
		if !ok {
			return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "SNMPv1 trap with invalid generic-trap",
				args: []any{"generic", pkt.GenericTrap, "specific", pkt.SpecificTrap}}
		}
		t.TrapOID = oid
		t.Source = v1Source(pol, pkt.AgentAddress, t.Source)
		// The v2 form of the same trap (RFC 3584 3.1): sysUpTime.0 and
		// snmpTrapOID.0 first, snmpTrapEnterprise.0 last.
		t.Varbinds = make([]Varbind, 0, len(pkt.Variables)+3)
		t.Varbinds = append(t.Varbinds,
			newVarbind(names, gosnmp.SnmpPDU{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(pkt.Timestamp)}),
			newVarbind(names, gosnmp.SnmpPDU{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: oid}))
		for _, v := range pkt.Variables {
			t.Varbinds = append(t.Varbinds, newVarbind(names, v))
		}
		t.Varbinds = append(t.Varbinds, newVarbind(names,
			gosnmp.SnmpPDU{Name: oidSnmpTrapEnterp, Type: gosnmp.ObjectIdentifier, Value: pkt.Enterprise}))
	case gosnmp.Version2c, gosnmp.Version3:
		if pkt.PDUType != gosnmp.SNMPv2Trap && pkt.PDUType != gosnmp.InformRequest {
			return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "SNMP PDU is not a trap or inform", args: []any{"pdu", pkt.PDUType.String()}}
		}
		t.Version = Version2c
		if pkt.Version == gosnmp.Version3 {
			t.Version = Version3
		}
		t.Inform = pkt.PDUType == gosnmp.InformRequest
		t.Varbinds = make([]Varbind, 0, len(pkt.Variables))
		for _, v := range pkt.Variables {
			vb := newVarbind(names, v)
			if vb.OID == oidSnmpTrapOID && t.TrapOID == "" {
				if s, ok := vb.Value.(string); ok && v.Type == gosnmp.ObjectIdentifier {
					t.TrapOID = s
				}
			}
			t.Varbinds = append(t.Varbinds, vb)
		}
		// RFC 3416 4.2.6: snmpTrapOID.0 is mandatory.
		if t.TrapOID == "" {
			return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "SNMP notification without snmpTrapOID.0"}
		}
	default:
		return Trap{}, nil, &drop{reason: ReasonMalformed, msg: "unsupported SNMP version"}
	}
	dev, known := pol.device(t.Source)
	switch {
	case known:
	case pol.dropUnknown:
		// Not acknowledged either: the sender keeps retrying a refused inform
		// only until its retries run out, which is what "drop" asks for.
		return Trap{}, nil, &drop{reason: ReasonUnknownSource, msg: "trap from an address not in the inventory"}
	case !w.r.unknown.admit(t.Source, d.at, pol.maxUnknown, pol.expire):
		return Trap{}, nil, &drop{reason: ReasonUnknownLimit, msg: "trap from one unknown sender too many (traps.max_unknown_sources)",
			args: []any{"max_unknown_sources", pol.maxUnknown}}
	}
	t.Device = dev
	t.Trap = t.TrapOID
	if n, ok := names.Name(t.TrapOID); ok {
		t.Trap = n
	}
	t.Vars = make(map[string]any, len(t.Varbinds))
	for _, vb := range t.Varbinds {
		if _, dup := t.Vars[vb.key()]; !dup {
			t.Vars[vb.key()] = vb.Value
		}
	}
	if !t.Inform {
		return t, nil, nil
	}
	reply, err := w.r.ack(pkt, usm)
	if err != nil {
		// The trap itself is good: hand it on; the sender will retry and
		// a duplicate trap is better than a lost one.
		w.r.logs.Log(w.r.log, slog.LevelWarn, "ack", "building inform acknowledgement failed", "source", d.from.Addr(), "err", err)
	}
	return t, reply, nil
}

// v1Source picks the device a v1 trap is about. The agent-addr field is
// the sender's word only, so it is believed only from a relay (traps.relays)
// and, when it names a known device, from a known device; otherwise the trap
// is the UDP sender's, and unknown_sources judges that.
func v1Source(pol *policy, agentAddr string, sender netip.Addr) netip.Addr {
	agent, err := netip.ParseAddr(agentAddr)
	if err != nil || agent.IsUnspecified() {
		return sender
	}
	agent = agent.Unmap()
	if pol.relay(sender) {
		return agent
	}
	if _, ok := pol.device(sender); ok {
		if _, ok := pol.device(agent); ok {
			return agent
		}
	}
	return sender
}

// ack builds the Response PDU that acknowledges an inform: same request-id,
// same varbinds (RFC 3416 4.2.7).
func (r *Receiver) ack(req *gosnmp.SnmpPacket, usm *gosnmp.UsmSecurityParameters) ([]byte, error) {
	if req.Version != gosnmp.Version3 {
		resp := &gosnmp.SnmpPacket{Version: req.Version, Community: req.Community,
			PDUType: gosnmp.GetResponse, RequestID: req.RequestID, Variables: req.Variables}
		return resp.MarshalMsg()
	}
	if usm == nil {
		return nil, errors.New("v3 inform without security parameters")
	}
	return r.v3Message(req, gosnmp.GetResponse, req.MsgFlags&gosnmp.AuthPriv, usm.UserName, req.Variables, usm)
}

// v3Message builds a v3 response or report to req, from the local engine.
// usm carries the user's keys (localized to the local engine) when flags
// ask for authentication.
func (r *Receiver) v3Message(req *gosnmp.SnmpPacket, pdu gosnmp.PDUType, flags gosnmp.SnmpV3MsgFlags,
	user string, vars []gosnmp.SnmpPDU, usm *gosnmp.UsmSecurityParameters) ([]byte, error) {
	sp := &gosnmp.UsmSecurityParameters{UserName: user}
	if usm != nil {
		sp = usm.Copy().(*gosnmp.UsmSecurityParameters)
	}
	sp.AuthoritativeEngineID = string(r.engineID)
	sp.AuthoritativeEngineBoots = r.boots
	sp.AuthoritativeEngineTime = r.engineTime()
	sp.AuthenticationParameters = ""
	sp.PrivacyParameters = nil
	if flags&gosnmp.AuthPriv == gosnmp.AuthPriv {
		// A fresh random salt per message: a counter starting at zero in
		// every process would repeat IVs under the same key.
		salt := make([]byte, 8)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		sp.PrivacyParameters = salt
	}
	resp := &gosnmp.SnmpPacket{
		Version: gosnmp.Version3, MsgFlags: flags, SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: sp, ContextEngineID: string(r.engineID), ContextName: req.ContextName,
		PDUType: pdu, MsgID: req.MsgID, RequestID: req.RequestID, MsgMaxSize: 65507, Variables: vars,
	}
	if pdu == gosnmp.GetResponse {
		resp.ContextEngineID = req.ContextEngineID
	}
	return resp.MarshalMsg()
}
