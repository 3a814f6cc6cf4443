package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/testutil/logtest"

	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/testutil/tmpfs"
)

// TestFullDiskHoldsAlertsAndSendsThemWhenSpaceReturns is SPEC 6's full
// disk, for real: the state directory is on an 8 MiB tmpfs, filled by a
// file while real linkDown/linkUp traps (net-snmp's snmptrap) raise five
// alerts and clear one. Nothing may be lost, /readyz must say why it is not
// ready, and once the file is removed everything must go out, in order per
// alert, without a restart.
func TestFullDiskHoldsAlertsAndSendsThemWhenSpaceReturns(t *testing.T) {
	if _, err := exec.LookPath("snmptrap"); err != nil {
		skipOrFail(t, "needs net-snmp's snmptrap: %v", err)
	}
	mnt := tmpfs.Mount(t, 8<<20)
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, always(http.StatusOK))
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, mnt, testConfig{Device: "127.0.0.1", ReceiverURL: rcv.srv.URL,
		RuleWhen: "loss == 100", RuleClear: "loss == 0"})
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	withTraps := strings.Replace(string(cfg), "rules: [rules/*.yaml]",
		fmt.Sprintf("rules: [rules/*.yaml, %s/network-interfaces.yaml]\ntraps:\n  listen: %s\n  communities: [public]", rulesDir, listen), 1)
	if err := os.WriteFile(path, []byte(withTraps), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Logs{}
	a, _ := startAppWithLogger(t, path, slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo})))
	api := "http://" + a.HTTPAddr()
	trap := func(name string, ifIndex int) {
		t.Helper()
		oid := map[string]string{"linkDown": ".1.3.6.1.6.3.1.1.5.3", "linkUp": ".1.3.6.1.6.3.1.1.5.4"}[name]
		out, err := exec.Command("snmptrap", "-v", "2c", "-c", "public", listen, "", oid,
			".1.3.6.1.2.1.2.2.1.1."+strconv.Itoa(ifIndex), "i", strconv.Itoa(ifIndex)).CombinedOutput()
		if err != nil {
			t.Fatalf("snmptrap %s: %v: %s", name, err, out)
		}
	}
	readyz := func() (int, string) {
		resp, err := http.Get(api + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	filler := tmpfs.Fill(t, mnt)
	for i := 1; i <= 5; i++ {
		trap("linkDown", i)
	}
	waitUntil(t, 15*time.Second, "/readyz 503 naming the full disk", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "no space left on device")
	})
	trap("linkUp", 5) // cleared while its active waits: the resolve must follow it
	waitUntil(t, 10*time.Second, "five alerts held", func() bool {
		return gaugeValue(t, a, "nocbridge_store_healthy") == 0 && len(a.alerts.Instances()) == 5
	})
	time.Sleep(2 * time.Second) // the outage lasts: nothing may leak out or be dropped meanwhile
	if got := rcv.deliveries(); len(got) != 0 {
		t.Fatalf("%d notifications sent while nothing could be stored: %+v", len(got), got)
	}
	_, body := readyz()
	t.Logf("/readyz during the outage: %s", strings.TrimSpace(body))

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	got := rcv.waitFor(15*time.Second, "5 actives and 1 resolve", func(ds []delivery) bool { return len(ds) >= 6 })
	took := time.Since(freed)
	if took > 5*time.Second {
		t.Errorf("held alerts reached the receiver %v after the space came back, want within seconds", took)
	}
	time.Sleep(time.Second) // nothing more, nothing twice
	got = rcv.deliveries()
	actives, resolves := map[string]int{}, 0
	var order []string
	for _, d := range got {
		if d.EventID != "NETWORK-INTERFACES-2-301" {
			t.Errorf("unexpected %s %s", d.EventID, d.Status)
		}
		order = append(order, d.Status+" "+d.Description)
		if d.Status == "active" {
			actives[d.InstanceID]++
		} else {
			resolves++
			if actives[d.InstanceID] != 1 {
				t.Errorf("resolve of %s before its active", d.InstanceID)
			}
		}
	}
	if len(got) != 6 || len(actives) != 5 || resolves != 1 {
		t.Fatalf("after the disk had room again: %d deliveries (%d distinct actives, %d resolves), want 5 actives and 1 resolve: %v",
			len(got), len(actives), resolves, order)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz after recovery: %d %s", code, body)
	}
	if v := gaugeValue(t, a, "nocbridge_store_healthy"); v != 1 {
		t.Fatalf("nocbridge_store_healthy = %v after recovery", v)
	}
	for _, want := range []string{"state store cannot write", "state store writes again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	t.Logf("disk full: 5 alerts raised and 1 cleared while full, %d notifications delivered %v after the space came back, no restart",
		len(got), took.Round(time.Millisecond))
}
