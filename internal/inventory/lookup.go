package inventory

import "net/netip"

// Lookup finds the device an observation received from another node is
// about (observation.Unmarshal's lookup): a device of this inventory by
// name, or, for a trap sender outside it, the sender's UnknownSender
// record (named by its address); nil when neither.
func (inv *Inventory) Lookup(name string, addr netip.Addr) *Device {
	if d, ok := inv.byName[name]; ok {
		return d
	}
	if addr.IsValid() && name == UnknownSender(addr).Name {
		return UnknownSender(addr)
	}
	return nil
}
