package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/console"
	"github.com/nocbridge/nocbridge/internal/console/consoletest"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/httpapi"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/store"
)

func init() { benchmarks["console"] = runConsole }

// runConsole measures how long the console's pages take at fleet scale:
// each request over real HTTP on loopback through the API's handler (as the
// daemon mounts it), timed from sending to the last byte read.
func runConsole(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: nocbench console [flags]\n\n"+
			"Builds a fleet of -devices (100 per site; about 2% down with a firing alert, 3% unreachable behind\n"+
			"their site's core, 1% never probed, the rest up; an hour of per-minute ICMP points each; alert\n"+
			"history), a real outbox and real silences and maintenance windows on a temporary store, and\n"+
			"serves the console on loopback. Requests -n times each of /, /devices and device pages (the\n"+
			"devices taken in turn), one at a time, and fails if a page is not 200 or a p99 exceeds -max-p99.\n\n")
		fs.PrintDefaults()
	}
	devices := fs.Int("devices", 10000, "devices in the fleet")
	n := fs.Int("n", 300, "requests per page")
	maxP99 := fs.Duration("max-p99", 50*time.Millisecond, "fail when a page's 99th percentile is above this")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured requests to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *devices < 1 || *n < 1 {
		return errors.New("-devices and -n must be at least 1")
	}
	srv, fleet, cleanup, err := consoleServer(ctx, *devices)
	if err != nil {
		return err
	}
	defer cleanup()

	var pages []string
	for i := 0; i < len(fleet.Devices); i += max(1, len(fleet.Devices)/97) {
		pages = append(pages, "/devices/"+fleet.Devices[i].Name)
	}
	fmt.Printf("console: %d devices, %d firing alerts, %d sites; %d requests per page, one at a time, over loopback HTTP; GOMAXPROCS %d\n",
		len(fleet.Devices), len(fleet.Alerts), max(1, *devices/100), *n, runtime.GOMAXPROCS(0))
	stopProfile := func() {}
	if *cpuProfile != "" {
		if stopProfile, err = latencyStartProfile(*cpuProfile); err != nil {
			return err
		}
	}
	defer stopProfile()
	var failed []error
	for _, p := range []struct {
		name  string
		paths []string
	}{
		{"/", []string{"/"}},
		{"/devices", []string{"/devices"}},
		{"/devices/{name}", pages},
	} {
		cpu0 := trapSelfCPU()
		lat, size, err := consoleMeasure(ctx, srv.URL, p.paths, *n)
		if err != nil {
			return err
		}
		cpu := (trapSelfCPU() - cpu0) / time.Duration(*n+min(len(p.paths), 20))
		fmt.Printf("  %-16s p50 %-9v p99 %-9v max %-9v CPU per request %-9v (client included; page %d KiB)\n",
			p.name, pct(lat, 50), pct(lat, 99), pct(lat, 100), cpu.Round(10*time.Microsecond), size>>10)
		if p99 := pct(lat, 99); p99 > *maxP99 {
			failed = append(failed, fmt.Errorf("%s: p99 %v is above the %v target", p.name, p99, *maxP99))
		}
	}
	return errors.Join(failed...)
}

// consoleMeasure gets the paths in turn, n requests in all after a warm-up
// of one round, and returns the sorted latencies and the largest body.
func consoleMeasure(ctx context.Context, base string, paths []string, n int) ([]time.Duration, int, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (time.Duration, int, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("GET %s: %d: %.300s", path, resp.StatusCode, b)
		}
		return took, len(b), nil
	}
	for _, p := range paths[:min(len(paths), 20)] {
		if _, _, err := get(p); err != nil {
			return nil, 0, err
		}
	}
	lat := make([]time.Duration, 0, n)
	size := 0
	for i := range n {
		d, s, err := get(paths[i%len(paths)])
		if err != nil {
			return nil, 0, err
		}
		lat, size = append(lat, d), max(size, s)
	}
	slices.Sort(lat)
	return lat, size, nil
}

// consoleServer serves the console of a generated fleet on loopback. The
// outbox, silences and windows are the real ones on a temporary store: one
// silence per tenth site, a maintenance window open over a role.
func consoleServer(ctx context.Context, devices int) (*httptest.Server, *consoletest.Fleet, func(), error) {
	now := time.Now()
	fleet := consoletest.NewFleet(devices, now)
	dir, err := os.MkdirTemp("", "nocbench-console-")
	if err != nil {
		return nil, nil, nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: logger})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	cleanup := func() { st.Close(); os.RemoveAll(dir) }
	fail := func(err error) (*httptest.Server, *consoletest.Fleet, func(), error) {
		cleanup()
		return nil, nil, nil, err
	}
	ob, err := outbox.New(ctx, st, outbox.Options{Logger: logger})
	if err != nil {
		return fail(err)
	}
	bucket, err := st.Bucket(ctx, "silences")
	if err != nil {
		return fail(err)
	}
	windows, err := mute.Compile([]config.Maintenance{
		{Name: "ap-firmware", Match: config.Match{Selector: config.Selector{Roles: []string{"ap"}, Sites: []string{"site-01*"}}},
			Start: now.Add(-time.Hour).Format(time.RFC3339), End: now.Add(time.Hour).Format(time.RFC3339), Timezone: "UTC"},
		{Name: "sunday-patching", Match: config.Match{Selector: config.Selector{Roles: []string{"access"}}}, Every: "sun 02:00",
			Duration: config.Duration(2 * time.Hour), Timezone: "UTC"},
	})
	if err != nil {
		return fail(err)
	}
	mutes, err := mute.New(ctx, bucket, windows, mute.Options{Logger: logger})
	if err != nil {
		return fail(err)
	}
	for s := 0; s < max(1, devices/100); s += 10 {
		if _, err := mutes.Add(ctx, mute.NewSilence{Match: config.Match{Selector: config.Selector{Sites: []string{fmt.Sprintf("site-%03d", s)}}},
			Duration: mute.Duration(time.Hour), Comment: "bench"}); err != nil {
			return fail(err)
		}
	}
	nz := consoletest.NewNoise(fleet, now)
	alerts := func() []alert.Instance { return fleet.Alerts }
	// What devstate.Tracker.List costs the daemon per call: a copy of every
	// device's status, sorted by name.
	devs := func() []devstate.Status {
		out := slices.Clone(fleet.Devices)
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	byName := make(map[string]int, len(fleet.Devices))
	for i, d := range fleet.Devices {
		byName[d.Name] = i
	}
	device := func(name string) (devstate.Status, bool) {
		i, ok := byName[name]
		if !ok {
			return devstate.Status{}, false
		}
		return fleet.Devices[i], true
	}
	dests := func() []string { return []string{"noc-webhook", "noc-slack"} }
	token := func() config.Secret { return "bench-token" }
	con, err := console.New(console.Deps{Logger: logger, ExternalURL: func() string { return "https://nocbridge.example.net" },
		Alerts: alerts, Devices: devs, Device: device, Destinations: dests, Series: fleet.Series, History: fleet.History, Noise: nz,
		Outbox: ob, Mutes: mutes, Token: token, Store: func() error { return nil }})
	if err != nil {
		return fail(err)
	}
	srv := httptest.NewServer(httpapi.Handler(httpapi.Deps{Logger: logger, Gatherer: prometheus.NewRegistry(), Ready: func() error { return nil },
		Alerts: alerts, Devices: devs, Destinations: dests, Outbox: ob, Noise: nz, Silences: mutes, Token: token, Console: con}))
	return srv, fleet, func() { srv.Close(); cleanup() }, nil
}
