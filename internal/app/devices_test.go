package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// TestDeviceSeriesOverVeth reads a real device's minutes back through the
// API: real ICMP across a veth pair into a network namespace, a few seconds
// answered, a few with the device's link down, answered again; the series
// counts every round and every echo, lost ones included, and the RTTs of
// the replies.
func TestDeviceSeriesOverVeth(t *testing.T) {
	dev := netns.New(t)
	rcv := newReceiver(t, always(http.StatusOK))
	path := writeConfig(t, t.TempDir(), testConfig{
		Device: dev.Addr.String(), Interval: "500ms", Timeout: "250ms", ReceiverURL: rcv.srv.URL,
		RuleWhen: "loss == 100", RuleFor: "1h", RuleClear: "loss == 0", // no alert: this test reads the device
	})
	a, _ := startApp(t, path)
	waitDeviceState(t, a, "up", 10*time.Second)
	url := "http://" + a.HTTPAddr() + "/api/v1/devices/dut"

	time.Sleep(2 * time.Second)
	dev.LinkDown(t)
	waitDeviceState(t, a, "down", 5*time.Second)
	time.Sleep(1500 * time.Millisecond)
	dev.LinkUp(t)
	waitDeviceState(t, a, "up", 5*time.Second)
	time.Sleep(time.Second)

	var d devstate.Detail
	getJSON(t, url, &d)
	if d.Name != "dut" || d.Address != dev.Addr.String() || d.Site != "Lab" || d.State != "up" {
		t.Errorf("status %+v", d.Status)
	}
	if len(d.Series) == 0 || len(d.Series) > 2 { // the test spans one minute boundary at most
		t.Fatalf("series %+v, want the one or two minutes the test ran in", d.Series)
	}
	t.Logf("series: %+v", d.Series)
	var rounds, sent, recv int
	for i, p := range d.Series {
		if p.At.Second() != 0 || p.At.Nanosecond() != 0 || (i > 0 && !p.At.After(d.Series[i-1].At)) {
			t.Errorf("point %d at %v: minutes start on the minute, oldest first", i, p.At)
		}
		if p.Recv > 0 && (p.RTTMinMs <= 0 || p.RTTMinMs > p.RTTAvgMs || p.RTTAvgMs > p.RTTMaxMs || p.RTTMaxMs >= 250) {
			t.Errorf("point %d: rtt min %v avg %v max %v, want 0 < min ≤ avg ≤ max < the 250ms timeout", i, p.RTTMinMs, p.RTTAvgMs, p.RTTMaxMs)
		}
		if want := 100 * float64(p.Sent-p.Recv) / float64(p.Sent); p.Sent > 0 && p.LossPct != want {
			t.Errorf("point %d: loss %v, want %v (%d of %d echoes lost)", i, p.LossPct, want, p.Sent-p.Recv, p.Sent)
		}
		rounds, sent, recv = rounds+p.Rounds, sent+p.Sent, recv+p.Recv
	}
	// About 5.5 s of 500ms rounds at one echo each: some 11 rounds, at
	// least 3 of them lost while the link was down (1.5 s and more).
	if rounds < 8 || sent != rounds || sent-recv < 2 || recv < 5 {
		t.Errorf("series counts %d rounds, %d echoes, %d answered; want ≥ 8 rounds of one echo, ≥ 2 lost, ≥ 5 answered: %+v", rounds, sent, recv, d.Series)
	}

	resp, err := http.Get("http://" + a.HTTPAddr() + "/api/v1/devices/not-a-device")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown device: %s, want 404", resp.Status)
	}
}
