// Package usm turns an SNMP profile's v3 settings into gosnmp's User-based
// Security Model parameters: the one mapping the poller (as a sender) and
// the trap receiver (as a receiver of authenticated traps and informs)
// share.
package usm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
)

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224, "SHA256": gosnmp.SHA256,
	"SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192, "AES256": gosnmp.AES256,
	"AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

// minPassphrase is RFC 3414 section 11.2's minimum passphrase length.
const minPassphrase = 8

// User is one validated SNMPv3 user: its name, protocols and passphrases.
type User struct {
	Name       string
	Auth       gosnmp.SnmpV3AuthProtocol // gosnmp.NoAuth for noAuthNoPriv
	Priv       gosnmp.SnmpV3PrivProtocol // gosnmp.NoPriv without privacy
	authPhrase string
	privPhrase string
}

// New validates a profile's v3 settings. Protocol names are matched without
// case or dashes ("sha-256" as net-snmp writes it). Errors name the field,
// never a passphrase.
func New(p config.SNMPProfile) (User, error) {
	u := User{Name: p.User, Auth: gosnmp.NoAuth, Priv: gosnmp.NoPriv}
	if p.User == "" {
		return User{}, errors.New("SNMPv3 profile has no user")
	}
	if p.Auth != nil && p.Auth.Protocol != "" {
		auth, ok := authProtocols[protocolKey(p.Auth.Protocol)]
		if !ok {
			return User{}, fmt.Errorf("unknown SNMPv3 auth protocol %q (want MD5, SHA, SHA224, SHA256, SHA384 or SHA512)", p.Auth.Protocol)
		}
		if err := checkPassphrase("auth", p.Auth.Passphrase); err != nil {
			return User{}, err
		}
		u.Auth, u.authPhrase = auth, p.Auth.Passphrase.Reveal()
	}
	if p.Priv != nil && p.Priv.Protocol != "" {
		if u.Auth == gosnmp.NoAuth {
			return User{}, errors.New("SNMPv3 privacy needs authentication: set an auth protocol too")
		}
		priv, ok := privProtocols[protocolKey(p.Priv.Protocol)]
		if !ok {
			return User{}, fmt.Errorf("unknown SNMPv3 priv protocol %q (want DES, AES, AES192, AES256, AES192C or AES256C)", p.Priv.Protocol)
		}
		if err := checkPassphrase("priv", p.Priv.Passphrase); err != nil {
			return User{}, err
		}
		u.Priv, u.privPhrase = priv, p.Priv.Passphrase.Reveal()
	}
	return u, nil
}

func checkPassphrase(what string, s config.Secret) error {
	switch n := len(s.Reveal()); {
	case n == 0:
		return fmt.Errorf("SNMPv3 %s protocol set without an %s passphrase", what, what)
	case n < minPassphrase:
		return fmt.Errorf("SNMPv3 %s passphrase must be at least %d characters (RFC 3414)", what, minPassphrase)
	}
	return nil
}

// protocolKey accepts "SHA256", "sha-256" and "SHA-256" alike.
func protocolKey(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", ""))
}

// Flags is the user's security level as message flags.
func (u User) Flags() gosnmp.SnmpV3MsgFlags {
	switch {
	case u.Priv != gosnmp.NoPriv:
		return gosnmp.AuthPriv
	case u.Auth != gosnmp.NoAuth:
		return gosnmp.AuthNoPriv
	}
	return gosnmp.NoAuthNoPriv
}

// Params are the user's USM parameters for the given authoritative engine
// ID ("" lets gosnmp discover it, as a sender does). Keys are localized by
// gosnmp when the parameters are first used, or by InitSecurityKeys.
func (u User) Params(engineID string) *gosnmp.UsmSecurityParameters {
	return &gosnmp.UsmSecurityParameters{
		UserName:                 u.Name,
		AuthoritativeEngineID:    engineID,
		AuthenticationProtocol:   u.Auth,
		PrivacyProtocol:          u.Priv,
		AuthenticationPassphrase: u.authPhrase,
		PrivacyPassphrase:        u.privPhrase,
	}
}
