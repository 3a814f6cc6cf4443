package store_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/logtest"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
	"github.com/nocbridge/nocbridge/internal/testutil/tlscert"
)

// freePorts reserves n loopback TCP ports and lets them go for the test to
// bind (the kernel does not hand a just-closed port out again at once).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// clusterOf is node i's cluster: block among route ports: it routes to
// every other port.
func clusterOf(i int, ports []int) *config.Cluster {
	c := &config.Cluster{Name: "nbtest", Node: fmt.Sprintf("nb%d", i+1),
		Listen: "127.0.0.1:" + strconv.Itoa(ports[i]), DownWhen: config.DownWhenAll}
	for j, p := range ports {
		if j != i {
			c.Peers = append(c.Peers, "nats://127.0.0.1:"+strconv.Itoa(p))
		}
	}
	return c
}

// openNodes opens a store for each of the nodes at once (each waits for
// the others to form the cluster), each with its own directory.
func openNodes(t *testing.T, ports []int, nodes ...int) []*store.Store {
	t.Helper()
	return openNodesWith(t, ports, nil, nil, nodes...)
}

// openNodesWith is openNodes with tls on every node's routes (nil: none),
// each node logging into its logs (nil: nowhere).
func openNodesWith(t *testing.T, ports []int, tls *config.ClusterTLS, logs []*logtest.Logs, nodes ...int) []*store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stores := make([]*store.Store, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for k, i := range nodes {
		c := clusterOf(i, ports)
		c.TLS = tls
		log := quiet()
		if logs != nil {
			log = logs[k].TextLogger()
		}
		wg.Go(func() {
			stores[k], errs[k] = store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: log, Cluster: c})
		})
	}
	wg.Wait()
	for k, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
		if errs[k] != nil {
			t.Fatalf("node nb%d: %v", nodes[k]+1, errs[k])
		}
	}
	return stores
}

var clusterLog = store.LogConfig{Name: "CLUSTERTEST", Subjects: []string{"clustertest.>"}}

// appendEventually appends, trying again while the cluster elects a new
// stream leader, at most until the deadline.
func appendEventually(t *testing.T, s *store.Store, data string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var l *store.Log
		if l, err = s.Log(ctx, clusterLog); err == nil {
			_, err = l.Append(ctx, "clustertest.a", []byte(data))
		}
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the cluster's election, which has no event to wait on
	}
	t.Fatalf("appending %q: still failing after %v: %v", data, within, err)
}

