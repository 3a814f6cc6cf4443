package netsnmp

import "testing"

func TestAgentsListenOnLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:161": true, "127.1.2.3:16161": true,
		"10.0.0.1:161": false, "0.0.0.0:161": false, "[::1]:161": false, "localhost:161": false, "127.0.0.1": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}
