package observation_test

import (
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

var (
	coreSw = &inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ"}
	sender = inventory.UnknownSender(netip.MustParseAddr("192.0.2.7"))
)

// lookup is a receiving node's inventory: core-sw1 by name, any unknown
// trap sender by its address.
func lookup(name string, addr netip.Addr) *inventory.Device {
	if name == coreSw.Name {
		return coreSw
	}
	if addr.IsValid() && name == addr.String() {
		return inventory.UnknownSender(addr)
	}
	return nil
}

func TestWireRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 18, 40, 1, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		obs  observation.Observation
		dev  string
	}{
		{"icmp up", observation.Observation{Source: observation.ICMP, Device: coreSw, Time: at,
			Vars: map[string]any{"up": true, "loss": 0.0, "rtt_ms": 1.25, "rtt_min_ms": 0.9, "rtt_max_ms": 2.0000000000000004, "sent": 3, "recv": 3}}, "core-sw1"},
		{"icmp failed round", observation.Observation{Source: observation.ICMP, Device: coreSw, Time: at,
			Vars: map[string]any{"up": false, "loss": 100.0, "rtt_ms": math.NaN(), "rtt_min_ms": math.Inf(1), "rtt_max_ms": math.Inf(-1), "sent": 3, "recv": 0},
			Err:  errors.New("sendto: network is unreachable")}, "core-sw1"},
		{"snmp poll", observation.Observation{Source: observation.SNMP, Device: coreSw, Time: at,
			Vars: map[string]any{"cpu": 93.5, "mem": 41.0, "uptime_s": 86400.0, "uptime_reset": false, "temp": 48}}, "core-sw1"},
		{"snmp timeout", observation.Observation{Source: observation.SNMP, Device: coreSw, Time: at,
			Err: errors.New("request timeout (after 1 retries)"), Reason: "timeout"}, "core-sw1"},
		{"trap with every value type", observation.Observation{Source: observation.Trap, Device: coreSw, Time: at, Vars: map[string]any{
			"trap": "linkDown", "trap_oid": "1.3.6.1.6.3.1.1.5.3", "source": "10.0.0.1", "version": "v2c",
			"vars": map[string]any{"ifIndex": 3, "ifDescr": "GigabitEthernet1/0/3", "sysUpTime": 4200, "counter64": uint64(math.MaxUint64),
				"big": int64(-1 << 62), "ratio": 0.5, "none": nil, "mac": "00:1a:2b:3c:4d:5e", "list": []any{1, "two", 3.5}, "empty": map[string]any{}}}}, "core-sw1"},
		{"unknown trap sender", observation.Observation{Source: observation.Trap, Device: sender, Time: at, Vars: map[string]any{
			"trap": "coldStart", "trap_oid": "1.3.6.1.6.3.1.1.5.1", "source": "192.0.2.7", "version": "v1", "vars": map[string]any{}}}, "192.0.2.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := observation.Marshal(tc.obs)
			if err != nil {
				t.Fatal(err)
			}
			again, err := observation.Marshal(tc.obs)
			if err != nil || string(again) != string(b) {
				t.Errorf("two encodings of one observation differ:\n%s\n%s", b, again)
			}
			got, err := observation.Unmarshal(b, lookup)
			if err != nil {
				t.Fatal(err)
			}
			if got.Device.Name != tc.dev || got.Source != tc.obs.Source || !got.Time.Equal(tc.obs.Time) || got.Reason != tc.obs.Reason {
				t.Errorf("got %s %s %s %q, want %s %s %s %q", got.Device.Name, got.Source, got.Time, got.Reason, tc.dev, tc.obs.Source, tc.obs.Time, tc.obs.Reason)
			}
			if (got.Err == nil) != (tc.obs.Err == nil) || (got.Err != nil && got.Err.Error() != tc.obs.Err.Error()) {
				t.Errorf("err = %v, want %v", got.Err, tc.obs.Err)
			}
			if !sameVars(got.Vars, tc.obs.Vars) {
				t.Errorf("vars changed on the wire:\n got  %#v\n want %#v", got.Vars, tc.obs.Vars)
			}
			if got.Vars != nil && tc.obs.Source != observation.Trap {
				// What rules are type-checked against must still hold.
				if err := got.CheckVars(); err != nil {
					t.Errorf("decoded vars fail the schema: %v", err)
				}
			}
		})
	}
}

