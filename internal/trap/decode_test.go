package trap

import (
	"bytes"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/trap/loadgen"
)

func TestV1TrapOID(t *testing.T) {
	tests := []struct {
		enterprise        string
		generic, specific int
		want              string
		ok                bool
	}{
		{".1.3.6.1.4.1.9", 0, 0, "1.3.6.1.6.3.1.1.5.1", true}, // coldStart
		{".1.3.6.1.4.1.9", 1, 0, "1.3.6.1.6.3.1.1.5.2", true}, // warmStart
		{".1.3.6.1.4.1.9", 2, 0, "1.3.6.1.6.3.1.1.5.3", true}, // linkDown
		{".1.3.6.1.4.1.9", 3, 0, "1.3.6.1.6.3.1.1.5.4", true}, // linkUp
		{".1.3.6.1.4.1.9", 4, 0, "1.3.6.1.6.3.1.1.5.5", true}, // authenticationFailure
		{".1.3.6.1.4.1.9", 5, 0, "1.3.6.1.6.3.1.1.5.6", true}, // egpNeighborLoss
		// Generic traps ignore specific-trap.
		{".1.3.6.1.4.1.9", 2, 99, "1.3.6.1.6.3.1.1.5.3", true},
		// enterpriseSpecific(6): enterprise.0.specific.
		{".1.3.6.1.4.1.9.9.43.2", 6, 1, "1.3.6.1.4.1.9.9.43.2.0.1", true},
		{"1.3.6.1.2.1.15", 6, 2, "1.3.6.1.2.1.15.0.2", true},
		{".1.3.6.1.4.1.8072.3.2.10", 6, 0, "1.3.6.1.4.1.8072.3.2.10.0.0", true},
		{"", 6, 1, "", false},
		{".1.3.6.1.4.1.9", 6, -1, "", false},
		{".1.3.6.1.4.1.9", 7, 0, "", false},
		{".1.3.6.1.4.1.9", -1, 0, "", false},
	}
	for _, tt := range tests {
		got, ok := v1TrapOID(tt.enterprise, tt.generic, tt.specific)
		if got != tt.want || ok != tt.ok {
			t.Errorf("v1TrapOID(%q, %d, %d) = %q, %v; want %q, %v", tt.enterprise, tt.generic, tt.specific, got, ok, tt.want, tt.ok)
		}
	}
}

