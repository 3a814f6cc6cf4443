package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("state_dir: ./data\nhttp:\n  listn: 127.0.0.1:9720\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	warn := filepath.Join(dir, "warn.yaml")
	if err := os.WriteFile(warn, []byte("state_dir: ./data\nrules: []\ndestinations:\n  - name: l\n    type: log\n    tls: {insecure_skip_verify: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	public := filepath.Join(dir, "public.yaml")
	if err := os.WriteFile(public, []byte("state_dir: ./data\nrules: []\nhttp:\n  listen: 0.0.0.0:9720\n"), 0o644); err != nil {
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
		{"check warns, valid all the same", []string{"check", "--config", warn}, exitOK, "ok", `warn.yaml:6: warning: destination "l": tls.insecure_skip_verify is true`},
		{"check public listener without token", []string{"check", "--config", public}, exitInvalid, "", "public.yaml:4: http: listen 0.0.0.0:9720 is not a loopback address, so every endpoint but /healthz, /readyz and /metrics needs the bearer token"},
		{"stray argument", []string{"check", "--config", bad, "extra"}, exitInvalid, "", `unexpected argument "extra"`},
		{"bad log level", []string{"check", "--log-level", "loud"}, exitInvalid, "", "--log-level"},
		{"test-notify needs a destination", []string{"test-notify", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", "--destination is required"},
		{"test-notify unknown destination", []string{"test-notify", "--config", "../../configs/nocbridge.yaml", "--destination", "nope"}, exitInvalid, "", `no destination "nope"`},
		{"test-notify to the log destination", []string{"test-notify", "--config", "../../configs/nocbridge.yaml", "--destination", "noc-log"}, exitOK, "noc-log: delivered NETWORK-DEVICES-1-101", ""},
		{"dlq unknown action", []string{"dlq", "purge", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", `want list or replay`},
		{"silence unknown action", []string{"silence", "mute", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", `want add, list or expire`},
		{"silence add without a match", []string{"silence", "add", "--config", "../../configs/nocbridge.yaml", "--for", "1h", "--comment", "c"}, exitInvalid, "", "say what to silence"},
		{"silence add without an end", []string{"silence", "add", "--config", "../../configs/nocbridge.yaml", "--device", "sw1", "--comment", "c"}, exitInvalid, "", "give --for or --until"},
		{"silence add with two ends", []string{"silence", "add", "--config", "../../configs/nocbridge.yaml", "--device", "sw1", "--for", "1h", "--until", "2026-12-12T22:00:00Z", "--comment", "c"}, exitInvalid, "", "give --for or --until"},
		{"silence add with a bad time", []string{"silence", "add", "--config", "../../configs/nocbridge.yaml", "--device", "sw1", "--until", "tomorrow", "--comment", "c"}, exitInvalid, "", `--until "tomorrow": want an RFC 3339 time`},
		{"silence add with a bad label", []string{"silence", "add", "--label", "vendor"}, exitInvalid, "", "want KEY=VALUE"},
		{"silence expire without an ID", []string{"silence", "expire", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", "needs the silence's ID"},
		{"probe without a device", []string{"probe", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", "say which device"},
		{"probe neither device nor address", []string{"probe", "no such switch", "--config", "../../configs/nocbridge.yaml"}, exitInvalid, "", `"no such switch" is no device of the config`},
		{"probe with an invalid config", []string{"probe", "--config", bad, "sw1"}, exitInvalid, "", "bad.yaml:3: "},
		{"silence expire with two IDs", []string{"silence", "expire", "a", "--config", "../../configs/nocbridge.yaml", "b"}, exitInvalid, "", `unexpected argument "b"`},
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

// The silence commands reach the daemon's API with what the flags say.
func TestSilenceThroughTheAPI(t *testing.T) {
	var got []string // method path body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+strings.TrimSpace(string(body)))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/silences/gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"silence \"gone\": no such silence"}`)
		case r.Method == http.MethodGet:
			_, _ = io.WriteString(w, `[{"id":"sil-1","state":"active"}]`)
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"sil-1","ends_at":"2026-12-13T01:00:00Z"}`)
		}
	}))
	defer srv.Close()
	cfg := filepath.Join(t.TempDir(), "nocbridge.yaml")
	if err := os.WriteFile(cfg, []byte("http:\n  listen: "+strings.TrimPrefix(srv.URL, "http://")+"\n  token: t0k3n-for-tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string
		req    string
	}{
		{[]string{"silence", "add", "--config", cfg, "--device", "core-sw1", "--device", "core-sw2", "--site", "HQ", "--label", "vendor=cisco",
			"--event-id", "NETWORK-*", "--start", "2026-12-12T22:00:00+01:00", "--until", "2026-12-13T02:00:00+01:00", "--comment", "CHG-7", "--created-by", "alice"},
			exitOK, "sil-1\n",
			`POST /api/v1/silences {"match":{"devices":["core-sw1","core-sw2"],"sites":["HQ"],"labels":{"vendor":"cisco"},"event_ids":["NETWORK-*"]},` +
				`"starts_at":"2026-12-12T22:00:00+01:00","ends_at":"2026-12-13T02:00:00+01:00","comment":"CHG-7","created_by":"alice"}`},
		{[]string{"silence", "add", "--config", cfg, "--role", "access", "--for", "90m", "--comment", "c", "--created-by", ""}, exitOK, "sil-1\n",
			`POST /api/v1/silences {"match":{"roles":["access"]},"duration":"1h30m0s","comment":"c"}`},
		{[]string{"silence", "list", "--config", cfg}, exitOK, `[{"id":"sil-1","state":"active"}]`, "GET /api/v1/silences "},
		{[]string{"silence", "expire", "sil-1", "--config", cfg}, exitOK, "silence sil-1 expired at ", "DELETE /api/v1/silences/sil-1 "},
		{[]string{"silence", "expire", "--config", cfg, "sil-1"}, exitOK, "silence sil-1 expired at ", "DELETE /api/v1/silences/sil-1 "},
		{[]string{"silence", "expire", "gone", "--config", cfg}, exitInvalid, "", "DELETE /api/v1/silences/gone "},
	}
	for _, tt := range tests {
		got = nil
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, &stdout, &stderr); code != tt.code || !strings.HasPrefix(stdout.String(), tt.stdout) {
			t.Errorf("%v: exit %d stdout %q stderr %q; want %d, %q", tt.args[:2], code, stdout.String(), stderr.String(), tt.code, tt.stdout)
		}
		if len(got) != 1 || got[0] != tt.req {
			t.Errorf("%v: requests %q, want %q", tt.args[:2], got, tt.req)
		}
		if tt.code == exitInvalid && !strings.Contains(stderr.String(), `404 Not Found: silence "gone": no such silence`) {
			t.Errorf("refused expire: stderr %q", stderr.String())
		}
	}
}

// Durations read as Go durations in both formats, not nanoseconds.
func TestLogDurationsReadable(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("retrying", "retry_in", 1500*time.Millisecond, slog.Group("g", "took", 2*time.Second))
		out := buf.String()
		want := map[string][]string{"json": {`"retry_in":"1.5s"`, `"took":"2s"`}, "text": {"retry_in=1.5s", "g.took=2s"}}[format]
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s log %q lacks %s", format, out, w)
			}
		}
	}
}
