package trap

import (
	"fmt"
	"sync"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/snmp/usm"
)

// parseUsers validates the accepted v3 users, by USM user name (several
// profiles may share one name with different keys).
func parseUsers(profiles []config.SNMPProfile) (map[string][]*usm.User, error) {
	out := make(map[string][]*usm.User, len(profiles))
	for _, p := range profiles {
		u, err := usm.New(p)
		if err != nil {
			return nil, fmt.Errorf("v3 user %q: %w", p.User, err)
		}
		out[u.Name] = append(out[u.Name], &u)
	}
	return out, nil
}

// maxLocalizedKeys bounds the key cache: senders are few, but engine IDs
// are chosen by whoever sends, so an unbounded cache would be a memory leak
// under spoofed traffic. Only keys that authenticated a message are kept.
const maxLocalizedKeys = 4096

type keyID struct {
	user     *usm.User
	engineID string
}

// keyCache holds USM parameters with keys localized to each sender's
// engine ID (RFC 3414 2.6), learned from the packets themselves: a trap is
// authenticated with keys localized to the sending engine.
type keyCache struct {
	mu   sync.Mutex
	keys map[keyID]*gosnmp.UsmSecurityParameters
}

func (c *keyCache) get(u *usm.User, engineID string) (*gosnmp.UsmSecurityParameters, bool, error) {
	id := keyID{u, engineID}
	c.mu.Lock()
	sp, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		return sp, true, nil
	}
	sp = u.Params(engineID)
	if err := sp.InitSecurityKeys(); err != nil {
		return nil, false, fmt.Errorf("localizing keys of v3 user %s: %w", u.Name, err)
	}
	return sp, false, nil
}

func (c *keyCache) put(u *usm.User, engineID string, sp *gosnmp.UsmSecurityParameters) {
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
