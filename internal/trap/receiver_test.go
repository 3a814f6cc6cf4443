package trap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/trap/loadgen"
)

// requireTool skips without net-snmp, or fails under NOCBRIDGE_REQUIRE_INTEROP=1.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("NOCBRIDGE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("%s not installed (net-snmp), required by NOCBRIDGE_REQUIRE_INTEROP=1", name)
		}
		t.Skipf("%s not installed: install net-snmp (snmp package) to run interop tests", name)
	}
}

const (
	engineID  = "\x80\x00\x1f\x88\x80\xc0\xff\xee"
	engineHex = "80001f8880c0ffee"
	// The sender's engine ID for v3 traps (the trap sender is authoritative).
	senderEngineHex = "8000000001020304"
)

// v3User is a profile as config would hold it for traps.users.
func v3User(name, auth, authPass, priv, privPass string) config.SNMPProfile {
	p := config.SNMPProfile{Version: "3", User: name, Auth: &config.SNMPKey{Protocol: auth, Passphrase: config.Secret(authPass)}}
	if priv != "" {
		p.Priv = &config.SNMPKey{Protocol: priv, Passphrase: config.Secret(privPass)}
	}
	return p
}

var testUsers = []config.SNMPProfile{
	v3User("noc-sha256", "SHA256", "auth-pass-256", "", ""),
	v3User("noc-priv", "SHA256", "auth-pass-priv", "AES", "priv-pass-priv"),
	v3User("noc-md5des", "MD5", "md5-auth-pass", "DES", "des-priv-pass"),
	v3User("noc-sha512", "SHA512", "sha512-auth-pass", "AES256C", "aes256-priv-pass"),
}

type harness struct {
	r     *Receiver
	reg   *prometheus.Registry
	port  string
	mu    sync.Mutex
	traps []Trap
}

