package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOneLinePerKeyPerInterval(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	now := time.Unix(0, 0)
	l := New(time.Minute)
	l.now = func() time.Time { return now }
	for range 3 {
		l.Log(log, slog.LevelWarn, "a", "rule a failed")
	}
	l.Log(log, slog.LevelWarn, "b", "rule b failed")
	now = now.Add(time.Minute)
	l.Log(log, slog.LevelWarn, "a", "rule a failed")
	want := []string{
		`level=WARN msg="rule a failed"`,
		`level=WARN msg="rule b failed"`,
		`level=WARN msg="rule a failed" suppressed=2`,
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
