package app

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// envNodeChild names the config of the cluster node a test runs inside a
// network namespace (TestClusterNodeInNamespace); envNodeStop the file
// whose appearance stops it.
const (
	envNodeChild = "NOCBRIDGE_TEST_NODE_CONFIG"
	envNodeStop  = "NOCBRIDGE_TEST_NODE_STOP"
)

// A vantage point's own bad uplink (SPEC 9, 10): three nodes with
// down_when: majority ping one device. Node nb3 runs in its own network
// namespace behind a router namespace, as do the device and the two other
// nodes' path to it. First nb3 loses its route to the device but stays in
// the cluster: its rounds fail and are outvoted; then its link goes down
// altogether: a partitioned minority, it neither evaluates nor sends (if it
// led, another node takes over). No "device down" reaches the receiver in
// either case; the device's own failure afterwards does, once.
func TestVantagePointWithBadUplinkRaisesNoFalseDown(t *testing.T) {
	requireICMP(t)
	netns.Require(t)
	router := netns.New(t)
	device := router.Behind(t)
	nb3 := router.Behind(t)
	root := router.MonitorAddr.String() // this process's address toward the router

	// The receiver listens where nb3 can reach it too, should it lead.
	rcv := &receiver{t: t, answer: always(http.StatusOK), notify: make(chan struct{}, 1)}
	rcv.srv = httptest.NewUnstartedServer(http.HandlerFunc(rcv.serve))
	ln, err := net.Listen("tcp", root+":0")
	if err != nil {
		t.Fatal(err)
	}
	rcv.srv.Listener = ln
	rcv.srv.Start()
	t.Cleanup(rcv.srv.Close)

	freeOn := func() string {
		l, err := net.Listen("tcp", root+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	routes := []string{freeOn(), freeOn(), nb3.Addr.String() + ":6222"}
	httpAddrs := []string{freePort(t), freePort(t), nb3.Addr.String() + ":8080"}
	paths := writeClusterConfigs(t, clusterConfig{Name: "vantage-test", Routes: routes, HTTP: httpAddrs, DownWhen: "majority", Node: func(int) nodeConfig {
		return nodeConfig{
			Token: clusterToken,
			Rules: "rules/*.yaml",
			Rule: `rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    for: 3s
    clear_when: loss == 0
    severity: 1
    category: ALERT
    domain: Connectivity
    sub_domain: Devices
    description: "{{ .Device.Name }} is unreachable"
`,
			Extra:   "icmp: {interval: 1s, timeout: 500ms}\n",
			Devices: []string{fmt.Sprintf("{name: dut, address: %s, site: Lab}", device.Addr)},
			Hook:    &hookConfig{URL: rcv.srv.URL},
		}
	}})
	// nb3's child runs as root in its namespace; its files live in the
	// test's temporary directory all the same.
	if err := os.Chmod(filepath.Dir(paths[2]), 0o755); err != nil {
		t.Fatal(err)
	}

	// nb3 in its namespace, the two others here, all at once: each waits
	// in store.Open for the others.
	stopFile := filepath.Join(t.TempDir(), "stop")
	var child sync.WaitGroup
	child.Go(func() {
		nb3.RunTest(t, "TestClusterNodeInNamespace", envNodeChild+"="+paths[2], envNodeStop+"="+stopFile)
	})
	// Stopped before the test returns: the child is killed with the
	// test's context, which ends before cleanups run.
	defer func() {
		_ = os.WriteFile(stopFile, nil, 0o644)
		child.Wait()
	}()
	startClusterApps(t, paths[:2])
	r := &clusterRig{t: t, rcv: rcv, http: httpAddrs}
	leader := r.agreedLeader([]int{0, 1, 2}, 60*time.Second)
	t.Logf("nb%d leads", leader+1)

	// Every node's rounds reach the leader and say up.
	results := func(n int) map[string]bool {
		var d struct {
			State   string `json:"state"`
			Vantage []struct {
				Node  string `json:"node"`
				Up    bool   `json:"up"`
				Fresh bool   `json:"fresh"`
			} `json:"vantage"`
		}
		getJSONWithToken(t, "http://"+httpAddrs[n]+"/api/v1/devices/dut", clusterToken, &d)
		up := map[string]bool{}
		for _, v := range d.Vantage {
			if v.Fresh {
				up[v.Node] = v.Up
			}
		}
		return up
	}
	waitUntil(t, 20*time.Second, "the three nodes' rounds at the leader, all up", func() bool {
		up := results(leader)
		return len(up) == 3 && up["nb1"] && up["nb2"] && up["nb3"]
	})

	// nb3 loses its route to the device, not to the cluster.
	if out, err := nb3.Exec(t, "ip", "route", "add", "blackhole", device.Prefix.String()).CombinedOutput(); err != nil {
		t.Fatalf("blackhole in nb3: %v: %s", err, out)
	}
	waitUntil(t, 10*time.Second, "nb3's failing rounds at the leader", func() bool {
		up := results(leader)
		return len(up) == 3 && !up["nb3"] && up["nb1"] && up["nb2"]
	})
	time.Sleep(6 * time.Second) // twice the rule's `for`: a false down would have fired
	if got := rcv.deliveries(); len(got) != 0 {
		t.Fatalf("nb3's bad uplink raised %+v; want nothing (outvoted under down_when: majority)", got)
	}

	// nb3 cut off altogether: a minority, it neither evaluates nor sends.
	nb3.LinkDown(t)
	leader = r.agreedLeader([]int{0, 1}, 15*time.Second)
	time.Sleep(6 * time.Second)
	if got := rcv.deliveries(); len(got) != 0 {
		t.Fatalf("nb3 partitioned raised %+v; want nothing", got)
	}

	// The device itself fails: the two nodes left agree, one notification.
	device.LinkDown(t)
	got := rcv.waitFor(20*time.Second, "the device's own down", func(d []delivery) bool { return len(d) >= 1 })
	time.Sleep(2 * time.Second)
	if got = rcv.deliveries(); len(got) != 1 || got[0].Status != "active" {
		t.Fatalf("the device's failure delivered %+v; want one active", got)
	}
	t.Logf("nb%d leads after the partition; the real outage was notified once", leader+1)
}

// TestClusterNodeInNamespace is the cluster node a test runs inside a
// network namespace: it runs the daemon on the config envNodeChild names
// until the file envNodeStop names appears.
func TestClusterNodeInNamespace(t *testing.T) {
	path := os.Getenv(envNodeChild)
	if path == "" {
		t.Skip("a cluster node for TestVantagePointWithBadUplinkRaisesNoFalseDown, run by it inside a network namespace")
	}
	_, stop := startAppWithLogger(t, path, nodeLogger(t, "nb3"))
	defer stop()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(os.Getenv(envNodeStop)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Error("not told to stop within 3 minutes")
}
