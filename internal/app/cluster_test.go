package app

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// store.nats_url: the daemon keeps its state in a separate NATS server,
// nothing under state_dir, and /api/v1/cluster says it runs alone there.
func TestStoreOnExistingNATS(t *testing.T) {
	requireICMP(t)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, Username: "nocbridge", Password: "s3cr3t-pw"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("separate NATS server not ready")
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()

	dir := t.TempDir()
	path := writeConfig(t, dir, testConfig{Device: "127.0.0.1", ReceiverURL: "http://127.0.0.1:9", RuleWhen: "loss == 100", RuleClear: "loss == 0"})
	u := url.URL{Scheme: "nats", User: url.UserPassword("nocbridge", "s3cr3t-pw"), Host: srv.Addr().String()}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("store: {nats_url: \"" + u.String() + "\"}\n"); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	a, stop := startApp(t, path)
	var ci map[string]any
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/cluster", &ci)
	if ci["enabled"] != false || ci["nats_url"] != "nats://nocbridge:xxxxx@"+srv.Addr().String() || len(ci) != 2 {
		t.Errorf("/api/v1/cluster = %v, want enabled false and the URL without its password", ci)
	}
	resp, err := http.Get("http://" + a.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %s", resp.Status)
	}
	stop()
	if srv.JetStreamNumAccounts() == 0 {
		t.Error("the separate server holds no JetStream state")
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "jetstream")); err == nil {
		t.Error("state_dir has a jetstream directory: the store embedded a server anyway")
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "state", "*")); len(entries) > 0 {
		t.Errorf("state_dir holds %s, want nothing", strings.Join(entries, ", "))
	}
}
