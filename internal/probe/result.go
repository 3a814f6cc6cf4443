package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one probe: what was asked, each step's outcome, and whether
// the device answered (to ping or SNMP). Its JSON form is the API's answer
// and `nocbridge probe --json`'s output.
type Result struct {
	Target      string      `json:"target"`           // as asked: a device name or an address
	Device      string      `json:"device,omitempty"` // the inventory device, "" for an address outside it
	Address     string      `json:"address"`
	Site        string      `json:"site,omitempty"`
	Role        string      `json:"role,omitempty"`
	InInventory bool        `json:"in_inventory"`
	Note        string      `json:"note,omitempty"`
	Ping        PingReport  `json:"ping"`
	SNMP        SNMPReport  `json:"snmp"`
	Traps       TrapsReport `json:"traps"`
	Answered    bool        `json:"answered"`
	Took        Duration    `json:"took"`
}

// PingReport is the ICMP round.
type PingReport struct {
	Skipped  string   `json:"skipped,omitempty"` // why no echo was sent
	Count    int      `json:"count,omitempty"`
	Timeout  Duration `json:"timeout"`
	Socket   string   `json:"socket,omitempty"` // ping socket | raw socket
	IP       string   `json:"ip,omitempty"`
	Sent     int      `json:"sent"`
	Received int      `json:"received"`
	Late     int      `json:"late,omitempty"` // replies past the timeout, counted lost as the daemon counts them
	LossPct  float64  `json:"loss_pct"`
	MinMs    float64  `json:"rtt_min_ms"`
	AvgMs    float64  `json:"rtt_avg_ms"`
	MaxMs    float64  `json:"rtt_max_ms"`
	MdevMs   float64  `json:"rtt_mdev_ms"`
	Error    string   `json:"error,omitempty"`
}

// SNMPReport is the SNMP poll: the values read, or why it failed.
type SNMPReport struct {
	Skipped string   `json:"skipped,omitempty"`
	Profile string   `json:"profile,omitempty"` // its name in snmp.profiles
	Version string   `json:"version,omitempty"`
	User    string   `json:"user,omitempty"` // v3
	Port    int      `json:"port,omitempty"`
	OK      bool     `json:"ok"`
	Reason  string   `json:"reason,omitempty"` // timeout | auth | unreachable | error
	Error   string   `json:"error,omitempty"`
	Hint    string   `json:"hint,omitempty"` // what the reason usually means
	Took    Duration `json:"took"`

	SysName   string   `json:"sys_name,omitempty"`
	SysDescr  string   `json:"sys_descr,omitempty"`
	UptimeS   *float64 `json:"uptime_s,omitempty"`
	CPUPct    *float64 `json:"cpu_pct,omitempty"`
	CPUSource string   `json:"cpu_source,omitempty"`
	MemPct    *float64 `json:"mem_pct,omitempty"`
	MemSource string   `json:"mem_source,omitempty"`
}

// TrapsReport says which of the device's traps the receiver would let in.
type TrapsReport struct {
	Skipped        string      `json:"skipped,omitempty"`
	UnknownSources string      `json:"unknown_sources,omitempty"` // traps.unknown_sources
	Checks         []TrapCheck `json:"checks,omitempty"`
}

// TrapCheck is one kind of trap judged by the receiver's checks.
type TrapCheck struct {
	What     string `json:"what"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"` // the drop reason, as nocbridge_traps_dropped_total counts it
	Detail   string `json:"detail"`
	Device   string `json:"device,omitempty"`
}

// Check is one line of the verdict, as the console shows it.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Checks are the probe's verdicts, one per step: ping, snmp, then one per
// kind of trap judged. A skipped step is not OK and says why.
func (r Result) Checks() []Check {
	cs := []Check{r.pingCheck(), r.snmpCheck()}
	if r.Traps.Skipped != "" {
		return append(cs, Check{Name: "traps", Detail: r.Traps.Skipped})
	}
	for _, t := range r.Traps.Checks {
		detail := t.Detail
		if !t.Accepted && t.Reason != "" {
			detail = fmt.Sprintf("dropped (%s): %s", t.Reason, t.Detail)
		}
		cs = append(cs, Check{Name: "traps", OK: t.Accepted, Detail: t.What + ": " + detail})
	}
	return cs
}

func (r Result) pingCheck() Check {
	p := r.Ping
	if p.Skipped != "" {
		return Check{Name: "ping", Detail: p.Skipped}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d answered, %g%% loss", p.Received, p.Sent, p.LossPct)
	if p.Received > 0 {
		fmt.Fprintf(&b, ", rtt min/avg/max/mdev %.3f/%.3f/%.3f/%.3f ms", p.MinMs, p.AvgMs, p.MaxMs, p.MdevMs)
	}
	if p.Late > 0 {
		fmt.Fprintf(&b, ", %d late past the timeout", p.Late)
	}
	fmt.Fprintf(&b, " (%s, timeout %s)", cmpOr(p.Socket, "no socket"), p.Timeout)
	if p.Error != "" {
		b.WriteString(": " + p.Error)
	}
	return Check{Name: "ping", OK: p.Received > 0, Detail: b.String()}
}

func (r Result) snmpCheck() Check {
	s := r.SNMP
	if s.Skipped != "" {
		return Check{Name: "snmp", Detail: s.Skipped}
	}
	if !s.OK {
		return Check{Name: "snmp", Detail: fmt.Sprintf("%s after %s (profile %s): %s; %s", s.Reason, s.Took, s.Profile, s.Error, s.Hint)}
	}
	parts := []string{fmt.Sprintf("v%s (profile %s) answered in %s", s.Version, s.Profile, s.Took)}
	if s.SysName != "" {
		parts = append(parts, "sysName "+s.SysName)
	}
	if s.UptimeS != nil {
		parts = append(parts, "up "+time.Duration(*s.UptimeS*float64(time.Second)).Round(time.Second).String())
	}
	if s.CPUPct != nil {
		parts = append(parts, fmt.Sprintf("cpu %.1f%% (%s)", *s.CPUPct, s.CPUSource))
	} else {
		parts = append(parts, "cpu: none of the known MIBs")
	}
	if s.MemPct != nil {
		parts = append(parts, fmt.Sprintf("mem %.1f%% (%s)", *s.MemPct, s.MemSource))
	}
	if s.SysDescr != "" {
		parts = append(parts, "sysDescr "+firstLine(s.SysDescr))
	}
	return Check{Name: "snmp", OK: true, Detail: strings.Join(parts, ", ")}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

// MarshalJSON adds "checks", the same lines as the human form, to the
// JSON form.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		Checks []Check `json:"checks"`
	}{plain(r), r.Checks()})
}

// WriteText writes the human form: the device, one aligned line per check,
// and the verdict.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	who := r.Address
	if r.Device != "" {
		who = fmt.Sprintf("%s (%s)", r.Device, r.Address)
		if r.Site != "" || r.Role != "" {
			who += fmt.Sprintf(", site %s, role %s", cmpOr(r.Site, "-"), cmpOr(r.Role, "-"))
		}
	}
	if r.Note != "" {
		who += ": " + r.Note
	}
	fmt.Fprintf(tw, "device\t\t%s\n", who)
	for _, c := range r.Checks() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, map[bool]string{true: "ok", false: "FAIL"}[c.OK], c.Detail)
	}
	verdict := "the device answered"
	if !r.Answered {
		verdict = "the device did not answer (neither ping nor SNMP)"
	}
	fmt.Fprintf(tw, "result\t\t%s, in %s\n", verdict, r.Took)
	return tw.Flush()
}

// Duration reads as a Go duration in JSON ("1.5s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
