package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("state_dir: ./data\nhttp:\n  listn: 127.0.0.1:9720\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, exitInvalid, "", "usage: nocbridge"},
		{"unknown command", []string{"frobnicate"}, exitInvalid, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, exitOK, "nocbridge dev", ""},
		{"help", []string{"help"}, exitOK, "test-notify", ""},
		{"check shipped config", []string{"check", "--config", "../../configs/nocbridge.yaml"}, exitOK, "ok", ""},
		{"check invalid config", []string{"check", "--config", bad}, exitInvalid, "", "bad.yaml:3: "},
		{"check missing file", []string{"check", "--config", filepath.Join(dir, "absent.yaml")}, exitInvalid, "", "absent.yaml"},
		{"stray argument", []string{"check", "--config", bad, "extra"}, exitInvalid, "", `unexpected argument "extra"`},
		{"bad log level", []string{"check", "--log-level", "loud"}, exitInvalid, "", "--log-level"},
		{"test-notify needs a destination", []string{"test-notify", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", "--destination is required"},
		{"test-notify unknown destination", []string{"test-notify", "--config", "../../configs/nocbridge.yaml", "--destination", "nope"}, exitInvalid, "", `no destination "nope"`},
		{"test-notify to the log destination", []string{"test-notify", "--config", "../../configs/nocbridge.yaml", "--destination", "noc-log"}, exitOK, "noc-log: delivered NETWORK-DEVICES-1-101", ""},
		{"dlq unknown action", []string{"dlq", "purge", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", `want list or replay`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}
