package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestClusterOutbox: through a real three-node cluster (R3) and a store
// alone (R1), a small run delivers every notification once, and the
// verdict passes it; a run missing one, or below the rate, fails.
func TestClusterOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-node JetStream cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	load := outboxLoad{n: 300, dests: 2, producers: 4, history: true}
	r3, err := measureClusterOutbox(ctx, load)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := measureAloneOutbox(ctx, load)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]outboxResult{"R3": r3, "R1": r1} {
		if len(r.lat) != load.n || r.dups != 0 || r.unknown != 0 {
			t.Errorf("%s: %d of %d delivered, %d duplicates, %d unexpected; want all once", name, len(r.lat), load.n, r.dups, r.unknown)
		}
		if r.hist.Written == 0 {
			t.Errorf("%s: no history written; the daemon records every notification", name)
		}
	}
	if err := clusterVerdict(load.n, []outboxResult{r3}, []outboxResult{r1}, 1); err != nil {
		t.Errorf("verdict on a complete run: %v", err)
	}
	if err := clusterVerdict(load.n, []outboxResult{r3}, []outboxResult{r1}, r3.rate()*2); err == nil || !strings.Contains(err.Error(), "below the") {
		t.Errorf("verdict with a target twice the rate measured: %v; want a failure", err)
	}
	missing := r1
	missing.lat = missing.lat[1:]
	if err := clusterVerdict(load.n, []outboxResult{r3}, []outboxResult{missing}, 1); err == nil || !strings.Contains(err.Error(), "R1") {
		t.Errorf("verdict with a notification missing on R1: %v; want a failure naming R1", err)
	}
}
