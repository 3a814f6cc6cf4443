package probe

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// These tests use real sockets: devices in network namespaces the tests
// create, and net-snmp's snmpd on loopback. Nothing else is ever probed.

func pingRound(t *testing.T, addr string, mode icmp.Mode) PingStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	st, err := ProBing{}.Ping(ctx, PingRequest{Address: addr, Count: 3, Spacing: 50 * time.Millisecond, Timeout: 300 * time.Millisecond, Mode: mode})
	if err != nil {
		t.Fatalf("ping %s (%s): %v", addr, mode, err)
	}
	// Three echoes 50ms apart, then 300ms for the last reply at most.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a round took %v", took)
	}
	return st
}

func TestRealRawSocketsThroughVeth(t *testing.T) {
	dev := netns.New(t)
	st := pingRound(t, dev.Addr.String(), icmp.ModeRaw)
	if st.Sent != 3 || st.Recv != 3 || st.Loss != 0 || st.Socket != "raw socket" || st.IP != dev.Addr.String() {
		t.Fatalf("raw round to a live device: %+v", st)
	}
	if st.Min <= 0 || st.Min > st.Avg || st.Avg > st.Max || st.Mdev < 0 {
		t.Errorf("rtt min/avg/max/mdev %v/%v/%v/%v out of order", st.Min, st.Avg, st.Max, st.Mdev)
	}
	dev.LinkDown(t)
	st = pingRound(t, dev.Addr.String(), icmp.ModeRaw)
	if st.Sent != 3 || st.Recv != 0 || st.Loss != 100 {
		t.Fatalf("raw round to a device whose link is down: %+v, want 0/3", st)
	}
}

// The ping-socket child runs inside a namespace whose ping_group_range the
// parent opened (the sysctl is per network namespace; the host's is left
// alone), and pings the test process's end of the veth.
const envPingChild = "NOCBRIDGE_PROBE_PING_CHILD"

func TestRealPingSocketsInNamespace(t *testing.T) {
	dev := netns.New(t)
	dev.AllowPingSockets(t)
	dev.RunTest(t, "TestRealPingSocketsChild", envPingChild+"="+dev.MonitorAddr.String())
}

func TestRealPingSocketsChild(t *testing.T) {
	monitor := os.Getenv(envPingChild)
	if monitor == "" {
		t.Skip("runs only inside TestRealPingSocketsInNamespace's namespace")
	}
	for _, mode := range []icmp.Mode{icmp.ModePing, icmp.ModeAuto} {
		st := pingRound(t, monitor, mode)
		if st.Sent != 3 || st.Recv != 3 || st.Socket != "ping socket" {
			t.Errorf("%s over %s: %+v, want 3/3 over a ping socket", monitor, mode, st)
		}
	}
}

// TestRealPingSocketsRefused: where the host's ping_group_range leaves
// this process's group out, privileged: false fails and says what to change.
func TestRealPingSocketsRefused(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	var lo, hi int
	if err != nil || func() bool { _, e := fmt.Sscan(string(b), &lo, &hi); return e != nil }() {
		t.Skipf("cannot read net.ipv4.ping_group_range: %v", err)
	}
	if gid := os.Getegid(); gid >= lo && gid <= hi {
		t.Skipf("this host allows ping sockets to group %d (ping_group_range %d %d): nothing refuses", gid, lo, hi)
	}
	st, err := ProBing{}.Ping(t.Context(), PingRequest{Address: "127.0.0.1", Count: 1, Timeout: 300 * time.Millisecond, Mode: icmp.ModePing})
	if err == nil || st.Sent != 0 || !strings.Contains(err.Error(), "ping_group_range") || !strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Fatalf("ping socket outside ping_group_range: %+v, %v; want an error naming both fixes", st, err)
	}
}

const (
	v3AuthPass = "auth-Pass-7b1e"
	v3PrivPass = "priv-Pass-93c0"
)

