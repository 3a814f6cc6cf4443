package main

import "testing"

// TestPollCheckPeer: snmpget's answer must hold every asked OID, and the
// CPU row at the value the agents report.
func TestPollCheckPeer(t *testing.T) {
	oids := []string{".1.3.6.1.2.1.1.3.0", pollCPUOID}
	for _, c := range []struct {
		out     string
		wantErr bool
	}{
		{".1.3.6.1.2.1.1.3.0 12:0:01:02.03\n.1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 37\n", false},
		{".1.3.6.1.2.1.1.3.0 12:0:01:02.03\n.1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 12\n", true},
		{".1.3.6.1.2.1.1.3.0 12:0:01:02.03\n", true},
		{".1.3.6.1.2.1.1.3.0 12:0:01:02.03\n.1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 No Such Instance currently exists at this OID\n", true},
	} {
		if err := pollCheckPeer(c.out, oids); (err != nil) != c.wantErr {
			t.Errorf("pollCheckPeer(%q): %v; want error %v", c.out, err, c.wantErr)
		}
	}
	if got := pollOIDSummary(map[string][]string{"a": oids, "b": oids}); got != ".1.3.6.1.2.1.1.3.0 "+pollCPUOID+" (2 agents)" {
		t.Errorf("pollOIDSummary = %q", got)
	}
}
