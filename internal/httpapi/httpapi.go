// Package httpapi serves health, metrics, the read-only JSON API, the
// dead-letter replay and silence endpoints, mounts the operator's console
// (console.go: a page's URL gives JSON to clients that ask for it), and holds
// the client the CLI's commands on a running daemon use (Client).
package httpapi

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/cluster"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/probe"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// Outbox is what the API reads and replays.
type Outbox interface {
	DeadLetterPage(ctx context.Context, q outbox.DeadLetterQuery) ([]outbox.DeadLetter, string, error)
	Replay(ctx context.Context, id string) error
	ReplayAll(ctx context.Context, destination string) (int, error)
	Recent(destination string) []outbox.Attempt
	Pending() map[string]int
	Health(destination string) outbox.Health
}

// Noise is what noise control shows: per alert, and in summary.
type Noise interface {
	AlertStatus(eventID, device, key string) noise.AlertStatus
	Summary() noise.Summary
}

// alertView is an alert with what noise control says of it.
type alertView struct {
	alert.Instance
	noise.AlertStatus
}

func (d Deps) alerts() []alertView {
	ins := d.Alerts()
	out := make([]alertView, len(ins))
	for i, in := range ins {
		out[i].Instance = in
		if d.Noise != nil {
			out[i].AlertStatus = d.Noise.AlertStatus(in.EventID, in.Device.Name, in.Key)
		}
	}
	return out
}

// Silences is what the silence endpoints read and change (mute.Set).
type Silences interface {
	Add(ctx context.Context, n mute.NewSilence) (mute.Silence, error)
	List() []mute.Silence
	Expire(ctx context.Context, id string) (mute.Silence, error)
}

// Prober probes one inventory device by hand (probe.Prober): ping, SNMP
// and trap acceptance with the daemon's settings.
type Prober interface {
	Device(ctx context.Context, name string) (probe.Result, error)
}

// Deps are the read models the API serves.
type Deps struct {
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer
	// Ready says why nocbridge is not ready (starting, stopping, the store
	// cannot write), or nil.
	Ready   func() error
	Alerts  func() []alert.Instance
	Devices func() []devstate.Status
	// Device is one device with its last hour of RTT and loss, SNMP
	// values and poll failures; false when the inventory has no such
	// device.
	Device       func(name string) (devstate.Detail, bool)
	Destinations func() []string
	Outbox       Outbox
	Noise        Noise
	Silences     Silences
	Prober       Prober
	// History is the alert history; nil: alerts are found while active
	// only.
	History History
	// Token guards mutating endpoints (empty disables them), and reads too
	// when Public.
	Token func() config.Secret
	// Public says the listener is not on loopback (config.LoopbackListen):
	// every endpoint but /healthz, /readyz and /metrics needs the token.
	Public bool
	// MetricsAuth, when set and true, makes /metrics need the token too
	// (http.metrics_auth).
	MetricsAuth func() bool
	// Console is the operator's console; nil serves none.
	Console Console
	// Cluster is the store's cluster (store.Store.ClusterInfo); nil
	// serves {"enabled": false}.
	Cluster func(ctx context.Context) store.ClusterInfo
	// ClusterVantage is the vantage points' rule and disagreements
	// (vantage.Set.Status), shown as /api/v1/cluster's "vantage" when the
	// cluster is enabled; nil: no "vantage".
	ClusterVantage func() vantage.Status
	// Vantage is each node's last ICMP result of a device
	// (vantage.Set.Results), shown as /api/v1/devices/{name}'s "vantage"
	// when there are any; nil: never.
	Vantage func(device string) []vantage.Result
}

// maxBody bounds request bodies: the API takes small JSON only.
const maxBody = 64 << 10