func readCluster(t *testing.T, s *store.Store) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := s.Log(ctx, clusterLog)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := l.ReadAll(ctx, func(r store.Record) error { got = append(got, string(r.Data)); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// waitFor polls cond until it holds, at most within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-node cluster")
	}
	ports := freePorts(t, 3)
	nodes := openNodes(t, ports, 0, 1, 2)

	appendEventually(t, nodes[0], "one", 10*time.Second)
	appendEventually(t, nodes[1], "two", 10*time.Second)
	// Written on nb1 and nb2, read on nb3: the log is replicated.
	if got := strings.Join(readCluster(t, nodes[2]), ","); got != "one,two" {
		t.Fatalf("nb3 reads %q, want one,two", got)
	}

	var ci store.ClusterInfo
	waitFor(t, 10*time.Second, "three reachable nodes and a meta leader", func() (bool, string) {
		ci = nodes[2].ClusterInfo(context.Background())
		reachable := 0
		for _, n := range ci.Nodes {
			if n.Reachable {
				reachable++
			}
		}
		return ci.Ready && ci.MetaLeader != "" && reachable == 3, fmt.Sprintf("%+v", ci)
	})
	if !ci.Enabled || ci.Name != "nbtest" || ci.Node != "nb3" {
		t.Errorf("cluster info %+v, want enabled, name nbtest, node nb3", ci)
	}
	var names []string
	for _, n := range ci.Nodes {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "nb1,nb2,nb3" {
		t.Errorf("nodes %s, want nb1,nb2,nb3", got)
	}
	found := map[string]store.StreamStatus{}
	for _, st := range ci.Streams {
		found[st.Name] = st
		if st.Replicas != 3 {
			t.Errorf("stream %s has %d replicas, want 3", st.Name, st.Replicas)
		}
	}
	if st, ok := found["CLUSTERTEST"]; !ok || st.Leader == "" || len(st.Peers) != 3 || st.Messages != 2 {
		t.Errorf("CLUSTERTEST is %+v, want a leader, 3 peers and 2 messages", st)
	}
	// A KV bucket is R3 too.
	kv, err := nodes[0].Bucket(context.Background(), "clustertest")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	kv2, err := nodes[1].Bucket(context.Background(), "clustertest")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := kv2.Get(context.Background(), "k"); err != nil || !ok || string(v) != "v" {
		t.Errorf("nb2 reads k = %q, %v, %v; want v", v, ok, err)
	}
	// So is the leader lease's bucket: a minority must not be able to renew.
	if _, err := nodes[2].LeaseBucket(context.Background(), "clusterlease", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range nodes[1].ClusterInfo(context.Background()).Streams {
		seen[st.Name] = true
		if (st.Name == "KV_clustertest" || st.Name == "KV_clusterlease") && st.Replicas != 3 {
			t.Errorf("bucket stream %s has %d replicas, want 3", st.Name, st.Replicas)
		}
	}
	if !seen["KV_clustertest"] || !seen["KV_clusterlease"] {
		t.Errorf("streams %v lack a bucket's", seen)
	}

	// The meta leader goes: the two others keep writing, and see it gone.
	leader := -1
	for i := range nodes {
		if fmt.Sprintf("nb%d", i+1) == ci.MetaLeader {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("meta leader %q is none of the nodes", ci.MetaLeader)
	}
	if err := nodes[leader].Close(); err != nil {
		t.Fatal(err)
	}
	alive := []*store.Store{}
	for i, s := range nodes {
		if i != leader {
			alive = append(alive, s)
		}
	}
	// What a new cluster leader waits for: every stream with a leader
	// among the living, the dead node's streams re-elected.
	closed := time.Now()
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := alive[0].AwaitStreamLeaders(actx); err != nil {
		t.Fatalf("AwaitStreamLeaders after nb%d left: %v", leader+1, err)
	}
	cancel()
	t.Logf("every stream had a leader %v after nb%d left", time.Since(closed).Round(time.Millisecond), leader+1)
	streams := alive[0].ClusterInfo(context.Background()).Streams
	if len(streams) == 0 {
		t.Fatal("after AwaitStreamLeaders the cluster info lists no stream")
	}
	for _, st := range streams {
		if st.Leader == "" || st.Leader == fmt.Sprintf("nb%d", leader+1) {
			t.Errorf("after AwaitStreamLeaders stream %s has leader %q, want one of the living", st.Name, st.Leader)
		}
	}
	appendEventually(t, alive[0], "three", 15*time.Second)
	appendEventually(t, alive[1], "four", 15*time.Second)
	if got := strings.Join(readCluster(t, alive[0]), ","); got != "one,two,three,four" {
		t.Fatalf("after nb%d left, reads %q, want one,two,three,four", leader+1, got)
	}
	waitFor(t, 15*time.Second, "a new meta leader, the old one unreachable", func() (bool, string) {
		ci := alive[1].ClusterInfo(context.Background())
		gone := false
		for _, n := range ci.Nodes {
			if n.Name == fmt.Sprintf("nb%d", leader+1) && !n.Reachable {
				gone = true
			}
		}
		return ci.MetaLeader != "" && ci.MetaLeader != fmt.Sprintf("nb%d", leader+1) && gone && alive[1].ClusterReady(context.Background()) == nil,
			fmt.Sprintf("%+v", ci)
	})
}

// Routes with mutual TLS: the cluster forms and replicates as without.
func TestThreeNodeClusterTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-node cluster")
	}
	dir := t.TempDir()
	cert, key := tlscert.Write(t, dir) // self-signed: its own CA
	nodes := openNodesWith(t, freePorts(t, 3), &config.ClusterTLS{CertFile: cert, KeyFile: key, CAFile: cert}, nil, 0, 1, 2)
	appendEventually(t, nodes[0], "secure", 10*time.Second)
	if got := strings.Join(readCluster(t, nodes[2]), ","); got != "secure" {
		t.Fatalf("nb3 reads %q over TLS routes, want secure", got)
	}
}

// A node whose routes do not speak TLS cannot join nodes that require it.
func TestClusterTLSRefusesPlainRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("starts cluster nodes")
	}
	dir := t.TempDir()
	cert, key := tlscert.Write(t, dir)
	ports := freePorts(t, 3)
	tls := &config.ClusterTLS{CertFile: cert, KeyFile: key, CAFile: cert}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	errs := make(chan error, 3)
	for i := range 3 {
		c := clusterOf(i, ports)
		if i < 2 {
			c.TLS = tls
		}
		go func() {
			s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: quiet(), Cluster: c})
			if s != nil {
				_ = s.Close()
			}
			errs <- err
		}()
	}
	// Two TLS nodes of three cannot create R3 streams without the third,
	// and the plain one has no quorum: none opens before the deadline.
	for range 3 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "JetStream cluster not ready") {
			t.Errorf("Open = %v, want the JetStream cluster not ready", err)
		}
	}
}