func TestConvertValue(t *testing.T) {
	tests := []struct {
		pdu  gosnmp.SnmpPDU
		want any
	}{
		{gosnmp.SnmpPDU{Type: gosnmp.Integer, Value: -3}, -3},
		{gosnmp.SnmpPDU{Type: gosnmp.Counter32, Value: uint(7)}, 7},
		{gosnmp.SnmpPDU{Type: gosnmp.Gauge32, Value: uint(1000000000)}, 1000000000},
		{gosnmp.SnmpPDU{Type: gosnmp.TimeTicks, Value: uint32(4242)}, 4242},
		{gosnmp.SnmpPDU{Type: gosnmp.Counter64, Value: uint64(1 << 40)}, 1 << 40},
		{gosnmp.SnmpPDU{Type: gosnmp.Counter64, Value: uint64(1<<64 - 1)}, uint64(1<<64 - 1)},
		{gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte("Gi1/0/3 uplink")}, "Gi1/0/3 uplink"},
		{gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte{0x00, 0x1a, 0x2b, 0xff}}, "00:1a:2b:ff"},
		{gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte{}}, ""},
		{gosnmp.SnmpPDU{Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.6.3.1.1.5.3"}, "1.3.6.1.6.3.1.1.5.3"},
		{gosnmp.SnmpPDU{Type: gosnmp.IPAddress, Value: "192.0.2.1"}, "192.0.2.1"},
		{gosnmp.SnmpPDU{Type: gosnmp.Null, Value: nil}, nil},
		{gosnmp.SnmpPDU{Type: gosnmp.OpaqueFloat, Value: float32(1.5)}, 1.5},
	}
	for _, tt := range tests {
		if got := convertValue(tt.pdu); got != tt.want {
			t.Errorf("convertValue(%v %#v) = %#v, want %#v", tt.pdu.Type, tt.pdu.Value, got, tt.want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	v2c, err := loadgen.LinkDown("public", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeader(v2c)
	if err != nil || h.version != 1 || string(h.community) != "public" {
		t.Fatalf("v2c header = %+v, %v", h, err)
	}
	for _, bad := range [][]byte{nil, {0x30}, {0x30, 0x01}, {0x1f, 0x00}, {0x30, 0x03, 0x02, 0x01, 0x05}, v2c[:len(v2c)-1]} {
		if _, err := parseHeader(bad); err == nil {
			t.Errorf("parseHeader(% x) accepted", bad)
		}
	}
}

func newTestWorker(t testing.TB) *worker {
	t.Helper()
	r, err := New(Options{
		Listen: "127.0.0.1:0", Communities: []config.Secret{"public"}, Users: testUsers,
		EngineID: []byte(engineID), Workers: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return newWorker(r)
}

// FuzzDecode feeds datagrams through the whole decode path. Whatever the
// bytes, the receiver counts each datagram exactly once, never lets a
// panic escape, and only hands on traps that are well formed and came with
// an accepted community or v3 user.
func FuzzDecode(f *testing.F) {
	for i, c := range []string{"public", "wrong"} {
		b, err := loadgen.LinkDown(c, uint32(i), 3)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	v1 := &gosnmp.SnmpPacket{Version: gosnmp.Version1, Community: "public", PDUType: gosnmp.Trap,
		SnmpTrap: gosnmp.SnmpTrap{Enterprise: ".1.3.6.1.4.1.9.9.43.2", AgentAddress: "192.0.2.7", GenericTrap: 6, SpecificTrap: 1, Timestamp: 77,
			Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.4.1.9.9.43.1.1.6.1.3.12", Type: gosnmp.Integer, Value: 1}}}}
	if b, err := v1.MarshalMsg(); err == nil {
		f.Add(b)
	}
	w := newTestWorker(f)
	from := netip.MustParseAddrPort("127.0.0.2:5000")
	f.Fuzz(func(t *testing.T, b []byte) {
		before := w.r.counts.snapshot()
		var got []Trap
		w.handleDatagram(datagram{b: bytes.Clone(b), from: from, at: time.Unix(0, 0)}, func(tr Trap) { got = append(got, tr) })
		after := w.r.counts.snapshot()
		if after.Total() != before.Total()+1 {
			t.Fatalf("datagram counted %d times", after.Total()-before.Total())
		}
		accepted := after.Received[Version1]+after.Received[Version2c]+after.Received[Version3] >
			before.Received[Version1]+before.Received[Version2c]+before.Received[Version3]
		if accepted != (len(got) == 1) || len(got) > 1 {
			t.Fatalf("accepted=%v but handler called %d times", accepted, len(got))
		}
		if !accepted {
			return
		}
		tr := got[0]
		h, err := parseHeader(b)
		if err != nil {
			t.Fatalf("accepted a datagram whose envelope does not parse: %v", err)
		}
		switch tr.Version {
		case Version1, Version2c:
			if string(h.community) != "public" {
				t.Fatalf("accepted community %q", h.community)
			}
		case Version3:
			if _, ok := w.r.policy.Load().users[string(h.userName)]; !ok {
				t.Fatalf("accepted v3 user %q", h.userName)
			}
		default:
			t.Fatalf("accepted version %q", tr.Version)
		}
		if tr.TrapOID == "" || strings.HasPrefix(tr.TrapOID, ".") || tr.Trap == "" || tr.Vars == nil || !tr.Source.IsValid() {
			t.Fatalf("accepted a malformed trap: %+v", tr)
		}
		for _, vb := range tr.Varbinds {
			if vb.OID == "" {
				t.Fatalf("varbind without OID: %+v", tr)
			}
		}
	})
}

// BenchmarkDecodeV2c is the per-trap cost of the worker: decode, naming,
// counting.
func BenchmarkDecodeV2c(b *testing.B) {
	w := newTestWorker(b)
	pkt, err := loadgen.LinkDown("public", 1, 3)
	if err != nil {
		b.Fatal(err)
	}
	d := datagram{b: pkt, from: netip.MustParseAddrPort("127.0.0.2:5000"), at: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		w.handleDatagram(d, func(Trap) {})
	}
}
