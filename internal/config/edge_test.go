package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"1GiB", 1 << 30, false},
		{"512MiB", 512 << 20, false},
		{"64KiB", 64 << 10, false},
		{"10MB", 10e6, false},
		{"2TiB", 2 << 40, false},
		{"4096", 4096, false},
		{"100B", 100, false},
		{"1.5GiB", 0, true},
		{"-1GiB", 0, true},
		{"1gib", 0, true},
		{"99999999999TiB", 0, true},
		{"", 0, true},
	} {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, z := range []Size{1 << 30, 512 << 20, 1536, 100, 10e6} {
		back, err := ParseSize(z.String())
		if err != nil || back != z {
			t.Errorf("%d → %q → %d, %v", z, z.String(), back, err)
		}
	}
}

func TestLoadEdgeAndHub(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	devices := "devices:\n  - {name: br-sw1, address: 10.8.0.1, site: BR1}\n  - {name: br-sw2, address: 10.8.0.2, site: BR2}\n"
	edge, err := Load(write("edge.yaml", "edge: {hub: nats-leaf://hub.example.net:7422, site: BR1}\n"+devices))
	if err != nil {
		t.Fatal(err)
	}
	if e := edge.Edge; e == nil || e.Hub != "nats-leaf://hub.example.net:7422" || e.Site != "BR1" || e.Buffer != 1<<30 || e.TLS != nil {
		t.Errorf("edge = %+v, want the hub, site BR1 and the default buffer 1GiB", edge.Edge)
	}
	small, err := Load(write("small.yaml", "edge: {hub: nats-leaf://10.0.0.9:7422, site: BR2, buffer: 512MiB}\n"+devices))
	if err != nil {
		t.Fatal(err)
	}
	if small.Edge.Buffer != 512<<20 {
		t.Errorf("buffer = %d, want 512MiB", small.Edge.Buffer)
	}
	hub, err := Load(write("hub.yaml", "hub: {sites: [BR1, BR2]}\n"+devices))
	if err != nil {
		t.Fatal(err)
	}
	if h := hub.Hub; h == nil || h.Listen != "0.0.0.0:7422" || h.UnreachableAfter.D() != 30*time.Second || len(h.Sites) != 2 {
		t.Errorf("hub = %+v, want listen 0.0.0.0:7422, unreachable_after 30s and two sites", hub.Hub)
	}
	if len(hub.Warnings) != 1 || !strings.Contains(hub.Warnings[0].Msg, "hub.tls is not set") {
		t.Errorf("warnings %v, want one: a leaf listener open to the network without TLS", hub.Warnings)
	}
	local, err := Load(write("local.yaml", "hub: {listen: 127.0.0.1:7422, sites: [BR1]}\n"+devices))
	if err != nil || len(local.Warnings) != 0 {
		t.Errorf("a hub on loopback: %v, warnings %v; want none", err, local.Warnings)
	}
}