// sameVars is reflect.DeepEqual with NaN equal to NaN.
func sameVars(a, b map[string]any) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		fa, aok := va.(float64)
		fb, bok := vb.(float64)
		switch {
		case aok && bok && math.IsNaN(fa) && math.IsNaN(fb):
		case reflect.TypeOf(va) != reflect.TypeOf(vb):
			return false
		default:
			ma, mok := va.(map[string]any)
			if mok {
				if !sameVars(ma, vb.(map[string]any)) {
					return false
				}
			} else if !reflect.DeepEqual(va, vb) {
				return false
			}
		}
	}
	return true
}

func TestWireErrors(t *testing.T) {
	gone := &inventory.Device{Name: "removed-sw", Address: "10.0.0.9"}
	b, err := observation.Marshal(observation.Observation{Source: observation.ICMP, Device: gone, Time: time.Now(), Vars: map[string]any{"up": true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := observation.Unmarshal(b, lookup); !errors.Is(err, observation.ErrUnknownDevice) || !strings.Contains(err.Error(), "removed-sw") {
		t.Errorf("device missing here: err = %v, want ErrUnknownDevice naming removed-sw", err)
	}
	if _, err := observation.Marshal(observation.Observation{Source: observation.ICMP, Time: time.Now()}); err == nil {
		t.Error("an observation without a device was encoded")
	}
	if _, err := observation.Marshal(observation.Observation{Source: observation.Trap, Device: coreSw, Vars: map[string]any{"x": struct{}{}}}); err == nil || !strings.Contains(err.Error(), "core-sw1") {
		t.Errorf("a value with no wire form: err = %v, want an error naming the device", err)
	}
	for _, in := range []string{
		``, `{`, `[]`, `{"s":"icmp"}`, `{"d":"core-sw1"}`,
		`{"s":"icmp","d":"core-sw1","t":1,"v":{"t":"m","m":{"up":{"t":"q","s":"1"}}}}`,
		`{"s":"icmp","d":"core-sw1","t":1,"v":{"t":"m","m":{"sent":{"t":"i","s":"three"}}}}`,
		`{"s":"icmp","d":"core-sw1","t":1,"v":{"t":"s","s":"not a map"}}`,
	} {
		if _, err := observation.Unmarshal([]byte(in), lookup); err == nil {
			t.Errorf("Unmarshal(%q) accepted it", in)
		}
	}
}

// FuzzUnmarshal: whatever arrives from another node, decoding it never
// panics, and what decodes encodes again to the same observation.
func FuzzUnmarshal(f *testing.F) {
	b, _ := observation.Marshal(observation.Observation{Source: observation.Trap, Device: coreSw, Time: time.Unix(1, 2),
		Vars: map[string]any{"trap": "linkDown", "vars": map[string]any{"ifIndex": 3, "l": []any{1.5, nil, true}}}})
	f.Add(b)
	f.Add([]byte(`{"s":"icmp","d":"core-sw1","t":1,"v":{"t":"m","m":{"up":{"t":"b","s":"true"}}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := observation.Unmarshal(in, lookup)
		if err != nil {
			return
		}
		out, err := observation.Marshal(o)
		if err != nil {
			t.Fatalf("decoded but cannot encode again: %v", err)
		}
		back, err := observation.Unmarshal(out, lookup)
		if err != nil || !sameVars(back.Vars, o.Vars) || back.Device != o.Device || !back.Time.Equal(o.Time) {
			t.Fatalf("second round trip differs: %v", err)
		}
	})
}
