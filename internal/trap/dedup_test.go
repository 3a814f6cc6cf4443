package trap

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
)

func TestDedupID(t *testing.T) {
	base := Trap{Time: time.Unix(100, 0), Source: netip.MustParseAddr("192.0.2.7"), Version: Version2c,
		TrapOID: "1.3.6.1.6.3.1.1.5.3", Trap: "IF-MIB::linkDown",
		Vars: map[string]any{"IF-MIB::ifIndex": 3, "SNMPv2-MIB::sysUpTime": uint64(4711), "IF-MIB::ifDescr": "Gi0/3"}}
	id := DedupID(base.Observation())
	if len(id) != len("trap-")+32 {
		t.Fatalf("id %q: want trap- and 32 hex digits", id)
	}
	elsewhere := base
	elsewhere.Time = time.Unix(101, 0) // received a second later by another node
	elsewhere.Vars = map[string]any{"SNMPv2-MIB::sysUpTime": uint64(4711), "IF-MIB::ifDescr": "Gi0/3", "IF-MIB::ifIndex": 3}
	if got := DedupID(elsewhere.Observation()); got != id {
		t.Errorf("the same trap received elsewhere: id %s, want %s", got, id)
	}
	for name, change := range map[string]func(*Trap){
		"sender":   func(t *Trap) { t.Source = netip.MustParseAddr("192.0.2.8") },
		"trap oid": func(t *Trap) { t.TrapOID = "1.3.6.1.6.3.1.1.5.4" },
		"value": func(t *Trap) {
			t.Vars = map[string]any{"IF-MIB::ifIndex": 4, "SNMPv2-MIB::sysUpTime": uint64(4711), "IF-MIB::ifDescr": "Gi0/3"}
		},
		"uptime": func(t *Trap) {
			t.Vars = map[string]any{"IF-MIB::ifIndex": 3, "SNMPv2-MIB::sysUpTime": uint64(4712), "IF-MIB::ifDescr": "Gi0/3"}
		},
		"version": func(t *Trap) { t.Version = Version1 },
	} {
		other := base
		change(&other)
		if got := DedupID(other.Observation()); got == id {
			t.Errorf("%s differs: same id %s", name, got)
		}
	}
	if got := DedupID(observation.Observation{Source: observation.ICMP}); got != "" {
		t.Errorf("ICMP observation: id %q, want none", got)
	}
}
