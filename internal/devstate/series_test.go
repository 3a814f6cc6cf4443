package devstate

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// icmpRound is an ICMP observation of dev at at, as the engine emits it.
func icmpRound(dev *inventory.Device, at time.Time, sent, recv int, minMs, avgMs, maxMs float64) observation.Observation {
	loss := 100.0
	if sent > 0 {
		loss = 100 * float64(sent-recv) / float64(sent)
	}
	return observation.Observation{Source: observation.ICMP, Device: dev, Time: at, Vars: map[string]any{
		"up": recv > 0, "loss": loss, "rtt_ms": avgMs, "rtt_min_ms": minMs, "rtt_max_ms": maxMs, "sent": sent, "recv": recv}}
}

type roundAt struct {
	after               time.Duration // from the start of the test's clock (a minute's start)
	sent, recv          int
	minMs, avgMs, maxMs float64
	err                 bool // the round could not probe (sent is then 0)
}

// The series is one point per minute with rounds: min and max over the
// replies, the mean over the replies (not over the rounds), the loss over
// every echo, and minutes without rounds left out.
func TestSeriesMinutes(t *testing.T) {
	cases := []struct {
		name   string
		rounds []roundAt
		now    time.Duration // when Series is read
		want   []Point       // At as an offset in minutes from the start, in Rounds' place below
		wantAt []int
	}{
		{
			name: "one minute of single echoes",
			rounds: []roundAt{
				{0, 1, 1, 1, 1, 1, false}, {10 * time.Second, 1, 1, 6, 6, 6, false}, {20 * time.Second, 1, 1, 2, 2, 2, false},
				{30 * time.Second, 1, 1, 3, 3, 3, false},
			},
			now:    50 * time.Second,
			want:   []Point{{RTTMinMs: 1, RTTAvgMs: 3, RTTMaxMs: 6, LossPct: 0, Rounds: 4, Sent: 4, Recv: 4}},
			wantAt: []int{0},
		},
		{
			name: "loss over every echo, mean over every reply",
			rounds: []roundAt{
				{0, 3, 3, 1, 2, 3, false},                   // replies sum 6
				{20 * time.Second, 3, 0, 0, 0, 0, false},    // none back
				{40 * time.Second, 3, 1, 10, 10, 10, false}, // sum 10
			},
			now:    59 * time.Second,
			want:   []Point{{RTTMinMs: 1, RTTAvgMs: 4, RTTMaxMs: 10, LossPct: 100 * 5.0 / 9, Rounds: 3, Sent: 9, Recv: 4}},
			wantAt: []int{0},
		},
		{
			name:   "a minute whose rounds could not send is all loss",
			rounds: []roundAt{{0, 0, 0, 0, 0, 0, true}, {30 * time.Second, 0, 0, 0, 0, 0, true}},
			now:    time.Minute,
			want:   []Point{{LossPct: 100, Rounds: 2}},
			wantAt: []int{0},
		},
		{
			name: "minutes without rounds are absent",
			rounds: []roundAt{
				{0, 1, 1, 0.5, 0.5, 0.5, false},
				{3*time.Minute + 5*time.Second, 1, 0, 0, 0, 0, false},
				{3*time.Minute + 15*time.Second, 1, 1, 0.25, 0.25, 0.25, false},
			},
			now: 10 * time.Minute,
			want: []Point{
				{RTTMinMs: 0.5, RTTAvgMs: 0.5, RTTMaxMs: 0.5, Rounds: 1, Sent: 1, Recv: 1},
				{RTTMinMs: 0.25, RTTAvgMs: 0.25, RTTMaxMs: 0.25, LossPct: 50, Rounds: 2, Sent: 2, Recv: 1},
			},
			wantAt: []int{0, 3},
		},
		{
			name: "the hour ends at now: older minutes leave the chart",
			rounds: []roundAt{
				{0, 1, 1, 1, 1, 1, false},
				{30 * time.Minute, 1, 1, 2, 2, 2, false},
				{59 * time.Minute, 1, 1, 3, 3, 3, false},
			},
			now: 89*time.Minute + 59*time.Second, // the hour is minutes 30…89
			want: []Point{
				{RTTMinMs: 2, RTTAvgMs: 2, RTTMaxMs: 2, Rounds: 1, Sent: 1, Recv: 1},
				{RTTMinMs: 3, RTTAvgMs: 3, RTTMaxMs: 3, Rounds: 1, Sent: 1, Recv: 1},
			},
			wantAt: []int{30, 59},
		},
		{
			name:   "an hour without rounds shows nothing",
			rounds: []roundAt{{0, 1, 1, 1, 1, 1, false}},
			now:    61 * time.Minute,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr, _ := New(nil)
				dev := &inventory.Device{Name: "sw1", Address: "192.0.2.1"}
				start := time.Now()
				for _, r := range tc.rounds {
					o := icmpRound(dev, start.Add(r.after), r.sent, r.recv, r.minMs, r.avgMs, r.maxMs)
					if r.err {
						o.Err = errors.New("lookup sw1.example: no such host")
					}
					tr.Record(o)
				}
				time.Sleep(tc.now)
				got := tr.Series("sw1")
				if len(got) != len(tc.want) {
					t.Fatalf("Series = %+v, want %d points", got, len(tc.want))
				}
				for i, w := range tc.want {
					w.At = start.Add(time.Duration(tc.wantAt[i]) * time.Minute).UTC()
					if got[i] != w {
						t.Errorf("point %d = %+v\n           want %+v", i, got[i], w)
					}
				}
			})
		})
	}
}

