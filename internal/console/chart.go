package console

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/devstate"
)

// chart is a device's last hour of ICMP results, laid out for the SVG in
// device.html: RTT (average as a line with points, min–max as a band) on
// top, loss as bars in a strip of its own below, minutes along the bottom.
// Minutes without results, and minutes where no reply came back, break the
// line: a gap is never drawn as a fast round trip.
type chart struct {
	Empty bool
	W, H  int
	// The plot's edges: RTT area and loss strip share the x range.
	Left, Right, RTTTop, RTTBottom, LossTop, LossBottom float64
	XTicks                                              []tick
	YTicks                                              []tick // RTT
	Band, Line                                          string // SVG path data
	Points                                              []chartPoint
	Loss                                                []lossBar
	Summary                                             string
	Rows                                                []chartRow
}

type tick struct {
	Pos   float64
	Label string
}

type chartPoint struct {
	X, Y  float64
	Title string
}

type lossBar struct {
	X, Y, W, H float64
	Title      string
}

// chartRow is one minute for the table beside the chart.
type chartRow struct {
	At                     string
	Min, Avg, Max, LossPct float64
	Rounds                 int
	Replies                bool
}

const chartSpan = time.Hour

// buildChart lays out the points of the hour before now.
func buildChart(points []devstate.Point, now time.Time, loc *time.Location) chart {
	c := chart{W: 720, H: 236, Left: 56, Right: 700, RTTTop: 10, RTTBottom: 150, LossTop: 170, LossBottom: 206}
	start := now.Add(-chartSpan)
	var in []devstate.Point
	for _, p := range points {
		if !p.At.Before(start.Truncate(time.Minute)) && !p.At.After(now) {
			in = append(in, p)
		}
	}
	for i := 0; i <= 4; i++ {
		t := start.Add(time.Duration(i) * chartSpan / 4)
		c.XTicks = append(c.XTicks, tick{Pos: round1(c.x(t, start)), Label: t.In(loc).Format("15:04")})
	}
	if len(in) == 0 {
		c.Empty = true
		c.Summary = "No ICMP results in the last hour."
		return c
	}
	top := 0.0
	for _, p := range in {
		top = math.Max(top, p.RTTMaxMs)
	}
	top = niceCeil(top)
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{Pos: round1(c.RTTBottom - f*(c.RTTBottom-c.RTTTop)), Label: trimFloat(f*top) + " ms"})
	}
	y := func(v float64) float64 { return round1(c.RTTBottom - v/top*(c.RTTBottom-c.RTTTop)) }
	minuteW := (c.Right - c.Left) / chartSpan.Minutes()

	var line, band strings.Builder
	var seg []devstate.Point
	flush := func() {
		if len(seg) == 0 {
			return
		}
		for i, p := range seg {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&line, "%s%.1f %.1f ", cmd, c.x(p.At, start), y(p.RTTAvgMs))
			fmt.Fprintf(&band, "%s%.1f %.1f ", cmd, c.x(p.At, start), y(p.RTTMaxMs))
		}
		for i := len(seg) - 1; i >= 0; i-- {
			fmt.Fprintf(&band, "L%.1f %.1f ", c.x(seg[i].At, start), y(seg[i].RTTMinMs))
		}
		band.WriteString("Z ")
		seg = seg[:0]
	}
	var sumAvg, lo, hi, worstLoss float64
	lo = math.Inf(1)
	replied, lossy := 0, 0
	for i, p := range in {
		if i > 0 && p.At.Sub(in[i-1].At) > time.Minute {
			flush()
		}
		at := p.At.In(loc).Format("15:04")
		replies := p.LossPct < 100
		row := chartRow{At: at, Min: p.RTTMinMs, Avg: p.RTTAvgMs, Max: p.RTTMaxMs, LossPct: p.LossPct, Rounds: p.Rounds, Replies: replies}
		c.Rows = append(c.Rows, row)
		if p.LossPct > 0 {
			lossy++
			worstLoss = math.Max(worstLoss, p.LossPct)
			h := p.LossPct / 100 * (c.LossBottom - c.LossTop)
			c.Loss = append(c.Loss, lossBar{X: round1(c.x(p.At, start)), Y: round1(c.LossBottom - h), W: round1(math.Max(1, minuteW-1)), H: round1(h),
				Title: fmt.Sprintf("%s: %s%% loss over %d rounds", at, trimFloat(p.LossPct), p.Rounds)})
		}
		if !replies {
			flush()
			continue
		}
		replied++
		sumAvg += p.RTTAvgMs
		lo, hi = math.Min(lo, p.RTTMinMs), math.Max(hi, p.RTTMaxMs)
		seg = append(seg, p)
		c.Points = append(c.Points, chartPoint{X: round1(c.x(p.At, start)), Y: y(p.RTTAvgMs),
			Title: fmt.Sprintf("%s: RTT avg %s ms (min %s, max %s), loss %s%%", at, trimFloat(p.RTTAvgMs), trimFloat(p.RTTMinMs), trimFloat(p.RTTMaxMs), trimFloat(p.LossPct))})
	}
	flush()
	c.Line, c.Band = strings.TrimSpace(line.String()), strings.TrimSpace(band.String())
	rtt := "no replies"
	if replied > 0 {
		rtt = fmt.Sprintf("RTT average %s ms (lowest %s, highest %s)", trimFloat(round2(sumAvg/float64(replied))), trimFloat(lo), trimFloat(hi))
	}
	loss := "no loss"
	if lossy > 0 {
		loss = fmt.Sprintf("loss in %d of them (worst %s%%)", lossy, trimFloat(worstLoss))
	}
	c.Summary = fmt.Sprintf("Last hour: %d minutes with results; %s; %s.", len(in), rtt, loss)
	return c
}

// x is t's position on the time axis.
func (c chart) x(t, start time.Time) float64 {
	return math.Max(c.Left, c.Left+float64(t.Sub(start))/float64(chartSpan)*(c.Right-c.Left))
}

// StripW and StripH are the loss strip's size.
func (c chart) StripW() float64 { return c.Right - c.Left }
func (c chart) StripH() float64 { return c.LossBottom - c.LossTop }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1 ms).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// trimFloat writes v with at most two decimals and no trailing zeros.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