// TestRealSNMPReasons polls snmpd with a right and a wrong community, and
// v3 with the right and a wrong passphrase.
func TestRealSNMPReasons(t *testing.T) {
	if _, err := netsnmp.Path(); err != nil {
		netns.SkipOrFail(t, "needs net-snmp's snmpd: %v", err)
	}
	dir := t.TempDir()
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	agent, err := netsnmp.Start(ctx, netsnmp.Config{Dir: dir, Listen: []string{fmt.Sprintf("127.0.0.1:%d", port)}, ReadyCommunity: "public",
		Conf: "rocommunity public 127.0.0.1\nsysName probe-lab\nsysDescr nocbridge probe test agent\n" +
			"override .1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 integer 37\n" +
			fmt.Sprintf("createUser noc SHA-256 %s AES %s\nrouser noc priv\n", v3AuthPass, v3PrivPass)})
	if err != nil {
		t.Fatalf("snmpd: %v", err)
	}
	t.Cleanup(agent.Stop)

	path := filepath.Join(dir, "nocbridge.yaml")
	conf := fmt.Sprintf(`state_dir: ./data
snmp:
  timeout: 300ms
  retries: 0
  profiles:
    right: {version: 2c, community: public, port: %[1]d}
    wrong: {version: 2c, community: not-public, port: %[1]d}
    v3: {version: 3, user: noc, port: %[1]d, auth: {protocol: SHA256, passphrase: %[2]s}, priv: {protocol: AES, passphrase: %[3]s}}
    v3-bad: {version: 3, user: noc, port: %[1]d, auth: {protocol: SHA256, passphrase: not-the-password}, priv: {protocol: AES, passphrase: %[3]s}}
devices:
  - {name: v2c-right, address: 127.0.0.1, snmp: right, icmp: {disabled: true}}
  - {name: v2c-wrong, address: 127.0.0.1, snmp: wrong, icmp: {disabled: true}}
  - {name: v3-right, address: 127.0.0.1, snmp: v3, icmp: {disabled: true}}
  - {name: v3-wrong-pass, address: 127.0.0.1, snmp: v3-bad, icmp: {disabled: true}}
`, port, v3AuthPass, v3PrivPass)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := snapshotOf(t, path)
	p := New(Options{Pinger: newFakePinger(), Resolve: noDNS})
	for _, tc := range []struct{ device, reason string }{
		{"v2c-right", ""},
		{"v2c-wrong", snmp.ReasonTimeout}, // agents stay silent to a wrong community
		{"v3-right", ""},
		{"v3-wrong-pass", snmp.ReasonAuth},
	} {
		t.Run(tc.device, func(t *testing.T) {
			r, err := p.Probe(t.Context(), s, tc.device)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for i, secret := range []string{v3AuthPass, v3PrivPass, "not-the-password", "not-public"} {
				if strings.Contains(text.String(), secret) {
					t.Fatalf("secret #%d of the test config in the output", i) // the output itself is not shown: it holds the secret
				}
			}
			got := r.SNMP
			if got.Reason != tc.reason || got.OK != (tc.reason == "") || r.Answered != got.OK {
				t.Fatalf("snmp %+v answered %v, want reason %q", got, r.Answered, tc.reason)
			}
			if got.OK && (got.SysName != "probe-lab" || got.SysDescr != "nocbridge probe test agent" || got.CPUPct == nil ||
				*got.CPUPct != 37 || got.CPUSource != snmp.SourceCisco || got.UptimeS == nil) {
				t.Errorf("snmp %+v: want sysName, sysDescr, uptime and cpu 37 from %s", got, snmp.SourceCisco)
			}
			if !got.OK && (got.Hint == "" || !strings.Contains(got.Error, tc.device)) {
				t.Errorf("failure %+v: want a hint and the device named", got)
			}
			if time.Duration(got.Took) > 2*time.Second {
				t.Errorf("snmp step took %v with a 300ms timeout", got.Took)
			}
			t.Logf("\n%s", text.String())
		})
	}
}