func TestSingleNodeClusterInfo(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	if ci := s.ClusterInfo(context.Background()); ci.Enabled || len(ci.Streams) != 0 {
		t.Errorf("cluster info of a store alone = %+v, want {enabled: false}", ci)
	}
	if err := s.ClusterReady(context.Background()); err != nil {
		t.Errorf("ClusterReady alone = %v", err)
	}
}

// natsServerBinary is the nats-server on PATH (Debian package
// nats-server), or skips.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nats-server")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server"} {
			if _, serr := os.Stat(p); serr == nil {
				return p
			}
		}
		netns.SkipOrFail(t, "no nats-server binary (Debian package nats-server): cannot test a plain nats-server as the third node")
	}
	return path
}

func TestTwoNodesAndPlainNATSServer(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-node cluster")
	}
	bin := natsServerBinary(t)
	ports := freePorts(t, 4) // three routes, the plain server's client port
	dir := t.TempDir()
	third := clusterOf(2, ports[:3])
	conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: %s
  listen: %s
  routes: [%s]
}
`, third.Node, ports[3], filepath.Join(dir, "js"), third.Name, third.Listen, strings.Join(third.Peers, ", "))
	confFile := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", confFile)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", out.String())
		}
	})
	nodes := openNodes(t, ports[:3], 0, 1)
	appendEventually(t, nodes[0], "one", 10*time.Second)
	if got := strings.Join(readCluster(t, nodes[1]), ","); got != "one" {
		t.Fatalf("nb2 reads %q, want one", got)
	}
	ci := nodes[0].ClusterInfo(context.Background())
	var names []string
	for _, n := range ci.Nodes {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "nb1,nb2,nb3" {
		t.Errorf("nodes %s, want nb1,nb2,nb3 (nb3 the plain nats-server)", got)
	}
	for _, st := range ci.Streams {
		if st.Replicas != 3 {
			t.Errorf("stream %s has %d replicas, want 3", st.Name, st.Replicas)
		}
	}
}

// startNATS runs a separate embedded JetStream server listening on
// loopback, as an existing NATS would be.
func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("separate NATS server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func TestNATSURL(t *testing.T) {
	srv := startNATS(t, &server.Options{Username: "nocbridge", Password: "s3cr3t-pw"})
	u := &url.URL{Scheme: "nats", User: url.UserPassword("nocbridge", "s3cr3t-pw"), Host: srv.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{URL: u.String(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendEventually(t, s, "remote", 5*time.Second)
	// The record is in the separate server's JetStream, not in a directory of ours.
	if n := srv.JetStreamNumAccounts(); n == 0 {
		t.Error("the separate server has no JetStream account in use")
	}
	if got := strings.Join(readCluster(t, s), ","); got != "remote" {
		t.Errorf("reads %q, want remote", got)
	}
	if ci := s.ClusterInfo(ctx); ci.Enabled || ci.NATSURL != "nats://nocbridge:xxxxx@"+srv.Addr().String() {
		t.Errorf("cluster info %+v, want disabled (one server) and the URL without its password", ci)
	}
	if !strings.HasPrefix(s.Dir(), "NATS at nats://nocbridge:xxxxx@") {
		t.Errorf("Dir() = %q", s.Dir())
	}
}

func TestNATSURLRefused(t *testing.T) {
	ports := freePorts(t, 1) // nothing listens there
	srv := startNATS(t, &server.Options{Username: "nocbridge", Password: "s3cr3t-pw"})
	tests := []struct {
		name, url, want string
	}{
		{"nothing listening", "nats://nocbridge:s3cr3t-pw@127.0.0.1:" + strconv.Itoa(ports[0]),
			"store: cannot reach NATS at nats://nocbridge:xxxxx@127.0.0.1:" + strconv.Itoa(ports[0]) + ": "},
		{"wrong password", "nats://nocbridge:wrong-s3cr3t-pw@" + srv.Addr().String(),
			"store: cannot reach NATS at nats://nocbridge:xxxxx@" + srv.Addr().String() + ": "},
		{"token", "nats://tok-s3cr3t-pw@127.0.0.1:" + strconv.Itoa(ports[0]),
			"store: cannot reach NATS at nats://xxxxx@127.0.0.1:" + strconv.Itoa(ports[0]) + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := store.Open(ctx, store.Options{URL: tt.url, Logger: quiet()})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q, want it to start %q and hold no password", err, tt.want)
			}
		})
	}
}

func TestNATSURLWithoutJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = store.Open(ctx, store.Options{URL: "nats://" + srv.Addr().String(), Logger: quiet()})
	if want := "store: NATS at nats://" + srv.Addr().String() + ": JetStream not available: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want %q…", err, want)
	}
}

// Every node opens the same bucket and log at once, as three daemons do at
// their first start: JetStream may leave such concurrent requests
// unanswered, and each is asked again until all are open.
func TestClusterNodesCreateTheSameStreamsAtOnce(t *testing.T) {
	nodes := openNodes(t, freePorts(t, 3), 0, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, s := range nodes {
		wg.Go(func() {
			if _, errs[i] = s.StateStore(ctx, "dest_hook"); errs[i] == nil {
				_, errs[i] = s.Log(ctx, store.LogConfig{Name: "ATONCE", Subjects: []string{"atonce.>"}})
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("nb%d: %v", i+1, err)
		}
	}
}

// A peer that stays down is logged when its route first fails and then
// once a minute, not once a second for each of the route's connections.
func TestDeadPeerIsNotLoggedEverySecond(t *testing.T) {
	logs := []*logtest.Logs{{}, {}, {}}
	nodes := openNodesWith(t, freePorts(t, 3), nil, logs, 0, 1, 2)
	// What they logged while starting (a peer not up yet) is not counted.
	before := []int{len(logs[0].String()), len(logs[1].String())}
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	// Routes are retried every second: without the limit each of nb3's
	// connections would log about five times by now.
	time.Sleep(5500 * time.Millisecond)
	for k := range 2 {
		out := logs[k].String()[before[k]:]
		// Attempts not reported are at debug level.
		failed := strings.Count(out, `level=ERROR msg="Error trying to connect to route`)
		if failed == 0 {
			t.Errorf("nb%d logged nothing of nb3's route failing within %v of its stop:\n%s", k+1, time.Since(closed), out)
		}
		// The first failure of each of the route's pooled connections
		// (3 by default) and the system account's: at most 4.
		if failed > 4 {
			t.Errorf("nb%d logged %d failures of nb3's route within %v, want each connection's first alone:\n%s", k+1, failed, time.Since(closed), out)
		}
	}
}
