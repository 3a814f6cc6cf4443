package trap

import (
	"fmt"
	"sync"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
)

// User is one accepted SNMPv3 USM user.
type User struct {
	Name string
	// AuthProtocol: MD5|SHA|SHA224|SHA256|SHA384|SHA512, "" = noAuth.
	// PrivProtocol: DES|AES|AES192|AES256|AES192C|AES256C, "" = noPriv.
	AuthProtocol, PrivProtocol     string
	AuthPassphrase, PrivPassphrase config.Secret
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"": gosnmp.NoAuth, "MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224,
	"SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"": gosnmp.NoPriv, "DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192,
	"AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

// usmUser is a validated User.
type usmUser struct {
	name  string
	auth  gosnmp.SnmpV3AuthProtocol
	priv  gosnmp.SnmpV3PrivProtocol
	authP string
	privP string
}

// flags is the security level the user's messages must carry at least.
func (u *usmUser) flags() byte {
	var f byte
	if u.auth != gosnmp.NoAuth {
		f |= flagAuth
	}
	if u.priv != gosnmp.NoPriv {
		f |= flagPriv
	}
	return f
}

func parseUsers(users []User) (map[string][]*usmUser, error) {
	out := make(map[string][]*usmUser, len(users))
	for _, u := range users {
		if u.Name == "" {
			return nil, fmt.Errorf("v3 user with an empty name")
		}
		auth, ok := authProtocols[u.AuthProtocol]
		if !ok {
			return nil, fmt.Errorf("v3 user %s: auth protocol %q: want MD5, SHA, SHA224, SHA256, SHA384 or SHA512", u.Name, u.AuthProtocol)
		}
		priv, ok := privProtocols[u.PrivProtocol]
		if !ok {
			return nil, fmt.Errorf("v3 user %s: priv protocol %q: want DES, AES, AES192, AES256, AES192C or AES256C", u.Name, u.PrivProtocol)
		}
		if priv != gosnmp.NoPriv && auth == gosnmp.NoAuth {
			return nil, fmt.Errorf("v3 user %s: privacy needs an auth protocol", u.Name)
		}
		// RFC 3414 11.2: passphrases shorter than 8 octets are not allowed.
		if auth != gosnmp.NoAuth && len(u.AuthPassphrase.Reveal()) < 8 {
			return nil, fmt.Errorf("v3 user %s: auth passphrase must be at least 8 characters", u.Name)
		}
		if priv != gosnmp.NoPriv && len(u.PrivPassphrase.Reveal()) < 8 {
			return nil, fmt.Errorf("v3 user %s: priv passphrase must be at least 8 characters", u.Name)
		}
		out[u.Name] = append(out[u.Name], &usmUser{name: u.Name, auth: auth, priv: priv,
			authP: u.AuthPassphrase.Reveal(), privP: u.PrivPassphrase.Reveal()})
	}
	return out, nil
}

// maxLocalizedKeys bounds the key cache: senders are few, but engine IDs
// are chosen by whoever sends, so an unbounded cache would be a memory leak
// under spoofed traffic. Only keys that authenticated a message are kept.
const maxLocalizedKeys = 4096

type keyID struct {
	user     *usmUser
	engineID string
}

// keyCache holds USM parameters with keys localized to each sender's
// engine ID (RFC 3414 2.6), learned from the packets themselves: a trap is
// authenticated with keys localized to the sending engine.
type keyCache struct {
	mu   sync.Mutex
	keys map[keyID]*gosnmp.UsmSecurityParameters
}

func (c *keyCache) get(u *usmUser, engineID string) (*gosnmp.UsmSecurityParameters, bool, error) {
	id := keyID{u, engineID}
	c.mu.Lock()
	sp, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		return sp, true, nil
	}
	sp = &gosnmp.UsmSecurityParameters{
		UserName:                 u.name,
		AuthoritativeEngineID:    engineID,
		AuthenticationProtocol:   u.auth,
		PrivacyProtocol:          u.priv,
		AuthenticationPassphrase: u.authP,
		PrivacyPassphrase:        u.privP,
	}
	if err := sp.InitSecurityKeys(); err != nil {
		return nil, false, fmt.Errorf("localizing keys of v3 user %s: %w", u.name, err)
	}
	return sp, false, nil
}

func (c *keyCache) put(u *usmUser, engineID string, sp *gosnmp.UsmSecurityParameters) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = make(map[keyID]*gosnmp.UsmSecurityParameters)
	}
	if len(c.keys) >= maxLocalizedKeys {
		for k := range c.keys { // evict an arbitrary entry; relocalizing is cheap
			delete(c.keys, k)
			break
		}
	}
	c.keys[keyID{u, engineID}] = sp
}
