package mib

import "testing"

func TestLookup(t *testing.T) {
	tests := []struct {
		oid, name, instance string
		ok                  bool
	}{
		{".1.3.6.1.2.1.2.2.1.1.3", "IF-MIB::ifIndex", "3", true},
		{"1.3.6.1.2.1.2.2.1.1.3", "IF-MIB::ifIndex", "3", true},
		{"1.3.6.1.6.3.1.1.5.3", "IF-MIB::linkDown", "", true},
		{"1.3.6.1.6.3.1.1.5.4", "IF-MIB::linkUp", "", true},
		{"1.3.6.1.6.3.1.1.5.1", "SNMPv2-MIB::coldStart", "", true},
		{"1.3.6.1.6.3.1.1.5.2", "SNMPv2-MIB::warmStart", "", true},
		{"1.3.6.1.6.3.1.1.5.5", "SNMPv2-MIB::authenticationFailure", "", true},
		{"1.3.6.1.6.3.1.1.4.1.0", "SNMPv2-MIB::snmpTrapOID", "0", true},
		{"1.3.6.1.2.1.1.3.0", "SNMPv2-MIB::sysUpTime", "0", true},
		{"1.3.6.1.2.1.1.5.0", "SNMPv2-MIB::sysName", "0", true},
		{"1.3.6.1.2.1.31.1.1.1.18.10101", "IF-MIB::ifAlias", "10101", true},
		{"1.3.6.1.2.1.47.1.1.1.1.7.1001", "ENTITY-MIB::entPhysicalName", "1001", true},
		{"1.3.6.1.2.1.15.0.2", "BGP4-MIB::bgpBackwardTransNotification", "", true},
		{"1.3.6.1.2.1.15.7.1", "BGP4-MIB::bgpEstablished", "", true},
		// The peer table is indexed by the remote address.
		{"1.3.6.1.2.1.15.3.1.2.192.0.2.1", "BGP4-MIB::bgpPeerState", "192.0.2.1", true},
		{"1.3.6.1.2.1.15.3.1.14.192.0.2.1", "BGP4-MIB::bgpPeerLastError", "192.0.2.1", true},
		{"1.3.6.1.2.1.14.16.2.2", "OSPF-TRAP-MIB::ospfNbrStateChange", "", true},
		{"1.3.6.1.2.1.14.16.2.16", "OSPF-TRAP-MIB::ospfIfStateChange", "", true},
		{"1.3.6.1.2.1.14.1.1.0", "OSPF-MIB::ospfRouterId", "0", true},
		{"1.3.6.1.2.1.14.10.1.6.10.0.0.2.0", "OSPF-MIB::ospfNbrState", "10.0.0.2.0", true},
		{"1.3.6.1.4.1.9.9.43.2.0.1", "CISCO-CONFIG-MAN-MIB::ciscoConfigManEvent", "", true},
		{"1.3.6.1.4.1.9.9.109.2.0.1", "CISCO-PROCESS-MIB::cpmCPURisingThreshold", "", true},
		{"1.3.6.1.4.1.9.9.13.3.0.4", "CISCO-ENVMON-MIB::ciscoEnvMonFanNotification", "", true},
		{"1.3.6.1.4.1.9.9.41.2.0.1", "CISCO-SYSLOG-MIB::clogMessageGenerated", "", true},
		{"1.3.6.1.4.1.9.9.41.1.2.3.1.5.42", "CISCO-SYSLOG-MIB::clogHistMsgText", "42", true},
		{"1.3.6.1.4.1.9.9.187.0.1", "CISCO-BGP4-MIB::cbgpFsmStateChange", "", true},
		// Longest prefix wins: ifIndex (…2.2.1.1) is inside ifTable, not ifDescr.
		{"1.3.6.1.2.1.2.2.1.2.7", "IF-MIB::ifDescr", "7", true},
		{"1.3.6.1.4.1.99999.1.2", "", "", false},
		{"", "", "", false},
		{"1", "", "", false},
		// A prefix of a known OID is not a match.
		{"1.3.6.1.2.1.2.2.1", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.oid, func(t *testing.T) {
			name, inst, ok := Default.Lookup(tt.oid)
			if name != tt.name || inst != tt.instance || ok != tt.ok {
				t.Errorf("Lookup(%q) = %q, %q, %v; want %q, %q, %v", tt.oid, name, inst, ok, tt.name, tt.instance, tt.ok)
			}
		})
	}
}