func start(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry()}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Communities == nil {
		opts.Communities = []config.Secret{"public"}
	}
	if opts.Users == nil {
		opts.Users = testUsers
	}
	if opts.EngineID == nil {
		opts.EngineID = []byte(engineID)
	}
	opts.Registerer = h.reg
	opts.Workers = 2
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	h.port = fmt.Sprint(r.Addr().(*net.UDPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.run(ctx, func(tr Trap) {
			h.mu.Lock()
			h.traps = append(h.traps, tr)
			h.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

// waitTotal waits until n datagrams have been counted (received or dropped).
func (h *harness) waitTotal(t *testing.T, n uint64) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.r.Stats()
		if s.Total() >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("counted %d datagrams, want %d: %+v", s.Total(), n, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) received() []Trap {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Trap(nil), h.traps...)
}

// netsnmp runs snmptrap/snmpinform against the harness from clientAddr,
// isolated from the host's net-snmp configuration.
func (h *harness) netsnmp(t *testing.T, tool, clientAddr string, args ...string) error {
	t.Helper()
	dir := t.TempDir()
	full := append([]string{"-m", "", "-M", dir, "-r", "1", "-t", "2", "--clientaddr=" + clientAddr}, args...)
	// The target goes after the options, before the trap arguments: callers
	// put "TARGET" where it belongs.
	for i, a := range full {
		if a == "TARGET" {
			full[i] = "udp:127.0.0.1:" + h.port
		}
	}
	cmd := exec.Command(tool, full...)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir, "MIBS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}

var linkDownVars = []string{
	"1.3.6.1.2.1.2.2.1.1.3", "i", "3",
	"1.3.6.1.2.1.2.2.1.2.3", "s", "GigabitEthernet1/0/3",
	"1.3.6.1.2.1.2.2.1.8.3", "i", "2",
}

func TestNetSNMPTraps(t *testing.T) {
	requireTool(t, "snmptrap")
	h := start(t, Options{})
	v3 := func(user, level, auth, authPass, priv, privPass string) []string {
		a := []string{"-v", "3", "-e", senderEngineHex, "-u", user, "-l", level, "-a", auth, "-A", authPass}
		if priv != "" {
			a = append(a, "-x", priv, "-X", privPass)
		}
		return append(a, "TARGET", "", "1.3.6.1.6.3.1.1.5.3")
	}
	tests := []struct {
		name, version string
		args          []string
	}{
		// v1 linkDown: generic-trap 2, agent-addr 127.0.0.2.
		{"v1", Version1, []string{"-v", "1", "-c", "public", "TARGET", "1.3.6.1.4.1.8072.3.2.10", "127.0.0.2", "2", "0", ""}},
		{"v2c", Version2c, []string{"-v", "2c", "-c", "public", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		{"v3 authNoPriv SHA-256", Version3, v3("noc-sha256", "authNoPriv", "SHA-256", "auth-pass-256", "", "")},
		{"v3 authPriv SHA-256 AES", Version3, v3("noc-priv", "authPriv", "SHA-256", "auth-pass-priv", "AES", "priv-pass-priv")},
		{"v3 authPriv MD5 DES", Version3, v3("noc-md5des", "authPriv", "MD5", "md5-auth-pass", "DES", "des-priv-pass")},
		{"v3 authPriv SHA-512 AES-256", Version3, v3("noc-sha512", "authPriv", "SHA-512", "sha512-auth-pass", "AES-256", "aes256-priv-pass")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.netsnmp(t, "snmptrap", "127.0.0.2", append(tt.args, linkDownVars...)...); err != nil {
				t.Fatal(err)
			}
			s := h.waitTotal(t, uint64(i+1))
			if s.Received[tt.version] == 0 {
				t.Fatalf("trap not received: %+v", s)
			}
			traps := h.received()
			tr := traps[len(traps)-1]
			if tr.Version != tt.version || tr.Trap != "IF-MIB::linkDown" || tr.TrapOID != "1.3.6.1.6.3.1.1.5.3" {
				t.Errorf("got version %q trap %q (%s)", tr.Version, tr.Trap, tr.TrapOID)
			}
			if tr.Source != netip.MustParseAddr("127.0.0.2") {
				t.Errorf("source = %s", tr.Source)
			}
			want := map[string]any{"IF-MIB::ifIndex": 3, "IF-MIB::ifDescr": "GigabitEthernet1/0/3", "IF-MIB::ifOperStatus": 2}
			for k, v := range want {
				if tr.Vars[k] != v {
					t.Errorf("vars[%q] = %#v, want %#v", k, tr.Vars[k], v)
				}
			}
			rv := tr.Observation().Vars
			if rv["trap"] != "IF-MIB::linkDown" || rv["source"] != "127.0.0.2" || rv["version"] != tt.version {
				t.Errorf("rule vars = %v", rv)
			}
			if err := tr.Observation().CheckVars(); err != nil {
				t.Error(err)
			}
			if d := tr.Observation().Device; d.Name != "127.0.0.2" || d.Address != "127.0.0.2" {
				t.Errorf("a sender outside any inventory is device %+v, want one named by its address", d)
			}
		})
	}
}

func TestNetSNMPRefused(t *testing.T) {
	requireTool(t, "snmptrap")
	h := start(t, Options{})
	tests := []struct {
		name, reason string
		args         []string
	}{
		{"wrong community v2c", ReasonCommunity, []string{"-v", "2c", "-c", "private", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		{"wrong community v1", ReasonCommunity, []string{"-v", "1", "-c", "private", "TARGET", "1.3.6.1.4.1.8072", "127.0.0.2", "2", "0", ""}},
		{"wrong v3 auth key", ReasonAuth, []string{"-v", "3", "-e", senderEngineHex, "-u", "noc-sha256", "-l", "authNoPriv",
			"-a", "SHA-256", "-A", "not-the-passphrase", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		{"wrong v3 priv key", ReasonAuth, []string{"-v", "3", "-e", senderEngineHex, "-u", "noc-priv", "-l", "authPriv",
			"-a", "SHA-256", "-A", "auth-pass-priv", "-x", "AES", "-X", "wrong-priv-pass", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		{"v3 below the user's level", ReasonAuth, []string{"-v", "3", "-e", senderEngineHex, "-u", "noc-priv", "-l", "authNoPriv",
			"-a", "SHA-256", "-A", "auth-pass-priv", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		{"unknown v3 user", ReasonAuth, []string{"-v", "3", "-e", senderEngineHex, "-u", "stranger", "-l", "authNoPriv",
			"-a", "SHA-256", "-A", "auth-pass-256", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
	}
	want := map[string]uint64{}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.netsnmp(t, "snmptrap", "127.0.0.2", append(tt.args, linkDownVars...)...); err != nil {
				t.Fatal(err)
			}
			want[tt.reason]++
			s := h.waitTotal(t, uint64(i+1))
			if s.Dropped[tt.reason] != want[tt.reason] {
				t.Errorf("dropped[%s] = %d, want %d", tt.reason, s.Dropped[tt.reason], want[tt.reason])
			}
		})
	}
	if n := len(h.received()); n != 0 {
		t.Errorf("%d refused traps were handed on", n)
	}
}

func TestNetSNMPInform(t *testing.T) {
	requireTool(t, "snmpinform")
	h := start(t, Options{})
	tests := []struct {
		name, version string
		args          []string
	}{
		{"v2c", Version2c, []string{"-v", "2c", "-c", "public", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		// No -e: snmpinform discovers the receiver's engine ID first.
		{"v3 authPriv", Version3, []string{"-v", "3", "-u", "noc-priv", "-l", "authPriv", "-a", "SHA-256", "-A", "auth-pass-priv",
			"-x", "AES", "-X", "priv-pass-priv", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
		{"v3 authNoPriv", Version3, []string{"-v", "3", "-u", "noc-sha256", "-l", "authNoPriv", "-a", "SHA-256", "-A", "auth-pass-256",
			"TARGET", "", "1.3.6.1.6.3.1.1.5.3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.received())
			// snmpinform exits non-zero unless the inform was acknowledged.
			if err := h.netsnmp(t, "snmpinform", "127.0.0.2", append(tt.args, linkDownVars...)...); err != nil {
				t.Fatal(err)
			}
			traps := h.received()
			if len(traps) != before+1 {
				t.Fatalf("got %d traps, want %d", len(traps), before+1)
			}
			tr := traps[len(traps)-1]
			if !tr.Inform || tr.Version != tt.version || tr.Vars["IF-MIB::ifIndex"] != 3 {
				t.Errorf("got inform=%v version %q vars %v", tr.Inform, tr.Version, tr.Vars)
			}
		})
	}
	// The v3 discovery probes are answered and counted as such, not as auth failures.
	s := h.r.Stats()
	if s.Dropped[ReasonDiscovery] != 2 || s.Dropped[ReasonAuth] != 0 {
		t.Errorf("discovery probes counted %d (auth drops %d), want 2 (0): %+v", s.Dropped[ReasonDiscovery], s.Dropped[ReasonAuth], s)
	}
}

func TestInformWithoutEngineID(t *testing.T) {
	requireTool(t, "snmpinform")
	h := start(t, Options{EngineID: []byte{}})
	err := h.netsnmp(t, "snmpinform", "127.0.0.2", "-r", "0", "-t", "1", "-v", "3", "-u", "noc-priv", "-l", "authPriv", "-a", "SHA-256", "-A", "auth-pass-priv",
		"-x", "AES", "-X", "priv-pass-priv", "TARGET", "", "1.3.6.1.6.3.1.1.5.3")
	if err == nil {
		t.Fatal("inform acknowledged without a local engine ID")
	}
	if s := h.r.Stats(); s.Dropped[ReasonAuth] == 0 || len(h.received()) != 0 {
		t.Errorf("stats %+v, %d traps", s, len(h.received()))
	}
}

// send writes raw datagrams from a loopback source address.
func send(t *testing.T, h *harness, from string, pkts ...[]byte) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := h.r.Addr().(*net.UDPAddr)
	for _, p := range pkts {
		if _, err := c.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
}

func linkDown(t *testing.T, community string, ifIndex int) []byte {
	t.Helper()
	b, err := loadgen.LinkDown(community, uint32(ifIndex), ifIndex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMalformed(t *testing.T) {
	h := start(t, Options{})
	good := linkDown(t, "public", 7)
	bad := [][]byte{
		good[:len(good)-3],                         // truncated BER
		[]byte("GET / HTTP/1.1\r\n\r\n"),           // garbage
		{0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 2},    // huge length
		{0x30, 0x83, 0x10, 0x00, 0x00},             // length beyond the datagram
		{0x30, 0x00},                               // empty sequence
		{0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00}, // indefinite length
		append(append([]byte{}, good...), 0),       // trailing byte
		{},                                         // empty datagram
	}
	// A v2c GetRequest with the right community is not a trap.
	get := append([]byte{}, good...)
	get[bytesIndex(get, 0xa7)] = 0xa0
	bad = append(bad, get)
	send(t, h, "127.0.0.6", bad...)
	send(t, h, "127.0.0.6", good)
	s := h.waitTotal(t, uint64(len(bad)+1))
	if s.Dropped[ReasonMalformed] != uint64(len(bad)) || s.Received[Version2c] != 1 {
		t.Errorf("stats = %+v, want %d malformed and 1 received", s, len(bad))
	}
}

// bytesIndex finds the PDU tag after the community "public".
func bytesIndex(b []byte, tag byte) int {
	i := strings.Index(string(b), "public") + len("public")
	if b[i] != tag {
		panic("unexpected encoding")
	}
	return i
}

func TestRateLimitPerSource(t *testing.T) {
	const limit = 50
	h := start(t, Options{RateLimitPerSource: limit})
	storm := make([][]byte, 1000)
	for i := range storm {
		storm[i] = linkDown(t, "public", 1)
	}
	began := time.Now()
	send(t, h, "127.0.0.3", storm...)
	quiet := [][]byte{linkDown(t, "public", 2), linkDown(t, "public", 3), linkDown(t, "public", 4)}
	send(t, h, "127.0.0.4", quiet...)
	s := h.waitTotal(t, uint64(len(storm)+len(quiet)))
	elapsed := time.Since(began).Seconds()

	bySource := map[string]int{}
	for _, tr := range h.received() {
		bySource[tr.Source.String()]++
	}
	if bySource["127.0.0.4"] != len(quiet) {
		t.Errorf("quiet source got %d of %d traps through", bySource["127.0.0.4"], len(quiet))
	}
	// Burst of one second's worth plus the refill while the storm lasted.
	maxStorm := limit + int(elapsed*limit) + 1
	if n := bySource["127.0.0.3"]; n < limit || n > maxStorm {
		t.Errorf("storm source got %d traps through, want %d..%d", n, limit, maxStorm)
	}
	if got := s.Dropped[ReasonRateLimit] + s.Received[Version2c]; got != uint64(len(storm)+len(quiet)) {
		t.Errorf("received + dropped = %d, want %d", got, len(storm)+len(quiet))
	}
}

// knownInventory holds one device, at 127.0.0.2.
func knownInventory() *inventory.Inventory {
	return inventory.Of(inventory.Device{Name: "known-sw", Address: "127.0.0.2"})
}

func TestUnknownSources(t *testing.T) {
	known := netip.MustParseAddr("127.0.0.2")
	h := start(t, Options{UnknownSources: "drop", Inventory: knownInventory})
	send(t, h, "127.0.0.5", linkDown(t, "public", 1))
	send(t, h, "127.0.0.2", linkDown(t, "public", 2))
	s := h.waitTotal(t, 2)
	if s.Dropped[ReasonUnknownSource] != 1 || s.Received[Version2c] != 1 {
		t.Errorf("stats = %+v", s)
	}
	tr := h.received()
	if len(tr) != 1 || tr[0].Source != known || tr[0].Device == nil || tr[0].Device.Name != "known-sw" {
		t.Fatalf("traps = %+v", tr)
	}
	if o := tr[0].Observation(); o.Source != observation.Trap || o.Device != tr[0].Device {
		t.Errorf("observation from %s about %+v, want a trap observation about the inventory's known-sw", o.Source, o.Device)
	}
}

// A v1 trap's agent address is believed from a relay, and from a known
// device when it names a known device; from anyone else it is ignored, so it
// cannot carry an unknown sender past unknown_sources: drop.
func TestV1AgentAddr(t *testing.T) {
	requireTool(t, "snmptrap")
	inv := func() *inventory.Inventory {
		return inventory.Of(inventory.Device{Name: "known-sw", Address: "127.0.0.2"}, inventory.Device{Name: "other-sw", Address: "127.0.0.3"})
	}
	relays := []netip.Prefix{netip.MustParsePrefix("127.0.0.16/30")}
	tests := []struct {
		name, policy, from, agent string
		want                      string // the trap's source; empty: dropped as unknown_source
	}{
		{"spoofed by an unknown sender", "drop", "127.0.0.7", "127.0.0.2", ""},
		{"relayed about a known device", "drop", "127.0.0.17", "127.0.0.2", "127.0.0.2"},
		{"relayed about an unknown agent", "drop", "127.0.0.17", "127.0.0.9", ""},
		{"relayed about an unknown agent, accepted", "accept", "127.0.0.17", "127.0.0.9", "127.0.0.9"},
		{"a known device about another", "drop", "127.0.0.2", "127.0.0.3", "127.0.0.3"},
		{"a known device naming an unknown agent", "drop", "127.0.0.2", "127.0.0.9", "127.0.0.2"},
		{"an unknown sender naming a device, accepted", "accept", "127.0.0.7", "127.0.0.2", "127.0.0.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, Options{UnknownSources: tt.policy, Inventory: inv, Relays: relays})
			if err := h.netsnmp(t, "snmptrap", tt.from, "-v", "1", "-c", "public", "TARGET",
				"1.3.6.1.4.1.9", tt.agent, "6", "17", "", "1.3.6.1.2.1.2.2.1.1.3", "i", "3"); err != nil {
				t.Fatal(err)
			}
			s := h.waitTotal(t, 1)
			tr := h.received()
			if tt.want == "" {
				if len(tr) != 0 || s.Dropped[ReasonUnknownSource] != 1 {
					t.Fatalf("got %+v, stats %+v; want it dropped as from an unknown source", tr, s)
				}
				return
			}
			if len(tr) != 1 || tr[0].Source.String() != tt.want {
				t.Fatalf("got %+v, stats %+v; want a trap about %s", tr, s, tt.want)
			}
			// enterpriseSpecific: enterprise.0.specific (RFC 3584 3.1).
			if tr[0].TrapOID != "1.3.6.1.4.1.9.0.17" || tr[0].Vars["SNMPv2-MIB::snmpTrapEnterprise"] != "1.3.6.1.4.1.9" {
				t.Errorf("trap = %+v", tr[0])
			}
		})
	}
}

// At most max_unknown_sources unknown senders (default 1000) are tracked:
// the next one's traps are dropped and counted, the tracked ones' still
// pass, and a sender leaves the set unknown_expire after its last trap.
func TestUnknownSourceLimit(t *testing.T) {
	requireTool(t, "snmptrap")
	h := start(t, Options{UnknownExpire: 1500 * time.Millisecond, Inventory: knownInventory})
	for i := range defaultMaxUnknown {
		send(t, h, fmt.Sprintf("127.0.%d.%d", 10+i/250, 1+i%250), linkDown(t, "public", 1))
	}
	h.waitTotal(t, defaultMaxUnknown)
	trap := []string{"-v", "2c", "-c", "public", "TARGET", "", "1.3.6.1.6.3.1.1.5.3"}
	if err := h.netsnmp(t, "snmptrap", "127.0.50.1", trap...); err != nil { // the 1,001st
		t.Fatal(err)
	}
	if err := h.netsnmp(t, "snmptrap", "127.0.10.1", trap...); err != nil { // the first, again
		t.Fatal(err)
	}
	s := h.waitTotal(t, defaultMaxUnknown+2)
	if s.Dropped[ReasonUnknownLimit] != 1 || s.Received[Version2c] != defaultMaxUnknown+1 {
		t.Fatalf("stats %+v; want the 1,001st sender's trap dropped and the rest received", s)
	}
	if s.Total() != defaultMaxUnknown+2 {
		t.Errorf("received + dropped = %d, want %d", s.Total(), defaultMaxUnknown+2)
	}
	if tr := h.received(); tr[len(tr)-1].Source.String() != "127.0.10.1" {
		t.Errorf("last trap from %s, want the tracked 127.0.10.1", tr[len(tr)-1].Source)
	}
	if g := h.unknownGauge(t); g != defaultMaxUnknown {
		t.Errorf("nocbridge_traps_unknown_sources = %v, want %d", g, defaultMaxUnknown)
	}
	// Past unknown_expire the set has room again.
	time.Sleep(1600 * time.Millisecond)
	if err := h.netsnmp(t, "snmptrap", "127.0.50.1", trap...); err != nil {
		t.Fatal(err)
	}
	if s := h.waitTotal(t, defaultMaxUnknown+3); s.Received[Version2c] != defaultMaxUnknown+2 {
		t.Fatalf("stats %+v; want the new sender admitted once the others expired", s)
	}
	if g := h.unknownGauge(t); g != 1 {
		t.Errorf("nocbridge_traps_unknown_sources = %v after the expiry, want 1", g)
	}
}

func (h *harness) unknownGauge(t *testing.T) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "nocbridge_traps_unknown_sources" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no nocbridge_traps_unknown_sources")
	return 0
}

// Metrics: received + dropped equals the datagrams sent, as Prometheus sees it.
func TestMetricsAddUp(t *testing.T) {
	h := start(t, Options{Communities: []config.Secret{"public", "second"}})
	pkts := [][]byte{linkDown(t, "public", 1), linkDown(t, "second", 2), linkDown(t, "wrong", 3), []byte("junk")}
	send(t, h, "127.0.0.8", pkts...)
	h.waitTotal(t, uint64(len(pkts)))
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var total float64
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), "_total") {
			continue // the unknown senders' gauge
		}
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			total += m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"nocbridge_traps_received_total/2c":       2,
		"nocbridge_traps_dropped_total/community": 1,
		"nocbridge_traps_dropped_total/malformed": 1,
		"nocbridge_traps_received_total/1":        0,
		"nocbridge_traps_dropped_total/panic":     0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if total != float64(len(pkts)) {
		t.Errorf("received + dropped = %v, want %d", total, len(pkts))
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no listen", Options{}, "listen address is empty"},
		{"bad policy", Options{Listen: "127.0.0.1:0", UnknownSources: "maybe"}, "unknown_sources"},
		{"negative rate", Options{Listen: "127.0.0.1:0", RateLimitPerSource: -1}, "rate_limit_per_source"},
		{"short engine id", Options{Listen: "127.0.0.1:0", EngineID: []byte{1, 2}}, "engine_id"},
		{"bad auth", Options{Listen: "127.0.0.1:0", Users: []config.SNMPProfile{v3User("u", "SHA1", "12345678", "", "")}}, "auth protocol"},
		{"priv without auth", Options{Listen: "127.0.0.1:0", Users: []config.SNMPProfile{{Version: "3", User: "u", Priv: &config.SNMPKey{Protocol: "AES", Passphrase: "12345678"}}}}, "privacy needs"},
		{"short passphrase", Options{Listen: "127.0.0.1:0", Users: []config.SNMPProfile{v3User("u", "SHA", "short", "", "")}}, "at least 8"},
		{"bad address", Options{Listen: "127.0.0.1:notaport"}, "listening on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.opts)
			if err == nil {
				r.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "12345678") {
				t.Errorf("error leaks a passphrase: %v", err)
			}
		})
	}
	// Port in use fails at New, not in Run.
	r, err := New(Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r2, err := New(Options{Listen: r.Addr().String()}); err == nil {
		r2.Close()
		t.Error("second bind on the same port succeeded")
	}
}

func TestReload(t *testing.T) {
	h := start(t, Options{})
	send(t, h, "127.0.0.9", linkDown(t, "rotated", 1))
	h.waitTotal(t, 1)
	if err := h.r.Reload(Options{Listen: "127.0.0.1:0", EngineID: []byte(engineID), Communities: []config.Secret{"rotated"}}); err != nil {
		t.Fatal(err)
	}
	send(t, h, "127.0.0.9", linkDown(t, "rotated", 1))
	s := h.waitTotal(t, 2)
	if s.Dropped[ReasonCommunity] != 1 || s.Received[Version2c] != 1 {
		t.Errorf("stats = %+v", s)
	}
	if err := h.r.Reload(Options{Listen: "127.0.0.1:1"}); err == nil {
		t.Error("Reload accepted a new listen address")
	}
}

func TestRunStopsAndHandlerPanics(t *testing.T) {
	r, err := New(Options{Listen: "127.0.0.1:0", Communities: []config.Secret{"public"}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	calls := make(chan struct{}, 2)
	go func() {
		done <- r.run(ctx, func(Trap) { calls <- struct{}{}; panic("handler bug") })
	}()
	h := &harness{r: r}
	send(t, h, "127.0.0.2", linkDown(t, "public", 1), linkDown(t, "public", 2))
	for range 2 { // the worker survives the first panic
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("handler not called")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if err := r.run(context.Background(), func(Trap) {}); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("second Run = %v, want an error", err)
	}
}
