package ruletest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Run loads and runs every test of every file and writes a report to w:
// a line per passing test, and for a failing one the notifications wanted
// and got, times shown as offsets from the start, and how they differ. A
// file that does not load is reported with every problem at its FILE:LINE.
// It returns whether everything passed.
func Run(ctx context.Context, paths []string, w io.Writer) bool {
	ok := true
	for _, p := range paths {
		f, err := Load(p)
		if err != nil {
			fmt.Fprintln(w, err)
			ok = false
			continue
		}
		for _, t := range f.Tests {
			report, passed, err := f.Check(ctx, t)
			if err != nil {
				fmt.Fprintf(w, "FAIL %s:%d %q: %v\n", f.Path, t.Line, t.Name, err)
				ok = false
				continue
			}
			io.WriteString(w, report)
			ok = ok && passed
		}
	}
	return ok
}

// Check runs one test and returns its report and whether it passed; err is
// a simulation that could not run.
func (f *File) Check(ctx context.Context, t *Test) (report string, passed bool, err error) {
	started := time.Now()
	res, err := f.run(ctx, t)
	if err != nil {
		return "", false, err
	}
	took := time.Since(started)
	diffs := f.compare(t.expect, res.sent)
	head := fmt.Sprintf("%s:%d %q (%s simulated in %s)", f.Path, t.Line, t.Name, offset(res.simulated), took.Round(time.Microsecond))
	if len(diffs) == 0 {
		return "ok   " + head + "\n", true, nil
	}
	var b strings.Builder
	b.WriteString("FAIL " + head + "\n")
	b.WriteString("  want:\n")
	if len(t.expect) == 0 {
		b.WriteString("    (nothing)\n")
	}
	for _, e := range sortedExpect(t.expect) {
		fmt.Fprintf(&b, "    %-7s %-8s %s (line %d)\n", offset(e.At.D()), e.Status, expectLabel(e), e.line)
	}
	b.WriteString("  got:\n")
	if len(res.sent) == 0 {
		b.WriteString("    (nothing)\n")
	}
	for _, s := range sortedSent(res.sent) {
		fmt.Fprintf(&b, "    %-7s %-8s %s\n", offset(s.at), s.ev.Status, sentLabel(s))
	}
	b.WriteString("  differences:\n")
	for _, d := range diffs {
		b.WriteString("    " + d + "\n")
	}
	if res.logs != "" {
		b.WriteString("  logged:\n")
		for _, l := range strings.Split(strings.TrimRight(res.logs, "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	return b.String(), false, nil
}

// compare matches each expectation to a notification of the same event,
// device, status (and key, when given): at the same time first, then at
// another time (reported as a wrong time). What is left is missing or
// unexpected; a matched pair may still differ in payload fields.
func (f *File) compare(expect []expected, got []sent) []string {
	exp, gs := sortedExpect(expect), sortedSent(got)
	used := make([]bool, len(gs))
	pair := make([]int, len(exp))
	for i := range pair {
		pair[i] = -1
	}
	for pass := 0; pass < 2; pass++ {
		for i, e := range exp {
			if pair[i] >= 0 {
				continue
			}
			for j, s := range gs {
				if !used[j] && same(e, s) && (pass == 1 || s.at == e.At.D()) {
					pair[i], used[j] = j, true
					break
				}
			}
		}
	}
	var diffs []string
	for i, e := range exp {
		if pair[i] < 0 {
			diffs = append(diffs, fmt.Sprintf("line %d: missing: %s %s %s", e.line, offset(e.At.D()), e.Status, expectLabel(e)))
			continue
		}
		s := gs[pair[i]]
		if s.at != e.At.D() {
			diffs = append(diffs, fmt.Sprintf("line %d: %s %s came at %s, want %s", e.line, e.Status, expectLabel(e), offset(s.at), offset(e.At.D())))
		}
		for _, d := range f.fieldDiffs(e, s) {
			diffs = append(diffs, fmt.Sprintf("line %d: %s %s %s: %s", e.line, offset(e.At.D()), e.Status, expectLabel(e), d))
		}
	}
	for j, s := range gs {
		if !used[j] {
			diffs = append(diffs, fmt.Sprintf("unexpected: %s %s %s", offset(s.at), s.ev.Status, sentLabel(s)))
		}
	}
	return diffs
}

func same(e expected, s sent) bool {
	return s.ev.EventID == e.EventID && s.ev.Device.Name == e.Device && string(s.ev.Status) == e.Status &&
		(e.Key == nil || *e.Key == s.ev.Key)
}

// fieldDiffs compares the payload fields the expectation gives with the
// DNA Center payload the notification carries.
func (f *File) fieldDiffs(e expected, s sent) []string {
	p := s.ev.DNAC(f.cfg.ExternalURL)
	var out []string
	str := func(field string, want *string, got string) {
		if want != nil && *want != got {
			out = append(out, fmt.Sprintf("%s %q, want %q", field, got, *want))
		}
	}
	str("name", e.Name, p.Name)
	str("description", e.Description, p.Description)
	str("category", e.Category, p.Category)
	str("domain", e.Domain, p.Domain)
	str("sub_domain", e.SubDomain, p.SubDomain)
	str("source", e.Source, p.Source)
	if e.Severity != nil && *e.Severity != p.Severity {
		out = append(out, fmt.Sprintf("severity %d, want %d", p.Severity, *e.Severity))
	}
	if e.Destinations != nil {
		want := slices.Sorted(slices.Values(e.Destinations))
		if !slices.Equal(want, s.destinations) {
			out = append(out, fmt.Sprintf("destinations [%s], want [%s]", strings.Join(s.destinations, ", "), strings.Join(want, ", ")))
		}
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ok := p.Details[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("details[%q] absent, want %q", k, e.Details[k]))
		case got != e.Details[k]:
			out = append(out, fmt.Sprintf("details[%q] %q, want %q", k, got, e.Details[k]))
		}
	}
	return out
}

func expectLabel(e expected) string {
	s := e.EventID + " " + e.Device
	if e.Key != nil {
		s += " key " + strconv.Quote(*e.Key)
	}
	return s
}

func sentLabel(s sent) string {
	l := s.ev.EventID + " " + s.ev.Device.Name
	if s.ev.Key != "" {
		l += " key " + strconv.Quote(s.ev.Key)
	}
	return l
}

func sortedExpect(in []expected) []expected {
	out := append([]expected(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// sortedSent orders by time, then by what they are about: notifications
// of one moment are dispatched concurrently, so their order is not theirs.
func sortedSent(in []sent) []sent {
	out := append([]sent(nil), in...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.at != b.at {
			return a.at < b.at
		}
		return sentLabel(a)+string(a.ev.Status) < sentLabel(b)+string(b.ev.Status)
	})
	return out
}

// offset writes a duration from the start as test files do: 40s, 5m,
// 1h20m, 12h20s, 2m30.5s.
func offset(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s")
	}
	return b.String()
}
