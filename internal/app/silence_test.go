package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/mute"
)

// Silences made with the CLI functions reach the running daemon, mute what
// they match in the set the noise gate asks, survive a restart and expire;
// maintenance windows come from config and a reload swaps them.
func TestSilencesThroughTheCLIAndAcrossRestarts(t *testing.T) {
	rcv := newReceiver(t, always(http.StatusOK))
	const token = "silence-token-for-tests"
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: rcv.srv.URL, Listen: freePort(t), Token: token}))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The device is not pinged, so the test needs no ICMP privileges.
	base := strings.Replace(string(b), "    role: access\n", "    role: access\n    icmp: {disabled: true}\n", 1)
	withWindow := base + `maintenance:
  - name: nightly
    match: {sites: [Lab], event_ids: ["NETWORK-*"]}
    every: "03:00"
    duration: 1h
    timezone: UTC
`
	if err := os.WriteFile(path, []byte(withWindow), 0o644); err != nil {
		t.Fatal(err)
	}
	a, stop := startApp(t, path)
	if ws := a.mutes.Windows(); len(ws) != 1 || ws[0].Name != "nightly" {
		t.Fatalf("windows from config: %+v", ws)
	}
	ctx := context.Background()
	cli := func(c ctl.SilenceCommand) (string, error) {
		var out bytes.Buffer
		err := ctl.Silence(ctx, path, c, &out)
		if strings.Contains(out.String(), token) {
			t.Error("token in CLI output")
		}
		return out.String(), err
	}
	list := func() []mute.Silence {
		t.Helper()
		out, err := cli(ctl.SilenceCommand{Action: "list"})
		if err != nil {
			t.Fatal(err)
		}
		var l []mute.Silence
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("silence list: %v\n%s", err, out)
		}
		return l
	}

	dut := config.Match{Selector: config.Selector{Devices: []string{"dut"}}}
	out, err := cli(ctl.SilenceCommand{Action: "add", Match: dut, For: 2 * time.Hour, Comment: "CHG-1", CreatedBy: "alice"})
	if err != nil {
		t.Fatalf("silence add: %v", err)
	}
	active := strings.TrimSpace(out)
	later := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	out, err = cli(ctl.SilenceCommand{Action: "add", Match: dut, Start: later.Format(time.RFC3339), Until: later.Add(time.Hour).Format(time.RFC3339), Comment: "CHG-2"})
	if err != nil {
		t.Fatalf("silence add --start: %v", err)
	}
	pending := strings.TrimSpace(out)

	d, _ := a.devices.Load().Device("dut")
	if got := a.mutes.MutedBy(d, "NETWORK-DEVICES-1-101", time.Now()); !slices.Equal(got, []string{"silence " + active}) {
		t.Errorf("MutedBy = %q, want the active silence", got)
	}
	if l := list(); len(l) != 2 || l[0].ID != active || l[0].State != mute.Active || l[0].CreatedBy != "alice" || l[1].ID != pending || l[1].State != mute.Pending {
		t.Fatalf("silence list: %+v", l)
	}
	out, err = cli(ctl.SilenceCommand{Action: "list", Table: true})
	if err != nil || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, active) || !strings.Contains(out, "devices=dut") || !strings.Contains(out, "CHG-1") {
		t.Errorf("silence list as a table: %v\n%s", err, out)
	}

	// What the daemon refuses is the user's mistake (exit code 1), in the
	// daemon's words.
	if _, err := cli(ctl.SilenceCommand{Action: "add", Match: dut, For: time.Hour}); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "comment is required") {
		t.Errorf("add without a comment: %v", err)
	}
	if _, err := cli(ctl.SilenceCommand{Action: "expire", ID: "no-such-id"}); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "404") {
		t.Errorf("expire of an unknown id: %v", err)
	}
	// Changing silences needs the token.
	resp, err := http.Post("http://"+a.HTTPAddr()+"/api/v1/silences", "application/json", strings.NewReader(`{"match":{"devices":["dut"]},"duration":"1h","comment":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without the token: %s", resp.Status)
	}

	// A restart keeps both.
	stop()
	a, stop = startApp(t, path)
	if l := list(); len(l) != 2 || l[0].ID != active || l[1].ID != pending {
		t.Fatalf("after a restart: %+v", l)
	}
	out, err = cli(ctl.SilenceCommand{Action: "expire", ID: active})
	if err != nil || !strings.HasPrefix(out, "silence "+active+" expired at ") {
		t.Fatalf("silence expire: %v %q", err, out)
	}
	if got := a.mutes.MutedBy(d, "NETWORK-DEVICES-1-101", time.Now()); got != nil {
		t.Errorf("MutedBy after expire = %q", got)
	}
	if l := list(); len(l) != 2 || l[0].ID != pending || l[1].ID != active || l[1].State != mute.Expired {
		t.Fatalf("after expire: %+v; want the expired one still listed", l)
	}
	if err := testutil.GatherAndCompare(a.Registry(), strings.NewReader(`
# HELP nocbridge_silences Silences by state: active, pending, or expired and still listed.
# TYPE nocbridge_silences gauge
nocbridge_silences{state="active"} 0
nocbridge_silences{state="expired"} 1
nocbridge_silences{state="pending"} 1
`), "nocbridge_silences"); err != nil {
		t.Error(err)
	}

	// A reload swaps the windows.
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ws := a.mutes.Windows(); len(ws) != 0 {
		t.Errorf("windows after a reload without them: %+v", ws)
	}
}
