package main

import (
	"context"
	"strings"
	"testing"
)

// nocbench console runs end to end on a small fleet, and fails when a page
// misses its target.
func TestConsoleBench(t *testing.T) {
	if err := runConsole(context.Background(), []string{"-devices", "500", "-n", "20", "-max-p99", "10s"}); err != nil {
		t.Fatalf("within a 10s target: %v", err)
	}
	err := runConsole(context.Background(), []string{"-devices", "500", "-n", "5", "-max-p99", "1ns"})
	for _, page := range []string{"/: p99", "/devices: p99", "/devices/{name}: p99"} {
		if err == nil || !strings.Contains(err.Error(), page) || !strings.Contains(err.Error(), "above the 1ns target") {
			t.Errorf("a 1ns target: %v; want %q over it", err, page)
		}
	}
	if err := runConsole(context.Background(), []string{"-devices", "0"}); err == nil {
		t.Error("-devices 0 accepted")
	}
}