// The ring wraps: after two hours of rounds each minute's bucket was reused,
// and Series shows exactly the last 60 minutes, each with only its own
// rounds; a round from before the hour the ring holds is left out.
func TestSeriesRingWraps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, _ := New(nil)
		dev := &inventory.Device{Name: "sw1", Address: "192.0.2.1"}
		start := time.Now()
		for m := range 120 {
			for s := 0; s < 60; s += 15 { // 4 rounds a minute, RTT = the minute
				tr.Record(icmpRound(dev, start.Add(time.Duration(m)*time.Minute+time.Duration(s)*time.Second), 1, 1, float64(m), float64(m), float64(m)))
			}
		}
		time.Sleep(119*time.Minute + 30*time.Second)
		// Late rounds: one of minute 60 (the oldest the ring holds) counts,
		// one of minute 59 is too old for it.
		tr.Record(icmpRound(dev, start.Add(60*time.Minute), 1, 0, 0, 0, 0))
		tr.Record(icmpRound(dev, start.Add(59*time.Minute), 1, 0, 0, 0, 0))
		got := tr.Series("sw1")
		if len(got) != SeriesMinutes {
			t.Fatalf("%d points, want %d", len(got), SeriesMinutes)
		}
		for i, p := range got {
			m := 60 + i
			want := Point{At: start.Add(time.Duration(m) * time.Minute).UTC(), RTTMinMs: float64(m), RTTAvgMs: float64(m), RTTMaxMs: float64(m), Rounds: 4, Sent: 4, Recv: 4}
			if i == 0 {
				want.Rounds, want.Sent, want.LossPct = 5, 5, 20
			}
			if p != want {
				t.Errorf("point %d = %+v, want %+v", i, p, want)
			}
		}
	})
}

