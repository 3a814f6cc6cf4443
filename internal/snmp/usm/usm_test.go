package usm

import (
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
)

func key(proto, pass string) *config.SNMPKey {
	return &config.SNMPKey{Protocol: proto, Passphrase: config.Secret(pass)}
}

func TestNew(t *testing.T) {
	cases := []struct {
		name      string
		p         config.SNMPProfile
		flags     gosnmp.SnmpV3MsgFlags
		auth      gosnmp.SnmpV3AuthProtocol
		priv      gosnmp.SnmpV3PrivProtocol
		wantError string
	}{
		{"noAuthNoPriv", config.SNMPProfile{User: "noc"}, gosnmp.NoAuthNoPriv, gosnmp.NoAuth, gosnmp.NoPriv, ""},
		{"net-snmp spelling", config.SNMPProfile{User: "noc", Auth: key("sha-256", "secret-auth-1")}, gosnmp.AuthNoPriv, gosnmp.SHA256, gosnmp.NoPriv, ""},
		{"authPriv", config.SNMPProfile{User: "noc", Auth: key("SHA512", "secret-auth-1"), Priv: key("aes256c", "secret-priv-1")}, gosnmp.AuthPriv, gosnmp.SHA512, gosnmp.AES256C, ""},
		{"no user", config.SNMPProfile{}, 0, 0, 0, "no user"},
		{"unknown auth", config.SNMPProfile{User: "u", Auth: key("SHA999", "secret-auth-1")}, 0, 0, 0, "unknown SNMPv3 auth protocol"},
		{"no auth passphrase", config.SNMPProfile{User: "u", Auth: key("SHA", "")}, 0, 0, 0, "without an auth passphrase"},
		{"short auth passphrase", config.SNMPProfile{User: "u", Auth: key("SHA", "secret-")}, 0, 0, 0, "at least 8"},
		{"priv without auth", config.SNMPProfile{User: "u", Priv: key("AES", "secret-priv-1")}, 0, 0, 0, "privacy needs authentication"},
		{"unknown priv", config.SNMPProfile{User: "u", Auth: key("SHA", "secret-auth-1"), Priv: key("3DES", "secret-priv-1")}, 0, 0, 0, "unknown SNMPv3 priv protocol"},
		{"short priv passphrase", config.SNMPProfile{User: "u", Auth: key("SHA", "secret-auth-1"), Priv: key("AES", "secret-")}, 0, 0, 0, "at least 8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := New(tc.p)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantError)
				}
				if strings.Contains(err.Error(), "secret-") {
					t.Fatal("error reveals a passphrase")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Flags() != tc.flags || u.Auth != tc.auth || u.Priv != tc.priv {
				t.Errorf("flags %v auth %v priv %v, want %v %v %v", u.Flags(), u.Auth, u.Priv, tc.flags, tc.auth, tc.priv)
			}
			sp := u.Params("engine")
			if sp.UserName != tc.p.User || sp.AuthoritativeEngineID != "engine" {
				t.Errorf("params %+v", sp)
			}
			if tc.p.Auth != nil && sp.AuthenticationPassphrase != tc.p.Auth.Passphrase.Reveal() {
				t.Error("auth passphrase not carried into the USM parameters")
			}
		})
	}
}
