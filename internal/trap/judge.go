package trap

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/lograte"
	"github.com/nocbridge/nocbridge/internal/snmp/mib"
	"github.com/nocbridge/nocbridge/internal/snmp/usm"
)

// Verdict is what a receiver does with one datagram.
type Verdict struct {
	Accepted bool
	// Reason is the drop reason (ReasonCommunity, ReasonAuth,
	// ReasonUnknownSource…) of a refused datagram, as the
	// nocbridge_traps_dropped_total metric counts it.
	Reason string
	// Detail says why in words ("unknown SNMP community", "SNMPv3
	// authentication failed"); never a secret.
	Detail string
	// Device is the inventory device an accepted trap is about; "" for an
	// unknown sender.
	Device string
}

// Judge runs one datagram sent from `from` through the same checks a
// receiver with opts applies — community, v3 user and keys, the
// unknown-source policy — without a socket and without touching any running
// receiver (`nocbridge probe` asks it which of a device's traps would be
// let in). The per-source rate limit and the count of unknown senders
// already tracked belong to the running daemon and are not judged.
func Judge(opts Options, from netip.Addr, b []byte) (Verdict, error) {
	pol, err := newPolicy(opts)
	if err != nil {
		return Verdict{}, err
	}
	names := opts.Names
	if names == nil {
		names = mib.Default
	}
	now := time.Now()
	r := &Receiver{engineID: opts.EngineID, names: names, log: slog.New(slog.DiscardHandler), logs: lograte.New(logInterval),
		boots: uint32(min(max(now.Unix(), 1), 1<<31-1)), bootTime: now}
	r.policy.Store(pol)
	t, _, dr := newWorker(r).decode(datagram{b: b, from: netip.AddrPortFrom(from.Unmap(), 0), at: now})
	if dr != nil {
		detail := dr.msg
		if detail == "" {
			detail = dr.reason
		}
		return Verdict{Reason: dr.reason, Detail: detail}, nil
	}
	v := Verdict{Accepted: true}
	if t.Device != nil {
		v.Device = t.Device.Name
	}
	return v, nil
}

// probeEngineID is the authoritative engine ID of the v3 traps SampleTrap
// encodes: a device's own is not known before it sends.
const probeEngineID = "\x80\x00\x1f\x88\x04nocbridge-probe"

// SampleTrap encodes the coldStart trap a device configured with profile
// p would send: SNMPv1 or v2c with its community, or SNMPv3 as its user
// with its keys and security level. Judge tells whether it would be let in.
func SampleTrap(p config.SNMPProfile) ([]byte, error) {
	vars := []gosnmp.SnmpPDU{
		{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(4200)},
		{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.6.3.1.1.5.1"}, // SNMPv2-MIB::coldStart
	}
	pkt := &gosnmp.SnmpPacket{PDUType: gosnmp.SNMPv2Trap, RequestID: 1, Variables: vars}
	switch p.Version {
	case "1":
		pkt.Version, pkt.Community, pkt.PDUType, pkt.Variables = gosnmp.Version1, p.Community.Reveal(), gosnmp.Trap, nil
		// agent-addr 0.0.0.0: the trap is the UDP sender's (v1Source).
		pkt.SnmpTrap = gosnmp.SnmpTrap{Enterprise: ".1.3.6.1.4.1.8072.3.2.10", AgentAddress: "0.0.0.0", GenericTrap: 0, Timestamp: 4200}
	case "2c":
		pkt.Version, pkt.Community = gosnmp.Version2c, p.Community.Reveal()
	case "3":
		u, err := usm.New(p)
		if err != nil {
			return nil, err
		}
		sp := u.Params(probeEngineID)
		sp.AuthoritativeEngineBoots, sp.AuthoritativeEngineTime = 1, 1
		if err := sp.InitSecurityKeys(); err != nil {
			return nil, fmt.Errorf("v3 user %q: %w", p.User, err)
		}
		pkt.Version, pkt.MsgFlags, pkt.SecurityModel, pkt.SecurityParameters = gosnmp.Version3, u.Flags(), gosnmp.UserSecurityModel, sp
		pkt.ContextEngineID, pkt.MsgID, pkt.MsgMaxSize = probeEngineID, 1, 65507
		if err := sp.InitPacket(pkt); err != nil { // the privacy salt
			return nil, fmt.Errorf("v3 user %q: %w", p.User, err)
		}
	default:
		return nil, fmt.Errorf("unknown SNMP version %q (want 1, 2c or 3)", p.Version)
	}
	return pkt.MarshalMsg()
}