// Poll failures are kept as runs of alike failures, newest first, at most
// MaxPollErrors; the last good values stay beside them, with their time.
func TestPollErrorsAndValues(t *testing.T) {
	tr, _ := New(nil)
	inv := inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1"})
	dev, _ := inv.Device("sw1")
	at := time.Unix(1_700_000_000, 0).UTC()
	poll := func(i int, vars map[string]any, reason, msg string) {
		o := observation.Observation{Source: observation.SNMP, Device: dev, Time: at.Add(time.Duration(i) * time.Minute), Vars: vars}
		if reason != "" {
			o.Vars, o.Err, o.Reason = nil, errors.New(msg), reason
		}
		tr.Record(o)
	}
	poll(0, map[string]any{"cpu": 12.5, "mem": 40.0, "uptime_s": 3600.0, "uptime_reset": false, "temp_c": 41.0, "serial": "FOC123"}, "", "")
	poll(1, nil, "timeout", "SNMP poll of sw1 (192.0.2.1 port 161): request timeout (after 1 retries)")
	poll(2, nil, "timeout", "SNMP poll of sw1 (192.0.2.1 port 161): request timeout (after 1 retries)")
	poll(3, nil, "auth", "SNMP poll of sw1 (192.0.2.1 port 161): wrong digests")

	d, ok := tr.Detail(inv, "sw1")
	if !ok {
		t.Fatal("Detail: sw1 not found")
	}
	if d.SNMP == nil || !d.SNMP.At.Equal(at) || d.SNMP.Values["temp_c"] != 41.0 || d.SNMP.Values["serial"] != "FOC123" || len(d.SNMP.Values) != 6 {
		t.Errorf("SNMP %+v, want the first poll's six values at %v", d.SNMP, at)
	}
	if d.SNMPState != "auth" || d.CPU == nil || *d.CPU != 12.5 || d.Mem == nil || *d.Mem != 40 || !d.LastPoll.Equal(at.Add(3*time.Minute)) {
		t.Errorf("status %+v", d.Status)
	}
	want := []PollError{
		{Since: at.Add(3 * time.Minute), At: at.Add(3 * time.Minute), Count: 1, Reason: "auth", Error: "SNMP poll of sw1 (192.0.2.1 port 161): wrong digests"},
		{Since: at.Add(time.Minute), At: at.Add(2 * time.Minute), Count: 2, Reason: "timeout", Error: "SNMP poll of sw1 (192.0.2.1 port 161): request timeout (after 1 retries)"},
	}
	if fmt.Sprint(d.PollErrors) != fmt.Sprint(want) {
		t.Errorf("poll errors\n%+v\nwant\n%+v", d.PollErrors, want)
	}
	// The values handed out are a copy: changing them changes nothing kept.
	d.SNMP.Values["cpu"] = 99.0
	if again, _ := tr.Detail(inv, "sw1"); again.SNMP.Values["cpu"] != 12.5 {
		t.Error("Detail's values alias the tracker's")
	}

	// Failures alternating between two reasons fill the ring; the oldest go.
	for i := range 2 * MaxPollErrors {
		poll(10+i, nil, []string{"timeout", "unreachable"}[i%2], fmt.Sprintf("failure %d", i))
	}
	poll(30, map[string]any{"cpu": 5.0}, "", "")
	d, _ = tr.Detail(inv, "sw1")
	if len(d.PollErrors) != MaxPollErrors || d.PollErrors[0].Error != "failure 9" || d.PollErrors[MaxPollErrors-1].Error != "failure 5" {
		t.Errorf("after %d failures: %+v, want failures 9 down to 5", 2*MaxPollErrors, d.PollErrors)
	}
	if d.SNMPState != "ok" || d.SNMPError != "" || *d.CPU != 5 || d.Mem != nil || len(d.SNMP.Values) != 1 {
		t.Errorf("after a good poll: %+v, snmp %+v; want ok with that poll's values only", d.Status, d.SNMP)
	}
}

// A device of the inventory never seen is unknown, with empty (not null)
// series and failures; a name not in the inventory is not found.
func TestDetailOfUnseenAndUnknown(t *testing.T) {
	tr, _ := New(nil)
	inv := inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1", Site: "HQ", Role: "core"})
	d, ok := tr.Detail(inv, "sw1")
	if !ok || d.State != "unknown" || d.Site != "HQ" || d.Role != "core" || d.Series == nil || len(d.Series) != 0 || d.PollErrors == nil || d.SNMP != nil {
		t.Errorf("Detail(sw1) = %+v, %v", d, ok)
	}
	if _, ok := tr.Detail(inv, "sw9"); ok {
		t.Error("Detail(sw9): found a device the inventory lacks")
	}
	if s, ok := tr.Get(inv, "sw1"); !ok || s.Name != "sw1" || s.Address != "192.0.2.1" {
		t.Errorf("Get(sw1) = %+v, %v", s, ok)
	}
	if _, ok := tr.Get(inv, "sw9"); ok {
		t.Error("Get(sw9): found a device the inventory lacks")
	}
}

// Retain drops what was kept of removed devices: series, values, failures
// and the nocbridge_device_up series; a device that comes back starts over.
func TestRetainDropsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	both := inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1"}, inventory.Device{Name: "sw2", Address: "192.0.2.2"})
	now := time.Now()
	for _, name := range []string{"sw1", "sw2"} {
		dev, _ := both.Device(name)
		tr.Record(icmpRound(dev, now, 1, 1, 1, 1, 1))
		tr.Record(observation.Observation{Source: observation.SNMP, Device: dev, Time: now, Err: errors.New("no answer"), Reason: "timeout"})
	}
	tr.Retain(inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1"}))
	if tr.Series("sw2") != nil {
		t.Error("sw2's series survived its removal")
	}
	if len(tr.Series("sw1")) != 1 {
		t.Error("sw1's series was dropped though sw1 stays")
	}
	if n := testutil.CollectAndCount(reg, "nocbridge_device_up"); n != 1 {
		t.Errorf("%d nocbridge_device_up series, want 1", n)
	}
	tr.mu.RLock()
	n := len(tr.devices)
	tr.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d devices kept after Retain, want 1", n)
	}
	d, ok := tr.Detail(both, "sw2") // back in a later reload
	if !ok || d.State != "unknown" || len(d.Series) != 0 || len(d.PollErrors) != 0 {
		t.Errorf("sw2 back: %+v, want a fresh unknown device", d)
	}
}

