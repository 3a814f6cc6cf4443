package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// TestProbeExitStatus probes a device in a network namespace the test
// creates: exit 0 while it answers ping, 2 once its link is down (ping
// lost, SNMP timing out), with the human output saying so.
func TestProbeExitStatus(t *testing.T) {
	dev := netns.New(t)
	path := filepath.Join(t.TempDir(), "nocbridge.yaml")
	conf := fmt.Sprintf(`state_dir: ./data
icmp: {interval: 2s, timeout: 300ms, count: 2}
snmp:
  timeout: 200ms
  retries: 0
  profiles:
    lab: {version: 2c, community: public}
devices:
  - {name: ns-sw1, address: %s, snmp: lab}
`, dev.Addr)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	probe := func(want int, lines ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"probe", "--config", path, "ns-sw1"}, &stdout, &stderr); code != want {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout.String(), stderr.String())
		}
		for _, l := range lines {
			if !strings.Contains(stdout.String(), l) {
				t.Errorf("output lacks %q:\n%s", l, stdout.String())
			}
		}
	}
	// Up, but no agent: the port answers ICMP unreachable.
	probe(exitOK, "ping    ok    2/2 answered, 0% loss", "snmp    FAIL  unreachable after", "the device answered")
	dev.LinkDown(t)
	probe(exitRuntime, "ping    FAIL  0/2 answered, 100% loss", "snmp    FAIL  timeout after", "the device did not answer")
}
