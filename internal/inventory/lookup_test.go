package inventory

import (
	"net/netip"
	"testing"
)

func TestLookup(t *testing.T) {
	inv := Of(Device{Name: "sw1", Address: "192.0.2.1"})
	sender := netip.MustParseAddr("192.0.2.50")
	tests := []struct {
		name, device string
		addr         netip.Addr
		want         string // "": nil
	}{
		{"a device by name", "sw1", netip.Addr{}, "sw1"},
		{"a device by name, address ignored", "sw1", sender, "sw1"},
		{"an unknown trap sender", "192.0.2.50", sender, "192.0.2.50"},
		{"an unknown sender named otherwise", "192.0.2.51", sender, ""},
		{"a device removed here", "sw2", netip.MustParseAddr("192.0.2.2"), ""},
	}
	for _, tt := range tests {
		got := inv.Lookup(tt.device, tt.addr)
		switch {
		case tt.want == "" && got != nil:
			t.Errorf("%s: Lookup(%q, %v) = %+v, want nil", tt.name, tt.device, tt.addr, got)
		case tt.want != "" && (got == nil || got.Name != tt.want):
			t.Errorf("%s: Lookup(%q, %v) = %+v, want %s", tt.name, tt.device, tt.addr, got, tt.want)
		}
	}
}