// Record (the drain goroutine), reads (the API) and Retain (reloads) run
// at once; -race checks the locking.
func TestConcurrentRecordAndRead(t *testing.T) {
	tr, _ := New(prometheus.NewRegistry())
	var devs []inventory.Device
	for i := range 50 {
		devs = append(devs, inventory.Device{Name: fmt.Sprintf("sw%02d", i), Address: fmt.Sprintf("192.0.2.%d", i+1)})
	}
	inv := inventory.Of(devs...)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for r := range 200 {
			for _, d := range inv.Devices() {
				tr.Record(icmpRound(d, start.Add(time.Duration(r)*time.Second), 2, r%3, 1, 2, 3))
				if r%10 == 0 {
					tr.Record(observation.Observation{Source: observation.SNMP, Device: d, Time: start, Vars: map[string]any{"cpu": float64(r)}})
				}
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for range 200 {
				_ = tr.List(inv)
				if d, ok := tr.Detail(inv, "sw07"); ok && d.SNMP != nil {
					_ = d.SNMP.Values["cpu"]
				}
				_ = tr.Series("sw13")
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			tr.Retain(inv)
		}
	})
	wg.Wait()
	if got := tr.Series("sw00"); len(got) == 0 || got[len(got)-1].Rounds == 0 {
		t.Errorf("sw00's series after the run: %+v", got)
	}
}

// TestMemoryAt10kDevices measures what the tracker keeps for 10,000 devices
// with a full hour of rounds each (every bucket of every ring in use), and
// then with an SNMP poll's values and a poll failure each; the figures are
// logged (go test -v -run Memory) and bounded.
func TestMemoryAt10kDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 10,000 devices' hour")
	}
	const n = 10_000
	devs := make([]inventory.Device, n)
	for i := range devs {
		devs[i] = inventory.Device{Name: fmt.Sprintf("dev-%05d", i), Address: fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)}
	}
	inv := inventory.Of(devs...)
	tr, _ := New(nil)
	start := time.Now().Truncate(time.Hour)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// The device_up gauges and observation maps are not the tracker's to
	// count: the maps are garbage once recorded, the gauges live in
	// Prometheus with or without the series (New(nil) leaves them out of
	// any registry but still keeps them in the vector: record them first).
	for _, d := range inv.Devices() {
		tr.deviceUp.WithLabelValues(d.Name).Set(1)
	}
	before := heap()
	for m := range SeriesMinutes {
		for _, d := range inv.Devices() {
			tr.Record(icmpRound(d, start.Add(time.Duration(m)*time.Minute), 1, 1, 0.2, 0.2, 0.2))
		}
	}
	icmpOnly := heap() - before
	for _, d := range inv.Devices() {
		tr.Record(observation.Observation{Source: observation.SNMP, Device: d, Time: start, Vars: map[string]any{
			"cpu": 12.0, "mem": 40.0, "uptime_s": 86400.0, "uptime_reset": false}})
		tr.Record(observation.Observation{Source: observation.SNMP, Device: d, Time: start.Add(time.Minute), Reason: "timeout",
			Err: errors.New("SNMP poll of " + d.Name + " (" + d.Address + " port 161): request timeout (after 1 retries)")})
	}
	all := heap() - before
	runtime.KeepAlive(tr)
	t.Logf("10,000 devices: ICMP state and an hour's series %.1f MB (%d bytes a device); with SNMP values and a poll failure %.1f MB (%d bytes a device)",
		float64(icmpOnly)/(1<<20), icmpOnly/n, float64(all)/(1<<20), all/n)
	if per := icmpOnly / n; per > 1800 {
		t.Errorf("%d bytes a device for ICMP state and series, want at most 1800 (60 buckets of 20 bytes and the record)", per)
	}
	if per := all / n; per > 3000 {
		t.Errorf("%d bytes a device with SNMP values and a failure, want at most 3000", per)
	}
}

// BenchmarkRecordICMP is the cost of one round's Record among 10,000
// devices (the daemon records every round of every device).
func BenchmarkRecordICMP(b *testing.B) {
	const n = 10_000
	devs := make([]inventory.Device, n)
	for i := range devs {
		devs[i] = inventory.Device{Name: fmt.Sprintf("dev-%05d", i), Address: "10.0.0.1"}
	}
	inv := inventory.Of(devs...)
	tr, _ := New(prometheus.NewRegistry())
	list := inv.Devices()
	obs := make([]observation.Observation, n)
	start := time.Now()
	for i, d := range list {
		obs[i] = icmpRound(d, start, 1, 1, 0.2, 0.2, 0.2)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := obs[i%n]
		o.Time = start.Add(time.Duration(i/n) * time.Second)
		tr.Record(o)
	}
}