func TestOID(t *testing.T) {
	tests := []struct {
		name, oid string
		ok        bool
	}{
		{"IF-MIB::linkDown", "1.3.6.1.6.3.1.1.5.3", true},
		{"linkDown", "1.3.6.1.6.3.1.1.5.3", true},
		{"IF-MIB::ifIndex.3", "1.3.6.1.2.1.2.2.1.1.3", true},
		{"ifIndex.3", "1.3.6.1.2.1.2.2.1.1.3", true},
		{"SNMPv2-MIB::snmpTrapOID.0", "1.3.6.1.6.3.1.1.4.1.0", true},
		{"BGP4-MIB::bgpPeerState.192.0.2.1", "1.3.6.1.2.1.15.3.1.2.192.0.2.1", true},
		{"IF-MIB::ifIndex.x", "", false},
		{"IF-MIB::nope", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oid, ok := Default.OID(tt.name)
			if oid != tt.oid || ok != tt.ok {
				t.Errorf("OID(%q) = %q, %v; want %q, %v", tt.name, oid, ok, tt.oid, tt.ok)
			}
		})
	}
}

// Every built-in name resolves back to its own OID: no name is defined twice
// with different numbers, and no OID twice under different names.
func TestBuiltinRoundTrip(t *testing.T) {
	seenOID := map[string]string{}
	for _, e := range builtin {
		if prev, dup := seenOID[e.oid]; dup {
			t.Errorf("OID %s defined as %s and %s", e.oid, prev, e.name)
		}
		seenOID[e.oid] = e.name
		oid, ok := Default.OID(e.name)
		if !ok || oid != e.oid {
			t.Errorf("OID(%q) = %q, %v; want %q", e.name, oid, ok, e.oid)
		}
		if n, ok := Default.Name(e.oid); !ok || n != e.name {
			t.Errorf("Name(%q) = %q, %v; want %q", e.oid, n, ok, e.name)
		}
	}
	if Default.Len() != len(builtin) {
		t.Errorf("Len = %d, want %d", Default.Len(), len(builtin))
	}
}

func TestNewUserEntries(t *testing.T) {
	tab, err := New(map[string]string{
		"ACME-MIB::acmeFanFail": ".1.3.6.1.4.1.99999.0.1",
		"ACME-MIB::acmeFanId":   "1.3.6.1.4.1.99999.1.1",
		// Overrides a built-in name for the same OID.
		"MY-IF-MIB::myLinkDown": "1.3.6.1.6.3.1.1.5.3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, inst, ok := tab.Lookup("1.3.6.1.4.1.99999.1.1.7"); n != "ACME-MIB::acmeFanId" || inst != "7" || !ok {
		t.Errorf("user column lookup = %q %q %v", n, inst, ok)
	}
	if n, _ := tab.Name("1.3.6.1.4.1.99999.0.1"); n != "ACME-MIB::acmeFanFail" {
		t.Errorf("user trap name = %q", n)
	}
	if n, _ := tab.Name("1.3.6.1.6.3.1.1.5.3"); n != "MY-IF-MIB::myLinkDown" {
		t.Errorf("override = %q", n)
	}
	if _, ok := tab.OID("IF-MIB::linkDown"); ok {
		t.Error("overridden built-in name still resolves")
	}
	if _, ok := Default.OID("ACME-MIB::acmeFanFail"); ok {
		t.Error("user entry leaked into Default")
	}

	for _, bad := range []map[string]string{
		{"X::a": "1.3.x"},
		{"X::a": ""},
		{"": "1.3.6"},
		{"X::a b": "1.3.6"},
		{"X::a": "1..3"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%v) accepted", bad)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	for b.Loop() {
		Default.Lookup("1.3.6.1.2.1.2.2.1.1.3")
	}
}
