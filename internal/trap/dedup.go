package trap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/nocbridge/nocbridge/internal/observation"
)

// DedupID identifies a trap observation by what the sender put in it: its
// address, the trap OID and the varbinds with their values (sysUpTime
// included, which tells a repeated trap from the same one received twice),
// never by when or where it was received. A trap that reached several
// nodes of a cluster has the same id on each, and the observation bus
// stores it once (SPEC 9). "" for any other observation.
func DedupID(o observation.Observation) string {
	if o.Source != observation.Trap {
		return ""
	}
	// The varbinds map marshals with its keys sorted: the same varbinds
	// give the same bytes on every node.
	vars, err := json.Marshal(o.Vars["vars"])
	if err != nil {
		vars = fmt.Appendf(nil, "%v", o.Vars["vars"])
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(fmt.Sprint(o.Vars["source"])), []byte(fmt.Sprint(o.Vars["trap_oid"])), []byte(fmt.Sprint(o.Vars["version"])), vars} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return "trap-" + hex.EncodeToString(h.Sum(nil)[:16])
}
