package trap

import (
	"net/netip"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

func TestJudgeSampleTraps(t *testing.T) {
	inv := inventory.Of(inventory.Device{Name: "core-sw1", Address: "10.0.0.1"})
	known, stranger := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.9.9")
	v2c := func(c string) config.SNMPProfile {
		return config.SNMPProfile{Version: "2c", Community: config.Secret(c)}
	}
	tests := []struct {
		name    string
		profile config.SNMPProfile
		from    netip.Addr
		unknown string // traps.unknown_sources
		want    Verdict
	}{
		{"v2c accepted community", v2c("public"), known, "", Verdict{Accepted: true, Device: "core-sw1"}},
		{"v1 accepted community", config.SNMPProfile{Version: "1", Community: "public"}, known, "", Verdict{Accepted: true, Device: "core-sw1"}},
		{"v2c other community", v2c("private"), known, "", Verdict{Reason: ReasonCommunity, Detail: "unknown SNMP community"}},
		{"v3 user and keys", testUsers[1], known, "", Verdict{Accepted: true, Device: "core-sw1"}},
		{"v3 auth only", testUsers[0], known, "", Verdict{Accepted: true, Device: "core-sw1"}},
		{"v3 wrong auth passphrase", v3User("noc-priv", "SHA256", "not-the-pass", "AES", "priv-pass-priv"), known, "",
			Verdict{Reason: ReasonAuth, Detail: "SNMPv3 authentication failed"}},
		{"v3 below the user's level", v3User("noc-priv", "SHA256", "auth-pass-priv", "", ""), known, "",
			Verdict{Reason: ReasonAuth, Detail: "SNMPv3 message below the user's security level"}},
		{"v3 unknown user", v3User("intruder", "SHA256", "auth-pass-256", "", ""), known, "", Verdict{Reason: ReasonAuth, Detail: "unknown SNMPv3 user"}},
		{"unknown sender accepted", v2c("public"), stranger, "accept", Verdict{Accepted: true}},
		{"unknown sender dropped", v2c("public"), stranger, "drop", Verdict{Reason: ReasonUnknownSource, Detail: "trap from an address not in the inventory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := SampleTrap(tc.profile)
			if err != nil {
				t.Fatalf("SampleTrap: %v", err)
			}
			opts := Options{Communities: []config.Secret{"public"}, Users: testUsers, UnknownSources: tc.unknown,
				Inventory: func() *inventory.Inventory { return inv }}
			got, err := Judge(opts, tc.from, b)
			if err != nil {
				t.Fatalf("Judge: %v", err)
			}
			if got != tc.want {
				t.Errorf("Judge = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestJudgeBadOptions(t *testing.T) {
	if _, err := Judge(Options{UnknownSources: "maybe"}, netip.MustParseAddr("10.0.0.1"), nil); err == nil {
		t.Fatal("Judge accepted unknown_sources: maybe")
	}
	if _, err := SampleTrap(config.SNMPProfile{Version: "4"}); err == nil {
		t.Fatal("SampleTrap accepted version 4")
	}
}
