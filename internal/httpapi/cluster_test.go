package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/cluster/edge"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/console/consoletest"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

func TestCluster(t *testing.T) {
	three := consoletest.ThreeNodes()
	three.Leader = &store.ClusterLeader{Node: "nb2", Term: 41}
	three.Bus = &store.BusState{Stream: store.BusStream, Messages: 5210, Pending: 3, AckPending: 12, Acknowledged: 5195, DuplicatesDropped: 87,
		DuplicateWindow: store.BusDuplicateWindow.String(), Redelivered: 2, TrapsReplayed: 4,
		Dropped: map[string]uint64{"decode": 0, "encode": 0, "publish": 1, "unknown_device": 3}}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	status := func() vantage.Status {
		return vantage.Status{DownWhen: config.DownWhenMajority, Disagreements: []vantage.DeviceResults{{Device: "core-sw1", Up: true,
			Results: []vantage.Result{{Node: "nb1", Up: true, RTTMs: 1.2, At: at, Fresh: true}, {Node: "nb2", Up: true, RTTMs: 0.9, At: at, Fresh: true},
				{Node: "nb3", Up: false, Loss: 100, At: at, Fresh: true, Error: "no reply"}}}}}
	}
	tests := []struct {
		name    string
		cluster func(context.Context) store.ClusterInfo
		vantage func() vantage.Status
		golden  string
		want    string
	}{
		{name: "single node (no cluster read model)", want: "{\n  \"enabled\": false\n}\n"},
		{name: "store alone", cluster: func(context.Context) store.ClusterInfo { return store.ClusterInfo{} },
			want: "{\n  \"enabled\": false\n}\n"},
		{name: "three nodes, one unreachable", cluster: func(context.Context) store.ClusterInfo { return three },
			golden: "cluster-three-nodes.json"},
		{name: "hub alone, an edge site cut off", cluster: func(context.Context) store.ClusterInfo {
			return store.ClusterInfo{Edge: edge.HubStatus{Role: "hub", Listen: "0.0.0.0:7422", UnreachableAfter: 30, Sites: []edge.SiteStatus{
				{Site: "BR1", Connected: false, LastContact: at, LastContactSeconds: 61.5, Unreachable: true, Devices: 12, Received: 5230, Dropped: 0,
					Stream: store.EdgeSiteStream{Messages: 5230, LastOrigin: 5230}},
				{Site: "BR2", Connected: true, LastContact: at.Add(time.Minute), LastContactSeconds: 0.4, Devices: 3, Received: 880, Dropped: 17,
					Stream: store.EdgeSiteStream{Messages: 897, Pending: 2, SourceLag: 5, LastOrigin: 897}},
			}}}
		}, golden: "cluster-edge-hub.json"},
		{name: "edge node", cluster: func(context.Context) store.ClusterInfo {
			return store.ClusterInfo{Edge: edge.EdgeStatus{Role: "edge", EdgeBufferStatus: store.EdgeBufferStatus{Hub: "nats-leaf://hub.example.net:7422",
				Site: "BR1", Connected: false, Bytes: 1 << 20, Limit: 1 << 30, Messages: 3100, Delivered: 5230, Pending: 3100}}}
		}, golden: "cluster-edge-node.json"},
		{name: "single node with vantage points: not shown", vantage: status, want: "{\n  \"enabled\": false\n}\n"},
		{name: "three nodes with vantage points, one outvoted", cluster: func(context.Context) store.ClusterInfo { return three },
			vantage: status, golden: "cluster-vantage.json"},
		{name: "three nodes, no disagreement", cluster: func(context.Context) store.ClusterInfo {
			return store.ClusterInfo{Enabled: true, Name: "c", Node: "nb1"}
		},
			vantage: func() vantage.Status {
				return vantage.Status{DownWhen: config.DownWhenAll, Disagreements: []vantage.DeviceResults{}}
			},
			want: "{\n  \"enabled\": true,\n  \"name\": \"c\",\n  \"node\": \"nb1\",\n  \"ready\": false,\n  \"self_leader\": false,\n  \"vantage\": {\n    \"down_when\": \"all\",\n    \"disagreements\": []\n  }\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, _ := testDeps("", true)
			d.Cluster, d.ClusterVantage = tt.cluster, tt.vantage
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
