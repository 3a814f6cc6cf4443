package lease_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nocbridge/nocbridge/internal/cluster/lease"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/relay"
)

// A three-node JetStream cluster on loopback, each route through a link,
// the lease bucket replicated on all three (R3), a contender on each
// node. The leader's node is partitioned from the other two: its renews
// lack a quorum, so it steps down on its own before its lease can expire,
// and the majority elects a new leader; never two at once.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a JetStream cluster and waits for failover")
	}
	const n = 3
	links := map[[2]int]*relay.Link{}
	for i := range n {
		for j := range n {
			if i != j {
				links[[2]int{i, j}] = relay.New(t, "")
			}
		}
	}
	servers := make([]*server.Server, n)
	for i := range n {
		var routes []*url.URL
		for j := range n {
			if i != j {
				routes = append(routes, &url.URL{Scheme: "nats", Host: links[[2]int{i, j}].Addr()})
			}
		}
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			NoSigs: true, NoLog: true, JetStream: true, StoreDir: t.TempDir(),
			// Gossiped route addresses lead nowhere: every route goes
			// through its link, so a cut is a partition.
			Cluster: server.ClusterOpts{Name: "lease-test", Host: "127.0.0.1", Port: server.RANDOM_PORT,
				NoAdvertise: true, Advertise: "127.0.0.1:1"},
			Routes: routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = srv
	}
	for i, srv := range servers {
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("n%d not ready", i)
		}
	}
	for i, srv := range servers {
		for j := range n {
			if i != j {
				links[[2]int{j, i}].SetTarget(srv.ClusterAddr().String())
			}
		}
	}

	// Each node's contender talks to its own server only.
	kvs := make([]*store.LeaseKV, n)
	deadline := time.Now().Add(60 * time.Second)
	for i, srv := range servers {
		nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			kvs[i], err = store.OpenLeaseKV(ctx, js, "cluster_lease", lease.DefaultTTL, 3)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the JetStream cluster did not form: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// n0 leads: it starts first.
	cs := map[string]*contender{}
	ls := map[string]*lease.Lease{}
	for i := range n {
		node := fmt.Sprintf("n%d", i)
		cs[node] = startNode(t, kvs[i], node)
		ls[node] = cs[node].l
		if i == 0 {
			for !cs[node].l.IsLeader() {
				if time.Now().After(deadline) {
					t.Fatal("n0 never led")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	m := watch(t, ls, time.Millisecond)
	defer m.finish()
	t.Cleanup(func() {
		if t.Failed() {
			for node, c := range cs {
				t.Logf("%s's log:\n%s", node, c.logs)
			}
		}
	})
	time.Sleep(2 * time.Second)
	if !cs["n0"].l.IsLeader() {
		t.Fatalf("n0 no longer leads before the partition:\n%s", cs["n0"].logs)
	}

	streamLeader := "none"
	for i, srv := range servers {
		if srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "KV_cluster_lease") {
			streamLeader = fmt.Sprintf("n%d", i)
		}
	}
	cutAt := time.Now()
	for pair, l := range links {
		if pair[0] == 0 || pair[1] == 0 {
			l.Cut()
		}
	}
	next, at := m.waitLeader(30*time.Second, "n0")
	spans := m.finish()
	oldEnd, _ := checkHandover(t, spans, "n0")
	if d := oldEnd.Sub(cutAt); d > lease.DefaultTTL*5/6+100*time.Millisecond {
		t.Errorf("n0 led %v after it was cut off, want at most TTL/3 + TTL/2", d)
	}
	if cs["n0"].l.IsLeader() {
		t.Error("n0, cut off from the majority, still leads")
	}
	t.Logf("n0 cut off (the bucket's stream leader: %s): stepped down %v later; %s led %v after the cut", streamLeader, oldEnd.Sub(cutAt), next, at.Sub(cutAt))
}