// Handler builds the mux.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	metrics := promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if d.MetricsAuth != nil && d.MetricsAuth() {
			d.authorized(metrics.ServeHTTP)(w, r)
			return
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		pageByKey(w, r, d.alerts(), func(a alertView) string { return a.InstanceID })
	})
	mux.HandleFunc("GET /api/v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		body, err := d.clusterJSON(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, body)
	})
	mux.HandleFunc("GET /api/v1/noise", func(w http.ResponseWriter, _ *http.Request) {
		if d.Noise == nil {
			writeJSON(w, noise.Summary{})
			return
		}
		writeJSON(w, d.Noise.Summary())
	})
	if d.Console == nil { // else the console serves the link, and its JSON twin
		mux.HandleFunc("GET /alerts/{id}", d.alertByID) // ciscoDnaEventLink
	}
	mux.HandleFunc("GET /api/v1/alerts/{id}", d.alertByID)
	mux.HandleFunc("GET /api/v1/history", d.historyList)
	mux.HandleFunc("GET /api/v1/history/status", d.historyStatus)
	mux.HandleFunc("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		pageByKey(w, r, d.Devices(), func(s devstate.Status) string { return s.Name })
	})
	mux.HandleFunc("GET /api/v1/devices/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		dev, ok := d.Device(name)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("device %q is not in the inventory", name))
			return
		}
		if d.Vantage == nil {
			writeJSON(w, dev)
			return
		}
		writeJSON(w, struct {
			devstate.Detail
			Vantage []vantage.Result `json:"vantage,omitempty"`
		}{dev, d.Vantage(name)})
	})
	mux.HandleFunc("GET /api/v1/deliveries", func(w http.ResponseWriter, r *http.Request) {
		pending := d.Outbox.Pending()
		out := map[string]any{}
		for _, name := range d.Destinations() {
			if q := r.URL.Query().Get("destination"); q != "" && q != name {
				continue
			}
			out[name] = map[string]any{"pending": pending[name], "health": d.Outbox.Health(name), "recent": d.Outbox.Recent(name)}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		p, ok := readPage(w, r)
		if !ok {
			return
		}
		dl, next, err := d.Outbox.DeadLetterPage(r.Context(), outbox.DeadLetterQuery{
			Destination: r.URL.Query().Get("destination"), Limit: p.limit, Cursor: p.cursor})
		switch {
		case errors.Is(err, outbox.ErrBadCursor):
			writeError(w, http.StatusBadRequest, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		case dl == nil:
			dl = []outbox.DeadLetter{}
		}
		writePage(w, r, dl, next)
	})
	mux.HandleFunc("POST /api/v1/deadletters/replay", d.authorized(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID          string `json:"id"`
			Destination string `json:"destination"`
		}
		if r.ContentLength != 0 && !decodeJSON(w, r, &req) {
			return
		}
		if req.ID != "" {
			if err := d.Outbox.Replay(r.Context(), req.ID); err != nil {
				status := http.StatusInternalServerError
				if errors.Is(err, outbox.ErrNotFound) {
					status = http.StatusNotFound
				}
				writeError(w, notLeader(err, status), err.Error())
				return
			}
			writeJSON(w, map[string]int{"replayed": 1})
			return
		}
		n, err := d.Outbox.ReplayAll(r.Context(), req.Destination)
		if err != nil {
			writeError(w, notLeader(err, http.StatusInternalServerError), err.Error())
			return
		}
		writeJSON(w, map[string]int{"replayed": n})
	}))
	mux.HandleFunc("GET /api/v1/silences", func(w http.ResponseWriter, r *http.Request) {
		pageByKey(w, r, d.Silences.List(), func(s mute.Silence) string { return s.ID })
	})
	mux.HandleFunc("POST /api/v1/silences", d.authorized(func(w http.ResponseWriter, r *http.Request) {
		var req mute.NewSilence
		if !decodeJSON(w, r, &req) {
			return
		}
		sl, err := d.Silences.Add(r.Context(), req)
		if err != nil {
			writeError(w, silenceStatus(err), err.Error())
			return
		}
		writeJSONStatus(w, http.StatusCreated, sl)
	}))
	mux.HandleFunc("DELETE /api/v1/silences/{id}", d.authorized(func(w http.ResponseWriter, r *http.Request) {
		sl, err := d.Silences.Expire(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, silenceStatus(err), err.Error())
			return
		}
		writeJSON(w, sl)
	}))
	mux.HandleFunc("POST /api/v1/devices/{name}/probe", d.authorized(func(w http.ResponseWriter, r *http.Request) {
		res, err := d.Prober.Device(r.Context(), r.PathValue("name"))
		switch {
		case errors.Is(err, probe.ErrUnknownDevice):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, probe.ErrBusy):
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusTooManyRequests, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, res) // 200 whether or not the device answered: "answered" says
		}
	}))
	console := d.mountConsole(mux)
	return logPanics(d.Logger, d.guard(mux, console))
}

