package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain runs a child's part when a benchmark started this test binary
// as one of its processes (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if os.Getenv(envBenchChild) == "1" && len(os.Args) > 1 && benchmarks[os.Args[1]] != nil {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFailoverLease: three node processes form a cluster; kill -9 of the
// one holding the lease hands it to another, in a later term.
func TestFailoverLease(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-process JetStream cluster and waits for a lease to expire")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := &leaseCluster{}
	defer c.stop()
	results, err := measureFailover(ctx, c, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	if r.next == r.killed || r.newTerm <= r.oldTerm {
		t.Errorf("after kill -9 of nb%d (term %d): nb%d leads in term %d; want another node, a later term", r.killed+1, r.oldTerm, r.next+1, r.newTerm)
	}
	// The lease's TTL is 3 s; JetStream's own election, when the killed
	// node held the bucket's stream leader, takes up to 9 s more.
	if r.took <= 0 || r.took > 15*time.Second {
		t.Errorf("a new leader %v after the kill; want within 15 s", r.took)
	}
	if err := failoverVerdict(results, r.took+time.Millisecond); err != nil {
		t.Errorf("verdict within the bound: %v", err)
	}
	if err := failoverVerdict(results, r.took-time.Millisecond); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("verdict with a bound below the run: %v; want a failure", err)
	}
}

// TestDaemonClusterRead: the daemon mode takes the leader from
// /api/v1/cluster's "leader" {node, term}, a node leads once its own API
// says so, and an API without the field stops the run with a clear error.
func TestDaemonClusterRead(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		wantLeader string
		wantTerm   uint64
		wantErr    string
	}{
		{"leader", `{"enabled": true, "ready": true, "meta_leader": "nb2", "leader": {"node": "nb1", "term": 7}, "self_leader": true,
			"streams": [{"name": "A", "leader": "nb1"}, {"name": "B", "leader": "nb2"}]}`, "nb1", 7, ""},
		{"another leads", `{"enabled": true, "ready": true, "leader": {"node": "nb3", "term": 9}, "self_leader": false}`, "nb3", 9, ""},
		{"no leader known", `{"enabled": true, "ready": true, "self_leader": false}`, "", 0, ""},
		{"stepped down", `{"enabled": true, "ready": true, "leader": {"node": "nb1", "term": 7}, "self_leader": false}`, "", 7, ""},
		{"no election", `{"enabled": true, "ready": true, "meta_leader": "nb2"}`, "", 0, `has neither "leader" nor "self_leader"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/api/v1/cluster" {
					t.Errorf("%s %s, want GET /api/v1/cluster", r.Method, r.URL.Path)
				}
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &daemonCluster{client: srv.Client()}
			p := &daemonNodeProc{nodeProc: &nodeProc{name: "nb1", dead: make(chan struct{})}, ready: true}
			c.nodes[0] = p
			c.read(p, srv.URL)
			if p.leader != tt.wantLeader || p.term != tt.wantTerm {
				t.Errorf("leader %q term %d, want %q %d", p.leader, p.term, tt.wantLeader, tt.wantTerm)
			}
			err := c.failed()
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("failed() = %v, want %q", err, tt.wantErr)
			}
			if node, term, _, ok := c.leader(1); ok != (tt.wantLeader == "nb1") || (ok && (node != 0 || term != tt.wantTerm)) {
				t.Errorf("leader(skip nb2) = nb%d, %d, %v", node+1, term, ok)
			}
			if tt.name == "leader" && (p.streamsLed != 1 || p.streamsTotal != 2 || c.note(0) != "it led 1 of 2 streams (meta leader nb2)") {
				t.Errorf("note %q", c.note(0))
			}
		})
	}
}

// TestDaemonClusterForms: three nocbridge daemons (this repository's,
// built) started together form a cluster on loopback, none exiting first
// (as they did when JetStream left concurrent creates unanswered), and
// each node's API shows the three nodes.
func TestDaemonClusterForms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nocbridge and runs three daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	work := t.TempDir()
	c, err := newDaemonCluster(ctx, work, "", "../../rules/network-interfaces.yaml", 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	if err := formCluster(ctx, c, work); err != nil {
		t.Fatal(err)
	}
	if c.restarts != 0 {
		t.Errorf("%d daemon(s) exited before ready and were started again", c.restarts)
	}
	for i, port := range c.https {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/cluster")
		if err != nil {
			t.Fatal(err)
		}
		var ci struct {
			Enabled bool   `json:"enabled"`
			Node    string `json:"node"`
			Nodes   []struct {
				Name string `json:"name"`
			} `json:"nodes"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ci)
		_ = resp.Body.Close()
		if err != nil || !ci.Enabled || ci.Node != fmt.Sprintf("nb%d", i+1) || len(ci.Nodes) != failoverNodes {
			t.Errorf("nb%d's /api/v1/cluster: %+v, %v; want enabled, itself, three nodes", i+1, ci, err)
		}
	}
	if err := c.failed(); err != nil && !strings.Contains(err.Error(), `has neither "leader" nor "self_leader"`) {
		t.Errorf("a daemon failed: %v", err)
	}
}

// TestStormResult: an alert never notified is lost, unless its trap went
// to the killed leader in its last 50 ms (in flight, counted apart); the
// verdict fails on a lost one only.
func TestStormResult(t *testing.T) {
	killAt := time.Now()
	s := &trapStorm{n: 4, rate: 100, rcv: newLatencyReceiver(8)}
	// Run 1 (the second): ifIndex 5-8; 5 and 7 arrive.
	s.rcv.arrived[4].Store(killAt.Add(time.Second).UnixNano())
	s.rcv.arrived[6].Store(killAt.Add(3 * time.Second).UnixNano())
	sentTo := []int{0, 2, 1, 2} // nb3 is killed
	sentAt := []time.Time{killAt.Add(-time.Second), killAt.Add(-10 * time.Millisecond), killAt.Add(-500 * time.Millisecond), killAt.Add(time.Second)}
	r := s.result(context.Background(), 1, sentTo, sentAt, 2, killAt, time.Millisecond)
	if r.sent != 4 || r.received != 2 || r.inFlight != 1 || r.lost != 1 || r.toKilled != 2 || r.lastAfterKill != 3*time.Second {
		t.Errorf("%+v; want 4 sent, 2 received, 1 in flight (ifIndex 6), 1 lost (ifIndex 8), 2 to the killed node, the last 3s after", r)
	}
	if !strings.Contains(r.firstMissing, "ifIndex 6, its trap sent to nb3 10ms before") {
		t.Errorf("first missing %q", r.firstMissing)
	}
	run := failoverRun{killed: 2, next: 0, took: time.Second, storm: &r}
	if err := failoverVerdict([]failoverRun{run}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "1 of 4 traps' alerts lost") {
		t.Errorf("verdict with a lost alert: %v", err)
	}
	r.lost = 0
	if err := failoverVerdict([]failoverRun{run}, 5*time.Second); err != nil {
		t.Errorf("verdict with an alert in flight only: %v", err)
	}
}
