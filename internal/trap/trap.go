// Package trap receives SNMP notifications (v1 traps, v2c/v3 traps and
// informs) on its own UDP read loop, authenticates them, looks the sender up
// in the inventory, names their OIDs and emits them as observations for rule
// evaluation.
package trap

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/snmp/mib"
)

// Versions as they appear in Trap.Version, the rule variable `version` and
// the received metric's label.
const (
	Version1  = "1"
	Version2c = "2c"
	Version3  = "3"
)

// Trap is one accepted notification.
type Trap struct {
	Time time.Time
	// Source is the device's address: the UDP sender, or for v1 the
	// agent-addr field when a relay or a known device sent it (v1Source).
	// Device is its inventory record; nil for an unknown sender.
	Source  netip.Addr
	Device  *inventory.Device
	Version string
	// TrapOID is numeric without leading dot; Trap is its "MIB::name", or
	// TrapOID again when the table does not know it.
	TrapOID, Trap string
	// Vars maps each varbind's name without instance (or its numeric OID
	// when unknown) to its value; the first varbind of a name wins.
	Vars     map[string]any
	Varbinds []Varbind
	// Inform is true for an acknowledged InformRequest.
	Inform bool
}

// Varbind is one variable binding with its name split off.
type Varbind struct {
	OID      string // numeric, no leading dot
	Name     string // "MIB::name", empty when unknown
	Instance string // the OID's suffix after Name, e.g. "3" for ifIndex.3
	Value    any    // int, uint64 (Counter64 above MaxInt64), float64, string or nil
}

// Observation is the trap as rules see it (SPEC section 4): trap,
// trap_oid, vars, source and version. A trap from an address outside the
// inventory (accepted by traps.unknown_sources) concerns a device named by
// its address.
func (t Trap) Observation() observation.Observation {
	dev := t.Device
	if dev == nil {
		dev = inventory.UnknownSender(t.Source)
	}
	return observation.Observation{Source: observation.Trap, Device: dev, Time: t.Time, Vars: map[string]any{
		"trap":     t.Trap,
		"trap_oid": t.TrapOID,
		"vars":     t.Vars,
		"source":   t.Source.String(),
		"version":  t.Version,
	}}
}

const (
	oidSysUpTime       = "1.3.6.1.2.1.1.3.0"
	oidSnmpTrapOID     = "1.3.6.1.6.3.1.1.4.1.0"
	oidSnmpTrapEnterp  = "1.3.6.1.6.3.1.1.4.3.0"
	oidSnmpTrapsPrefix = "1.3.6.1.6.3.1.1.5."
)

// v1TrapOID maps a v1 Trap-PDU to its SNMPv2 notification OID per RFC 3584
// section 3.1: generic traps 0-5 become snmpTraps.(generic+1), and
// enterpriseSpecific(6) becomes enterprise.0.specific.
func v1TrapOID(enterprise string, generic, specific int) (string, bool) {
	switch {
	case generic >= 0 && generic <= 5:
		return oidSnmpTrapsPrefix + itoa(generic+1), true
	case generic == 6:
		enterprise = strings.TrimPrefix(enterprise, ".")
		if enterprise == "" || specific < 0 {
			return "", false
		}
		return enterprise + ".0." + itoa(specific), true
	}
	return "", false
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// newVarbind names one PDU and converts its value for rules.
func newVarbind(names *mib.Table, pdu gosnmp.SnmpPDU) Varbind {
	oid := strings.TrimPrefix(pdu.Name, ".")
	vb := Varbind{OID: oid, Value: convertValue(pdu)}
	if name, inst, ok := names.Lookup(oid); ok {
		vb.Name, vb.Instance = name, inst
	}
	return vb
}

func (vb Varbind) key() string {
	if vb.Name != "" {
		return vb.Name
	}
	return vb.OID
}

// convertValue turns gosnmp's Go types into the few rule expressions
// compare easily: integers as int, text as string.
func convertValue(pdu gosnmp.SnmpPDU) any {
	switch v := pdu.Value.(type) {
	case nil:
		return nil
	case int:
		return v
	case uint:
		return uintValue(uint64(v))
	case uint32:
		return int(v)
	case uint64:
		return uintValue(v)
	case int64:
		return int(v)
	case float32:
		return float64(v)
	case float64:
		return v
	case []byte:
		return octets(v)
	case string:
		if pdu.Type == gosnmp.ObjectIdentifier {
			return strings.TrimPrefix(v, ".")
		}
		return v
	}
	// Types gosnmp may add later stay visible rather than vanish.
	return pdu.Value
}

func uintValue(v uint64) any {
	if v <= math.MaxInt64 {
		return int(v)
	}
	return v
}

// octets renders an OCTET STRING as text when it is printable UTF-8 and as
// colon-separated hex otherwise (MAC addresses, BITS), like net-snmp's
// Hex-STRING.
func octets(b []byte) string {
	if utf8.Valid(b) && strings.IndexFunc(string(b), func(r rune) bool {
		return !unicode.IsPrint(r) && !unicode.IsSpace(r)
	}) < 0 {
		return string(b)
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}