// clusterJSON is /api/v1/cluster: the store's cluster, and when it is
// enabled the vantage points' status as "vantage", after what the store
// says (whatever fields it has).
func (d Deps) clusterJSON(ctx context.Context) (json.RawMessage, error) {
	var ci store.ClusterInfo
	if d.Cluster != nil {
		ci = d.Cluster(ctx)
	}
	body, err := json.Marshal(ci)
	if err != nil {
		return nil, fmt.Errorf("cluster info: %w", err)
	}
	if !ci.Enabled || d.ClusterVantage == nil {
		return body, nil
	}
	v, err := json.Marshal(d.ClusterVantage())
	if err != nil {
		return nil, fmt.Errorf("vantage status: %w", err)
	}
	if len(body) < 2 || body[len(body)-1] != '}' {
		return nil, fmt.Errorf("cluster info is not a JSON object: %.40s", body)
	}
	out := body[: len(body)-1 : len(body)-1]
	if len(out) > 1 { // not {}
		out = append(out, ',')
	}
	out = append(append(out, `"vantage":`...), v...)
	return append(out, '}'), nil
}

// open are the paths anyone may read wherever the API listens: the
// probes, and /metrics, which guards itself (MetricsAuth).
var open = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// guard asks for the token on every other path when the API is Public.
// The console's pages (console, a set of mux patterns) also take its
// signed-in session, and send a browser without one to the login page.
// The mutating endpoints ask for the token themselves (authorized).
func (d Deps) guard(mux *http.ServeMux, console map[string]bool) http.Handler {
	if !d.Public {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open[r.URL.Path] {
			mux.ServeHTTP(w, r)
			return
		}
		if _, pattern := mux.Handler(r); console[pattern] {
			switch {
			case d.Console.Allows(r), d.bearer(r):
				mux.ServeHTTP(w, r)
				return
			case wantsHTML(r):
				d.Console.SendToLogin(w, r)
				return
			}
		}
		d.authorized(mux.ServeHTTP)(w, r)
	})
}

func (d Deps) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.Token().Reveal() == "" {
			writeError(w, http.StatusForbidden, "disabled: this endpoint needs http.token (or http.token_file) in the config")
			return
		}
		if !d.bearer(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nocbridge"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	}
}

// bearer reports whether r carries the configured token (never when none
// is configured), compared in constant time.
func (d Deps) bearer(r *http.Request) bool {
	want := d.Token().Reveal()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return want != "" && ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// decodeJSON reads a small JSON body into v, refusing unknown fields and
// anything after the value; on a problem it answers 400 and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "invalid JSON body: the body is empty")
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON body: larger than %d bytes", maxBody))
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
	}
	return err == nil
}

// silenceStatus is the answer's status for a silence call that failed.
func silenceStatus(err error) int {
	switch {
	case errors.Is(err, mute.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, mute.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// notLeader is 409 for a call a follower refuses (it needs the cluster
// leader's state; the error names the leader), else status.
func notLeader(err error, status int) int {
	if _, ok := errors.AsType[*cluster.NotLeader](err); ok {
		return http.StatusConflict
	}
	return status
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func logPanics(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				log.Error("HTTP handler panic", "path", r.URL.Path, "panic", p)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// Server runs the handler on a bound listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds c.Listen now, so readiness can report a bound listener and
// a port conflict fails the start; with c.TLS it serves HTTPS. The
// certificate is read once: a renewed one takes a restart.
func Listen(c config.HTTP, h http.Handler) (*Server, error) {
	var tlsCfg *tls.Config
	if c.TLS != nil {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("http tls: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", c.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shutCtx)
		<-errc
		return nil
	}
}
