package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The cluster page shows the nodes, the streams, the vantage points'
// disagreements with every node's result, and says there are no edge
// sites; its URL answers JSON clients with /api/v1/cluster's JSON. The
// navigation links it only when clustered, and a device page shows its
// nodes' results.
func TestClusterPage(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken, cluster: true})
	c := e.client()
	if len(e.outvote) != 3 {
		t.Fatalf("the fleet gave %d devices for nb3 to see down alone, want 3", len(e.outvote))
	}
	r := c.page("/cluster")
	want := []string{"<h1>Cluster noc-east</h1>", `<a href="/cluster" aria-current="page">Cluster</a>`, `id="nodes"`, "nb1 <span class=\"muted\">(this node)</span>",
		`<span class="st st-bad">unreachable</span>`, "12.5 s ago", `id="streams"`, "OUTBOX", "nb3 — behind 40", "<code>down_when: majority</code>", "more than half",
		"outvoted: nb3", "no echo reply in 3 of 3", `id="no-edge"`, "Leader</dt><dd id=\"leader\"><span class=\"muted\">not reported"}
	for _, d := range e.outvote {
		want = append(want, `<a href="/devices/`+d+`">`+d+`</a>: <span class="st st-up">up</span> by the vote; outvoted: nb3`)
	}
	contains(t, "GET /cluster", r, http.StatusOK, want...)
	if n := strings.Count(r.body, `<table class="grid vantage">`); n != 3 {
		t.Errorf("the page shows %d disagreements, want 3", n)
	}
	if r.h.Get("Content-Security-Policy") == "" {
		t.Errorf("page headers: %v", r.h)
	}

	twin := c.do("GET", "/cluster", "application/json", nil)
	api := c.do("GET", "/api/v1/cluster", "application/json", nil)
	if twin.status != http.StatusOK || twin.body != api.body || twin.h.Get("Content-Type") != "application/json" {
		t.Errorf("GET /cluster as JSON: %d %q %.300s; the API: %.300s", twin.status, twin.h.Get("Content-Type"), twin.body, api.body)
	}
	var doc struct {
		Enabled bool `json:"enabled"`
		Vantage struct {
			DownWhen      string `json:"down_when"`
			Disagreements []struct {
				Device string `json:"device"`
			} `json:"disagreements"`
		} `json:"vantage"`
	}
	if err := json.Unmarshal([]byte(twin.body), &doc); err != nil || !doc.Enabled || doc.Vantage.DownWhen != "majority" || len(doc.Vantage.Disagreements) != 3 {
		t.Errorf("/cluster's JSON: %v %+v", err, doc)
	}

	contains(t, "overview links the cluster", c.page("/"), http.StatusOK, `<a href="/cluster">Cluster</a>`)
	r = c.page("/devices/" + e.outvote[0])
	contains(t, "device page of an outvoted device", r, http.StatusOK, `<h2 id="vantage-h">Vantage points</h2>`, `id="vantage"`,
		`<th scope="row">nb3</th>`, `<span class="st st-down">down</span>`, "100%")
	if n := strings.Count(r.body, `<span class="st st-up">up</span>`); n < 3 { // the heading and nb1, nb2
		t.Errorf("device page: %d 'up' states, want the device's and nb1's and nb2's", n)
	}

	alone := newEnv(t, envOptions{token: testToken})
	ac := alone.client()
	if body := ac.page("/").body; strings.Contains(body, `href="/cluster"`) {
		t.Error("a node alone links the cluster page")
	}
	contains(t, "alone: /cluster", ac.page("/cluster"), http.StatusOK, `id="not-clustered"`, "not in a cluster")
	if body := ac.page("/devices/" + e.outvote[0]).body; strings.Contains(body, "vantage-h") {
		t.Error("a node alone shows vantage points on a device page")
	}
	if twin := ac.do("GET", "/cluster", "application/json", nil); twin.body != "{\n  \"enabled\": false\n}\n" {
		t.Errorf("alone, /cluster as JSON: %q", twin.body)
	}
}

// What the page has no layout of is rendered as it comes: the leader
// (a name or the lease's details), the edge sites, and any other field.
func TestClusterPageRendersWhatComes(t *testing.T) {
	base := `"enabled": true, "name": "noc-east", "node": "nb1", "ready": true, "nodes": [{"name": "nb1", "reachable": true, "current": true, "last_seen_seconds": 0, "lag": 0}]`
	tests := []struct {
		name string
		json string
		want []string
		not  []string
	}{
		{name: "leader as a name", json: `{` + base + `, "leader": "nb2"}`,
			want: []string{`<dd id="leader"><strong>nb2</strong> evaluates the rules`, `id="no-edge"`}, not: []string{"Leader lease", `id="more-h"`}},
		{name: "leader as the lease", json: `{` + base + `, "leader": {"node": "nb3", "term": 42, "acquired_at": "2026-12-07T10:00:00Z"}}`,
			want: []string{`<strong>nb3</strong> evaluates the rules`, "<summary>Leader lease</summary>", "<dt>term</dt><dd>42</dd>", "<dt>acquired_at</dt><dd>2026-12-07T10:00:00Z</dd>"}},
		{name: "edge sites as a list", json: `{` + base + `, "edge": [{"site": "BR1", "connected": false, "buffered": 1200, "dropped": 3}, {"site": "BR2", "connected": true, "buffered": 0, "lag_seconds": 0.5}]}`,
			want: []string{`<div id="edge">`, "<th scope=\"col\">site</th><th scope=\"col\">connected</th><th scope=\"col\">buffered</th><th scope=\"col\">dropped</th><th scope=\"col\">lag_seconds</th>",
				"<td>BR1</td><td>false</td><td>1200</td><td>3</td><td>—</td>", "<td>BR2</td><td>true</td><td>0</td><td>—</td><td>0.5</td>"},
			not: []string{`id="no-edge"`}},
		{name: "edge sites as an object", json: `{` + base + `, "edge": {"sites": {"BR1": {"buffer_bytes": 1024}}, "hub": true}}`,
			want: []string{"<dt>sites</dt><dd><dl class=\"facts\"><dt>BR1</dt><dd><dl class=\"facts\"><dt>buffer_bytes</dt><dd>1024</dd>", "<dt>hub</dt><dd>true</dd>"}},
		{name: "empty edge", json: `{` + base + `, "edge": []}`, want: []string{`id="no-edge"`}},
		{name: "a field the page does not know", json: `{` + base + `, "trap_dedup": {"window_seconds": 2, "dropped": 7}}`,
			want: []string{`<h2 id="more-h">More</h2>`, "<dt>trap_dedup</dt>", "<dt>dropped</dt><dd>7</dd>"}},
		{name: "escaped", json: `{` + base + `, "leader": "<script>x</script>"}`,
			want: []string{"&lt;script&gt;x&lt;/script&gt;"}, not: []string{"<script>x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data clusterData
			if err := data.readJSON([]byte(tt.json)); err != nil {
				t.Fatal(err)
			}
			data.Clustered = data.Info.Enabled
			var buf bytes.Buffer
			v := &view{Title: "Cluster", Nav: "cluster", Now: time.Now(), Data: data, Clustered: true}
			if err := pages["cluster"].ExecuteTemplate(&buf, "layout", v); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(buf.String(), n) {
					t.Errorf("the page has %q", n)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", buf.String())
			}
		})
	}
	var data clusterData
	for _, bad := range []string{`{"enabled": true`, `{"enabled": true} {}`, `[1, 2]`} {
		if err := data.readJSON([]byte(bad)); err == nil {
			t.Errorf("readJSON(%s): no error", bad)
		}
	}
}
