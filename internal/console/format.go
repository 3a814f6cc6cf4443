package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// funcs are the templates' helpers that need no clock; times go through the
// view's methods (Time, Ago, Age), which know the clock and the zone.
var funcs = template.FuncMap{
	// path escapes one path segment: a device named "a/b?c" links to
	// /devices/a%2Fb%3Fc.
	"path": url.PathEscape,
	"join": strings.Join,
	"sev":  func(s int) string { return "P" + strconv.Itoa(s) },
	"num":  func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
	"ms": func(f float64) string {
		if f < 10 {
			return strconv.FormatFloat(f, 'f', 2, 64)
		}
		return strconv.FormatFloat(f, 'f', 1, 64)
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + "%" },
	"pctp": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return strconv.FormatFloat(*f, 'f', 0, 64) + "%"
	},
	"uptime": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return ageText(time.Duration(*f) * time.Second)
	},
	"dur": func(d time.Duration) string {
		if d < time.Second {
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
		}
		return notify.ShortDuration(d.Round(10 * time.Millisecond))
	},
	"span":         ageText,
	"navItems":     func() any { return navItems },
	"assetVersion": func() string { return assetVersion },
	"silenceFor":   silenceLink,
	// alertList hands the alerts table its rows and the page's view (for
	// times).
	"alertList": func(v *view, rows []alertRow) alertList { return alertList{View: v, Rows: rows} },
	// vantageRows hands the nodes' results table its rows and the page's
	// view (for times).
	"vantageRows": func(v *view, rows []vantage.Result) vantageList { return vantageList{View: v, Rows: rows} },
	"count": func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + many
	},
}

// Time is t in the console's zone, to the second; "—" for the zero time.
func (v *view) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.loc()).Format("2006-01-02 15:04:05 MST")
}

// Clock is t's time of day in the console's zone.
func (v *view) Clock(t time.Time) string { return t.In(v.loc()).Format("15:04") }

// ISO is t in RFC 3339, for <time datetime>.
func (v *view) ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Ago is how long before the page t was, or how long after ("in 5m").
func (v *view) Ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := v.Now.Sub(t)
	if d < 0 {
		return "in " + ageText(-d)
	}
	return ageText(d) + " ago"
}

// Age is how long t has lasted by the page's time: "3h 12m".
func (v *view) Age(t time.Time) string { return ageText(v.Now.Sub(t)) }

// loc is the zone of the console that made the view.
func (v *view) loc() *time.Location {
	if v.zone == nil {
		return time.Local
	}
	return v.zone
}

// ageText is a duration at the precision an operator reads: "12s", "4m
// 10s", "3h 12m", "2d 3h".
func ageText(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch s := int64(d / time.Second); {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
	}
}

// vantageList is the data of the "vantagerows" table template.
type vantageList struct {
	View *view
	Rows []vantage.Result
}

// alertList is the data of the "alerts" table template.
type alertList struct {
	View *view
	Rows []alertRow
}
