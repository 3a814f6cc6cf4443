package config

import (
	"crypto/tls"
	"fmt"
	"net/url"
)

// validateAPI checks who may reach the API (SPEC 14): off loopback every
// endpoint but the probes needs the token, so one must be set; http.tls
// must load; and a listener off loopback without TLS is a warning.
func (l *loader) validateAPI(c *Config) {
	h := c.HTTP
	noToken := h.Token == "" && h.TokenFile == "" // a token_file that failed is reported already
	public := checkListen(h.Listen) == nil && !LoopbackListen(h.Listen)
	switch {
	case public && noToken:
		l.bad(l.line("http", "listen"), "http: listen %s is not a loopback address, so every endpoint but /healthz, /readyz and /metrics needs the bearer token: set http.token_file (or http.token), or listen on 127.0.0.1", h.Listen)
	case h.MetricsAuth && noToken:
		l.bad(l.line("http", "metrics_auth"), "http: metrics_auth needs the bearer token: set http.token_file (or http.token)")
	}
	if h.TLS == nil {
		if public {
			l.warn(l.line("http", "listen"), "http: listen %s is not a loopback address and http.tls is not set: the bearer token and every answer cross the network in clear text; set http.tls {cert_file, key_file}", h.Listen)
		}
		return
	}
	at := func(key string) int { return l.line("http", "tls", key) }
	switch t := h.TLS; {
	case t.CertFile == "" || t.KeyFile == "":
		l.bad(l.line("http", "tls"), "http: tls needs cert_file and key_file (PEM)")
	default:
		if key, err := loadKeyPair(absFrom(c.BaseDir, t.CertFile), absFrom(c.BaseDir, t.KeyFile)); err != nil {
			line := at("cert_file")
			if key {
				line = at("key_file")
			}
			l.bad(line, "http: tls: cannot load the certificate and key: %v", err)
			return
		}
		l.warnSecretFile(t.KeyFile, c.BaseDir, "http", "tls", "key_file")
	}
}

// loadKeyPair checks that the files hold a certificate and its key; key
// says a failure concerns the key file.
func loadKeyPair(certFile, keyFile string) (key bool, err error) {
	cert, err := readBounded(certFile)
	if err != nil {
		return false, err
	}
	pem, err := readBounded(keyFile)
	if err != nil {
		return true, err
	}
	_, err = tls.X509KeyPair(cert, pem)
	return false, err
}

// checkOutbound checks the keys every destination shares that decide where
// notifications may go: follow_redirects; tls.insecure_skip_verify and a
// proxy password sent in clear text work, but are warnings.
func (l *loader) checkOutbound(c *Config) {
	for i, d := range c.Destinations {
		where := itemWhere("destination", d.Name, fmt.Sprintf("destinations[%d]", i))
		switch d.FollowRedirects {
		case "", RedirectsNever, RedirectsSameHost:
		default:
			l.bad(l.line("destinations", i, "follow_redirects"), "%s: follow_redirects %q must be never (the default) or same_host", where, d.FollowRedirects)
		}
		if u, err := url.Parse(d.ProxyURL); err == nil && u.Scheme == "http" && u.User != nil && !LoopbackHost(u.Hostname()) {
			l.warn(l.line("destinations", i, "proxy_url"), "%s: proxy_url's user and password go over plain http:// to %s, readable by anyone on the path: use an https:// proxy", where, u.Host)
		}
		if d.TLS.InsecureSkipVerify {
			l.warn(l.line("destinations", i, "tls", "insecure_skip_verify"), "%s: tls.insecure_skip_verify is true: the receiver's certificate is not checked, so anyone on the path can read notifications and credentials; trust a private CA with tls.ca_file instead", where)
		}
	}
}
