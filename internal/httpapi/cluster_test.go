package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/store"
)

func TestCluster(t *testing.T) {
	three := store.ClusterInfo{Enabled: true, Name: "noc-east", Node: "nb1", Ready: true, MetaLeader: "nb2",
		Nodes: []store.ClusterNode{
			{Name: "nb1", Reachable: true, Current: true},
			{Name: "nb2", Reachable: true, Current: true, Leader: true},
			{Name: "nb3", Reachable: false, LastSeenSeconds: 12.5, Lag: 40},
		},
		Streams: []store.StreamStatus{{Name: "OUTBOX", Replicas: 3, Leader: "nb2", Messages: 120, Lag: 40,
			Peers: []store.ClusterNode{{Name: "nb2", Reachable: true, Current: true, Leader: true},
				{Name: "nb1", Reachable: true, Current: true}, {Name: "nb3", LastSeenSeconds: 12.5, Lag: 40}}}},
		Leader: &store.ClusterLeader{Node: "nb2", Term: 41},
		Bus: &store.BusState{Stream: store.BusStream, Messages: 5210, Pending: 3, AckPending: 12, DuplicatesDropped: 87,
			DuplicateWindow: store.BusDuplicateWindow.String()},
	}
	tests := []struct {
		name    string
		cluster func(context.Context) store.ClusterInfo
		golden  string
		want    string
	}{
		{name: "single node (no cluster read model)", want: "{\n  \"enabled\": false\n}\n"},
		{name: "store alone", cluster: func(context.Context) store.ClusterInfo { return store.ClusterInfo{} },
			want: "{\n  \"enabled\": false\n}\n"},
		{name: "three nodes, one unreachable", cluster: func(context.Context) store.ClusterInfo { return three },
			golden: "cluster-three-nodes.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, _ := testDeps("", true)
			d.Cluster = tt.cluster
			srv := httptest.NewServer(Handler(d))
			defer srv.Close()
			status, body, h := do(t, http.MethodGet, srv.URL+"/api/v1/cluster", "", "")
			if status != http.StatusOK || h.Get("Content-Type") != "application/json" {
				t.Fatalf("GET /api/v1/cluster: %d %s\n%s", status, h.Get("Content-Type"), body)
			}
			if tt.golden != "" {
				notifytest.GoldenJSON(t, tt.golden, []byte(body))
			} else if body != tt.want {
				t.Errorf("body %s, want %s", body, tt.want)
			}
			if status, _, _ := do(t, http.MethodPost, srv.URL+"/api/v1/cluster", "", ""); status != http.StatusMethodNotAllowed {
				t.Errorf("POST /api/v1/cluster: %d, want 405", status)
			}
		})
	}
}
