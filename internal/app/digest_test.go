package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/notify"
)

// TestLoadFillsDigests: the chat destinations reach the outbox with their
// digest policy (on by default, off with digest: false); webhooks, ticket
// systems and the log never digest.
func TestLoadFillsDigests(t *testing.T) {
	dir := t.TempDir()
	cfg := `state_dir: ./state
destinations:
  - {name: slack, type: slack, url: "https://hooks.slack.com/services/T/B/x"}
  - {name: teams, type: teams, url: "https://prod.example.com/workflows/1", digest: false}
  - {name: discord, type: discord, url: "https://discord.com/api/webhooks/1/x", digest: {after: 3, window: 30s}}
  - {name: webex, type: webex, token: t0k3n, room_id: r, digest: {window: 5m}}
  - {name: hook, type: webhook, url: "https://itsm.example.com/hook"}
  - {name: pd, type: pagerduty, routing_key: 0123456789abcdef0123456789abcdef}
  - {name: log, type: log}
subscriptions:
  - {name: all, destinations: [slack, teams, discord, webex, hook, pd, log]}
`
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := load(path, "test", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.notifiers.Close(slog.New(slog.DiscardHandler))
	want := map[string]notify.DigestPolicy{
		"slack":   notify.DefaultDigest,
		"discord": {After: 3, Window: 30 * time.Second},
		"webex":   {After: 10, Window: 5 * time.Minute},
	}
	for _, d := range g.destinations {
		var got notify.DigestPolicy
		if d.Digest != nil {
			got = d.Digest.DigestPolicy()
		}
		if got != want[d.Name] {
			t.Errorf("%s: digest %+v, want %+v", d.Name, got, want[d.Name])
		}
	}
	if len(g.destinations) != 7 {
		t.Errorf("%d destinations, want 7", len(g.destinations))
	}
}
