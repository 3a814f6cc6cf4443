// Package mib translates numeric SNMP OIDs to "MIB::name" and back without
// MIB files: a built-in table of the notifications and varbinds network
// devices commonly send, plus entries from the user's configuration.
package mib

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Table maps OIDs to names. It is read-only after New and safe for
// concurrent use.
type Table struct {
	byOID  map[string]string // numeric OID (no leading dot) → "MIB::name"
	byName map[string]string // "MIB::name" and bare "name" → numeric OID
}

// Default is the built-in table without user entries.
var Default = mustNew(nil)

func mustNew(user map[string]string) *Table {
	t, err := New(user)
	if err != nil {
		panic(err)
	}
	return t
}

// New builds the built-in table plus user entries (name → numeric OID, e.g.
// "ACME-MIB::acmeFanFail": "1.3.6.1.4.1.99999.0.1"). User entries override
// built-in ones with the same OID or name.
func New(user map[string]string) (*Table, error) {
	t := &Table{
		byOID:  make(map[string]string, len(builtin)+len(user)),
		byName: make(map[string]string, 2*(len(builtin)+len(user))),
	}
	for _, e := range builtin {
		if err := t.add(e.name, e.oid); err != nil {
			return nil, fmt.Errorf("built-in entry %s: %w", e.name, err)
		}
	}
	names := make([]string, 0, len(user))
	for n := range user {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic errors and bare-name precedence
	for _, n := range names {
		if err := t.add(n, user[n]); err != nil {
			return nil, fmt.Errorf("mib entry %q: %w", n, err)
		}
	}
	return t, nil
}

func (t *Table) add(name, oid string) error {
	oid = strings.TrimPrefix(strings.TrimSpace(oid), ".")
	if err := validOID(oid); err != nil {
		return err
	}
	if name == "" || strings.ContainsAny(name, " \t.") {
		return fmt.Errorf("name %q: want MIB::name or name, without spaces or dots", name)
	}
	if old, ok := t.byOID[oid]; ok {
		delete(t.byName, old)
	}
	t.byOID[oid] = name
	t.byName[name] = oid
	if _, bare, ok := strings.Cut(name, "::"); ok {
		t.byName[bare] = oid
	}
	return nil
}

func validOID(oid string) error {
	if oid == "" {
		return fmt.Errorf("empty OID")
	}
	for _, arc := range strings.Split(oid, ".") {
		if _, err := strconv.ParseUint(arc, 10, 32); err != nil {
			return fmt.Errorf("OID %q: arc %q is not a number", oid, arc)
		}
	}
	return nil
}

// Lookup returns the name of the longest known prefix of oid (leading dot
// optional) and the rest as the instance: "1.3.6.1.2.1.2.2.1.1.3" gives
// ("IF-MIB::ifIndex", "3", true). Without a known prefix ok is false.
func (t *Table) Lookup(oid string) (name, instance string, ok bool) {
	oid = strings.TrimPrefix(oid, ".")
	for prefix := oid; prefix != ""; {
		if n, found := t.byOID[prefix]; found {
			return n, strings.TrimPrefix(oid[len(prefix):], "."), true
		}
		i := strings.LastIndexByte(prefix, '.')
		if i < 0 {
			break
		}
		prefix = prefix[:i]
	}
	return "", "", false
}

// Name is the exact name of oid, or false when oid is unknown or only a
// prefix of it is known.
func (t *Table) Name(oid string) (string, bool) {
	n, ok := t.byOID[strings.TrimPrefix(oid, ".")]
	return n, ok
}

// OID resolves "MIB::name", a bare "name", or either with an instance suffix
// ("IF-MIB::ifIndex.3") to a numeric OID without leading dot.
func (t *Table) OID(name string) (string, bool) {
	if oid, ok := t.byName[name]; ok {
		return oid, true
	}
	// The name part may itself not contain dots, so the first dot after
	// the "::" separator starts the instance.
	sep := strings.Index(name, "::")
	start := 0
	if sep >= 0 {
		start = sep + 2
	}
	if i := strings.IndexByte(name[start:], '.'); i >= 0 {
		base, inst := name[:start+i], name[start+i+1:]
		if oid, ok := t.byName[base]; ok && validOID(inst) == nil {
			return oid + "." + inst, true
		}
	}
	return "", false
}

// Len is the number of OIDs in the table.
func (t *Table) Len() int { return len(t.byOID) }
