package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/testutil/logtest"

	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/testutil/tlscert"
)

// addHookKeys adds YAML lines to the test config's webhook destination.
func addHookKeys(t *testing.T, path, lines string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(b), "    secret: ", lines+"    secret: ", 1)
	if err := os.WriteFile(path, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A receiver that echoes every request header (the bearer token, a key in
// a custom header) in a 500 and then a 400 answer: none of the secrets
// reaches the dead letters or deliveries the API serves, nor the log.
func TestEchoedSecretsReachNoStoredAnswer(t *testing.T) {
	requireICMP(t)
	const (
		bearer   = "echo-bearer-Q7v2Lm9"
		apiKey   = "echo-api-key-Z3k8"
		apiToken = "echo-api-token-P5w1"
	)
	var n atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusInternalServerError
		if n.Add(1) > 1 {
			status = http.StatusBadRequest
		}
		w.Header().Set("X-Seen-Authorization", r.Header.Get("Authorization"))
		w.WriteHeader(status)
		_ = r.Header.Write(w)
		fmt.Fprintf(w, "\nrejected token=%s key %s\n", bearer, apiKey)
	}))
	defer rcv.Close()
	listen := freePort(t)
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: rcv.URL, Listen: listen, Token: apiToken}))
	addHookKeys(t, path, "    bearer_token: "+bearer+"\n    headers: {X-Api-Key: "+apiKey+"}\n")
	var logs logtest.Logs
	a, stop := startAppWithLogger(t, path, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	base := "http://" + a.HTTPAddr()
	var dls []struct {
		Reason string `json:"reason"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(dls) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no dead letter after a 500 and a 400")
		}
		time.Sleep(50 * time.Millisecond)
		getJSON(t, base+"/api/v1/deadletters", &dls)
	}
	if !strings.Contains(dls[0].Reason, "HTTP 400") || !strings.Contains(dls[0].Reason, "X-Api-Key: "+"<redacted>") {
		t.Errorf("dead letter reason %q: want the 400 with the echo scrubbed", redactSecrets(dls[0].Reason))
	}
	deadLetters := getBody(t, base+"/api/v1/deadletters")
	deliveries := getBody(t, base+"/api/v1/deliveries")
	var attempts map[string]struct {
		Recent []struct {
			Error string `json:"error"`
		} `json:"recent"`
	}
	if err := json.Unmarshal(deliveries, &attempts); err != nil || len(attempts["hook"].Recent) < 2 {
		t.Fatalf("deliveries: %v, want both attempts", err)
	}
	stop()
	for where, text := range map[string]string{"dead letters": string(deadLetters), "deliveries": string(deliveries), "log": logs.String()} {
		for name, secret := range map[string]string{"bearer token": bearer, "header key": apiKey, "API token": apiToken, "signing secret": strings.TrimPrefix(testSigningSecret, "whsec_")} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s leaked into the %s", name, where) // never print it
			}
		}
	}
}

// With http.tls the daemon serves HTTPS, and the CLI's commands reach it.
func TestAPIOverTLS(t *testing.T) {
	requireICMP(t)
	dir := t.TempDir()
	certFile, keyFile := tlscert.Write(t, dir)
	listen := freePort(t)
	path := writeConfig(t, dir, upRule(testConfig{ReceiverURL: "http://127.0.0.1:1", Listen: listen, Token: "tls-api-token"}))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tlsKeys := fmt.Sprintf("http:\n  tls: {cert_file: %s, key_file: %s}", certFile, keyFile)
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "http:", tlsKeys, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	startApp(t, path)
	var out bytes.Buffer
	if err := ctl.DeadLetters(context.Background(), path, "list", "", "", &out); err != nil {
		t.Fatalf("dlq list over HTTPS: %v", err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("dlq list: %s", out.String())
	}
	if resp, err := http.Get("http://" + listen + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on the HTTPS listener")
		}
	}
}
