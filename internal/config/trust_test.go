package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/testutil/tlscert"
)

func TestLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9720":          true,
		"127.10.0.1:9720":         true,
		"[::1]:9720":              true,
		"[::ffff:127.0.0.1]:9720": true,
		"localhost:9720":          true,
		"LocalHost.:9720":         true,
		"0.0.0.0:9720":            false,
		"[::]:9720":               false,
		":9720":                   false,
		"10.0.0.5:9720":           false,
		"[fe80::1%eth0]:9720":     false,
		"nocbridge.example:9720":  false,
		"localhost.example:9720":  false,
		"127.0.0.1":               false, // no port: not a listen address
	} {
		if got := LoopbackListen(addr); got != want {
			t.Errorf("LoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

// loadWarnings loads body (which must be valid) and returns its warnings
// as check prints them.
func loadWarnings(t *testing.T, path string) []string {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var out []string
	for _, w := range cfg.Warnings {
		out = append(out, w.String())
	}
	return out
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("api-token-W1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	body := `http:
  listen: 0.0.0.0:9720
  token_file: token
destinations:
  - name: hook
    type: webhook
    url: https://hook.example.com/
    tls:
      insecure_skip_verify: true
    proxy_url: http://u:proxy-pw-W2@proxy.example.com:3128
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got := loadWarnings(t, path)
	want := []string{
		path + ":2: warning: http: listen 0.0.0.0:9720 is not a loopback address and http.tls is not set: the bearer token and every answer cross the network in clear text",
		path + ":3: warning: http.token_file: secret file " + token + " is readable by group or others (mode 0644): make it 0600",
		path + ":9: warning: destination \"hook\": tls.insecure_skip_verify is true",
		path + ":10: warning: destination \"hook\": proxy_url's user and password go over plain http:// to proxy.example.com:3128",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n %s\nwant prefix\n %s", i, got[i], want[i])
		}
		if strings.Contains(got[i], "api-token-W1") || strings.Contains(got[i], "proxy-pw-W2") {
			t.Errorf("warning %d holds a secret", i)
		}
	}

	// Private secret files, loopback, certificate checked: nothing to say.
	if err := os.Chmod(token, 0o600); err != nil {
		t.Fatal(err)
	}
	body = strings.NewReplacer("0.0.0.0", "127.0.0.1", "insecure_skip_verify: true", "insecure_skip_verify: false", "http://u:", "https://u:").Replace(body)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loadWarnings(t, path); len(got) != 0 {
		t.Errorf("unexpected warnings:\n%s", strings.Join(got, "\n"))
	}
}

func TestHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	tlscert.Write(t, dir)
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte("http:\n  listen: 127.0.0.1:9720\n  tls: {cert_file: cert.pem, key_file: key.pem}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.TLS.CertFile != filepath.Join(dir, "cert.pem") || cfg.HTTP.TLS.KeyFile != filepath.Join(dir, "key.pem") {
		t.Errorf("tls = %+v, want paths resolved from the config's folder", cfg.HTTP.TLS)
	}
	if cfg.ExternalURL != "https://127.0.0.1:9720" {
		t.Errorf("external_url = %s, want https", cfg.ExternalURL)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}

	if err := os.Chmod(filepath.Join(dir, "key.pem"), 0o640); err != nil {
		t.Fatal(err)
	}
	got := loadWarnings(t, path)
	if len(got) != 1 || !strings.HasPrefix(got[0], path+":3: warning: http.tls.key_file: secret file ") {
		t.Errorf("warnings %q, want one about key.pem's mode", got)
	}
}

func TestAPIAccessErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "garbage.pem"), []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	body := `http:
  listen: 0.0.0.0:9720
  metrics_auth: true
  tls: {cert_file: garbage.pem}
destinations:
  - {name: hook, type: log, follow_redirects: always}
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load: %v, want Errors", err)
	}
	want := []string{
		path + ":2: http: listen 0.0.0.0:9720 is not a loopback address, so every endpoint but /healthz, /readyz and /metrics needs the bearer token: set http.token_file (or http.token), or listen on 127.0.0.1",
		path + ":4: http: tls needs cert_file and key_file (PEM)",
		path + `:6: destination "hook": follow_redirects "always" must be never (the default) or same_host`,
	}
	if len(es) != len(want) {
		t.Fatalf("errors:\n%v\nwant %d", err, len(want))
	}
	for i := range want {
		if es[i].Error() != want[i] {
			t.Errorf("error %d:\n %s\nwant\n %s", i, es[i], want[i])
		}
	}

	body = "http:\n  metrics_auth: true\n  tls: {cert_file: garbage.pem, key_file: garbage.pem}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if !errors.As(err, &es) || len(es) != 2 ||
		es[0].Error() != path+":2: http: metrics_auth needs the bearer token: set http.token_file (or http.token)" ||
		!strings.HasPrefix(es[1].Error(), path+":3: http: tls: cannot load the certificate and key: ") {
		t.Errorf("Load: %v", err)
	}
}

// A secret file that never ends (/dev/zero) is an error, not a hang.
func TestSecretFileBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, err := ResolveSecret("", "/dev/zero", "")
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ResolveSecret(/dev/zero): %v", err)
	}
}
