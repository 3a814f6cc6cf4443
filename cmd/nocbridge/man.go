package main

import (
	"flag"
	"fmt"
	"strings"
)

// manPage renders nocbridge(1) in roff (man macros) from the command list
// and the commands' flag sets, so it cannot drift from what --help says.
func manPage() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p(`.TH NOCBRIDGE 1 "" "nocbridge %s" "User Commands"`, roffText(version))
	p(".SH NAME")
	p(`nocbridge \- network-monitoring alert bridge with Cisco DNA Center-style notifications`)
	p(".SH SYNOPSIS")
	p(".B nocbridge")
	p(".I command")
	p("[\\fIflags\\fR]")
	p(".SH DESCRIPTION")
	p("%s", roffText("nocbridge watches switches, routers and other network devices (ICMP ping, SNMP polling, "+
		"SNMP traps), evaluates YAML rules, and notifies chat rooms and ticketing systems when a device goes "+
		"down, its CPU runs high, an interface drops, and so on. Its notifications mirror Cisco DNA Center "+
		"(Catalyst Center) event notifications. Every notification is stored durably before it counts as "+
		"sent, is delivered at least once with a stable webhook-id, or lands in a dead-letter queue with its reason."))
	p(".SH COMMANDS")
	common := commonFlagNames()
	for _, c := range commands {
		p(".TP")
		p(`\fBnocbridge %s\fR %s`, roffText(c.name), roffSynopsis(c.args))
		p("%s", roffText(c.about))
		if c.more != nil {
			p(".RS")
			p(".nf")
			for _, m := range c.more {
				p("%s", roffText(m))
			}
			p(".fi")
			p(".RE")
		}
		fs, _ := flagSet(c)
		var own []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) {
			if !common[f.Name] {
				own = append(own, f)
			}
		})
		if len(own) > 0 {
			p(".RS")
			for _, f := range own {
				manFlag(p, f)
			}
			p(".RE")
		}
	}
	p(".SH COMMON OPTIONS")
	p("%s", roffText("Every command that takes flags takes these:"))
	fs, _ := flagSet(commands[0])
	fs.VisitAll(func(f *flag.Flag) {
		if common[f.Name] {
			manFlag(p, f)
		}
	})
	p(".SH ENVIRONMENT")
	p(".TP")
	p(".B NOCBRIDGE_CONFIG")
	p("%s", roffText("The config file when --config is not given; without it, /etc/nocbridge/nocbridge.yaml."))
	p(".SH FILES")
	for _, f := range [][2]string{
		{"/etc/nocbridge/nocbridge.yaml", "The config (strict YAML: an unknown key is an error with its file and line). Relative paths in it resolve from its folder."},
		{"/etc/nocbridge/rules/*.yaml", "The rule catalog the packages ship, and your own rules beside it."},
		{"/etc/nocbridge/secrets/", "Files holding secrets (*_file keys), mode 0600, owned by the user nocbridge. The packages create each one the shipped config names with a value generated on the machine, never shipped."},
		{"/etc/nocbridge/tls/", "The HTTPS certificate and key of the API (http.tls); the packages create a self-signed pair."},
		{"/var/lib/nocbridge/", "The embedded store (state_dir): alert state, the outbox, dead letters, silences."},
		{"/usr/lib/systemd/system/nocbridge.service", "The systemd unit; installing the package neither enables nor starts it."},
	} {
		p(".TP")
		p(".I %s", roffText(f[0]))
		p("%s", roffText(f[1]))
	}
	p(".SH EXIT STATUS")
	p(".TP")
	p(".B 0")
	p("success")
	p(".TP")
	p(".B 1")
	p("invalid input or config")
	p(".TP")
	p(".B 2")
	p("runtime failure")
	p(".SH SIGNALS")
	p("%s", roffText("SIGHUP reloads the config and rules of nocbridge run (systemctl reload nocbridge); "+
		"SIGINT and SIGTERM stop it."))
	p(".SH LOGS")
	p("%s", roffText("Logs go to standard error as text on a terminal and as JSON lines otherwise "+
		"(journald picks them up under systemd)."))
	p(".SH SEE ALSO")
	p(`\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd-sysusers\fR(8), \fBsystemd-tmpfiles\fR(8)`)
	return b.String()
}

// manFlag writes one flag as a tagged paragraph: name, value, usage, default.
func manFlag(p func(string, ...any), f *flag.Flag) {
	name, use := flag.UnquoteUsage(f)
	p(".TP")
	if name != "" {
		p(`\fB\-\-%s\fR \fI%s\fR`, roffText(f.Name), roffText(name))
	} else {
		p(`\fB\-\-%s\fR`, roffText(f.Name))
	}
	text := use
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" && f.Name != "config" && f.Name != "created-by" {
		text += " (default " + f.DefValue + ")"
	}
	if f.Name == "config" {
		text += " (default $NOCBRIDGE_CONFIG, else /etc/nocbridge/nocbridge.yaml)"
	}
	p("%s", roffText(text))
}

// roffText escapes plain text for roff: backslashes, and a leading dot or
// quote that would make the line a request.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "…", "...") // plain ASCII: no preconv needed
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffSynopsis sets a command's arguments: flags in bold, the rest as is.
func roffSynopsis(args string) string {
	words := strings.Fields(args)
	for i, w := range words {
		lead := strings.TrimLeft(w, "[(")
		if strings.HasPrefix(lead, "--") {
			pre := w[:len(w)-len(lead)]
			name := lead
			post := ""
			if j := strings.IndexAny(lead, "])"); j >= 0 {
				name, post = lead[:j], lead[j:]
			}
			words[i] = roffText(pre) + `\fB` + roffText(name) + `\fR` + roffText(post)
		} else {
			words[i] = roffText(w)
		}
	}
	return strings.Join(words, " ")
}
