package probe

import (
	"testing"
	"time"
)

func TestPingStatsPerEchoTimeout(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	tests := []struct {
		name string
		sent int
		rtts []time.Duration
		want PingStats
	}{
		{"all in time", 4, []time.Duration{ms(1), ms(2), ms(3), ms(4)},
			PingStats{Sent: 4, Recv: 4, Min: ms(1), Avg: ms(2.5), Max: ms(4), Mdev: time.Duration(1118033)}},
		{"one late, one lost", 4, []time.Duration{ms(2), ms(1500), ms(2)},
			PingStats{Sent: 4, Recv: 2, Late: 1, Loss: 50, Min: ms(2), Avg: ms(2), Max: ms(2)}},
		{"none", 3, nil, PingStats{Sent: 3, Loss: 100}},
		{"nothing sent", 0, nil, PingStats{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got PingStats
			got.fill(tc.sent, tc.rtts, time.Second)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
