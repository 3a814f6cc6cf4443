package main

import "testing"

// TestTrapVerdict: a loss at the target rate, or a ratio to snmptrapd that
// is low or not established, fails the run.
func TestTrapVerdict(t *testing.T) {
	measured := trapPeerResult{best: 10000, lowest: 5000, highest: 150000}
	for _, c := range []struct {
		name     string
		lossless bool
		limit    int
		peer     trapPeerResult
		minRatio float64
		wantErr  bool
	}{
		{"loss at the target rate", false, 0, measured, 5, true},
		{"loss at the target rate, ratio unchecked", false, 0, measured, 0, true},
		{"ratio met", true, 100000, measured, 5, false},
		{"ratio below target", true, 100000, trapPeerResult{best: 40000, lowest: 5000, highest: 150000}, 5, true},
		{"snmptrapd never lost", true, 100000, trapPeerResult{best: 150000, lowest: 5000, highest: 150000}, 5, true},
		{"snmptrapd lost at the lowest rate, bound high enough", true, 100000, trapPeerResult{lowest: 5000, highest: 150000}, 5, false},
		{"snmptrapd lost at the lowest rate, bound too low", true, 100000, trapPeerResult{lowest: 50000, highest: 150000}, 5, true},
		{"snmptrapd not run", true, 100000, trapPeerResult{skipped: "not root"}, 5, true},
		{"snmptrapd not run, ratio unchecked", true, 100000, trapPeerResult{skipped: "not root"}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := trapVerdict(100000, c.limit, false, c.peer, c.minRatio, c.lossless)
			if (err != nil) != c.wantErr {
				t.Errorf("trapVerdict: %v; want error %v", err, c.wantErr)
			}
		})
	}
}

func TestTrapUDPCounters(t *testing.T) {
	c, err := trapUDPCounters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this namespace's UDP counters: %+v", c)
}
