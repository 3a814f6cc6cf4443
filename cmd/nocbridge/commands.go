package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/nocbridge/nocbridge/internal/ctl"
)

// command is one entry of the CLI. The list below is the only one: the
// usage text, the nocbridge(1) man page and the shell completion scripts
// are all made from it and from each command's flag set.
type command struct {
	name    string
	actions []string // the first argument, such as dlq's list|replay
	args    string   // what follows the name in the synopsis
	summary string   // one line of usage
	more    []string // further usage lines under the summary
	about   string   // the man page's paragraph (plain text)
	// flags defines the command's own flags; nil for a command that takes
	// none (not even the common --config, --log-format and --log-level).
	flags func(fs *flag.FlagSet, o *options)
}

// options are the parsed flags of one command.
type options struct {
	config, logFormat, logLevel              *string
	destination, eventID, listen, secret, id *string
	cursor                                   *string
	limit                                    *int
	silence                                  ctl.SilenceCommand
	asJSON                                   *bool
}

func noOwnFlags(*flag.FlagSet, *options) {}

var commands = []command{
	{
		name: "run", args: "[--config PATH]", summary: "run the daemon",
		about: "Runs the daemon: pings and polls the inventory, receives traps, evaluates the rules and " +
			"delivers notifications until SIGINT or SIGTERM. SIGHUP reloads the config and every rule file " +
			"atomically: a bad new config is rejected, logged, and the old one keeps running. Under systemd " +
			"(Type=notify) it reports READY=1 once the store is open and the listeners are bound, and " +
			"pings the watchdog while healthy.",
		flags: noOwnFlags,
	},
	{
		name: "check", args: "[--config PATH]", summary: "validate config and rules",
		about: "Validates the config and every rule file it names, and reads every file the config " +
			"names (secrets, certificates, templates). Prints every error as FILE:LINE: message, and " +
			"FILE:LINE: warning: message for settings that work but weaken security. " +
			"Exits 0 when valid (warnings or not), 1 when not.",
		flags: noOwnFlags,
	},
	{
		name: "test-notify", args: "--config PATH --destination NAME [--event-id ID]",
		summary: "send a sample event to a destination",
		about:   "Sends one sample event through the real delivery path to one destination and prints the outcome.",
		flags: func(fs *flag.FlagSet, o *options) {
			o.destination = fs.String("destination", "", "the destination's `NAME`")
			o.eventID = fs.String("event-id", "NETWORK-DEVICES-1-101", "event `ID` of the sample event")
		},
	},
	{
		name: "receive", args: "--listen ADDR [--secret whsec_…]",
		summary: "webhook tester: print and verify requests",
		about: "A webhook receiver for testing destinations: prints every request received, verifies " +
			"Standard Webhooks signatures when given the secret, and answers 204.",
		flags: func(fs *flag.FlagSet, o *options) {
			o.listen = fs.String("listen", "127.0.0.1:9000", "listen on `ADDR` (host:port)")
			o.secret = fs.String("secret", "", "the whsec_… `SECRET` to verify Standard Webhooks signatures with")
		},
	},
	{
		name: "dlq", actions: []string{"list", "replay"}, args: "list|replay [--id ID] [--destination NAME] [--limit N [--cursor C]]",
		summary: "list or replay dead letters of the running daemon",
		about: "Lists the dead letters of the running daemon, or replays them (all, one by id, or one " +
			"destination's), through its HTTP API at http.listen with the token of http.token_file.",
		flags: func(fs *flag.FlagSet, o *options) {
			o.id = fs.String("id", "", "replay only the dead letter with this `ID` (its webhook-id)")
			o.destination = fs.String("destination", "", "list or replay only the dead letters of the destination `NAME`")
			o.limit = fs.Int("limit", 0, "list at most `N` (0: all of them); the next page's command goes to stderr")
			o.cursor = fs.String("cursor", "", "list the page that starts at `CURSOR` (from the previous page)")
		},
	},
	{
		name: "silence", actions: []string{"add", "list", "expire"}, args: "add|list|expire …",
		summary: "silences of the running daemon:",
		more: []string{
			"  add --device NAME [--site S] [--role R] [--label K=V] [--event-id GLOB]",
			"      (--for 2h | --until RFC3339) [--start RFC3339] --comment TEXT [--created-by NAME]",
			"  list [--json]",
			"  expire ID",
		},
		about: "Adds, lists or ends silences on the running daemon, through its HTTP API. " +
			"A silence mutes the alerts it matches for a while; match flags may be repeated, " +
			"and every kind given must match. add prints the new silence's id; list prints a table on a " +
			"terminal and the API's JSON otherwise; expire ID ends one now.",
		flags: func(fs *flag.FlagSet, o *options) { o.asJSON = silenceFlags(fs, &o.silence) },
	},
	{
		name: "probe", args: "[--config PATH] [--json] DEVICE|ADDRESS",
		summary: "ping, SNMP and trap acceptance of one device, with the daemon's settings",
		more:    []string{"  [--config PATH] [--json] DEVICE|ADDRESS   (exit 0 answered, 2 did not)"},
		about: "Probes one device of the inventory (by name or address) by hand, with the daemon's own settings: " +
			"one round of ICMP echoes with its count, timeout and socket mode (loss, min/avg/max/mdev RTT); " +
			"one SNMP poll with its profile (sysName, sysDescr, sysUpTime, the CPU chain), or the reason it " +
			"failed (timeout, auth, unreachable); and whether the receiver would accept its traps. " +
			"Human output, JSON with --json. Exits 0 when the device answered, 2 when it did not, 1 on a bad " +
			"config or target. It touches nothing of a running daemon.",
		flags: func(fs *flag.FlagSet, o *options) {
			o.asJSON = fs.Bool("json", false, "print the result as JSON")
		},
	},
	{
		name: "test", actions: []string{"rules"}, args: "rules FILE…",
		summary: "run rule unit tests on a simulated clock",
		about: "Runs rule unit test files (SPEC 13.1: rule_files, config or devices, inputs of traps, " +
			"ICMP samples and SNMP values, the notifications expected) through the real rules, alert " +
			"manager, noise control and routing on a simulated clock. Exits 0 when every test passes, " +
			"1 with a diff (expected against got, times as offsets) on a mismatch or a file that does not load.",
	},
	{
		name: "version", summary: "print version information",
		about: "Prints the version (from the git tag the binary was built from), the commit, the Go version and the platform.",
	},
	{
		name: "completion", actions: []string{"bash", "zsh", "fish"}, args: "bash|zsh|fish",
		summary: "print a shell completion script",
		about: "Prints the completion script for bash, zsh or fish. The packages install them; " +
			"by hand: nocbridge completion bash > /etc/bash_completion.d/nocbridge.",
	},
	{
		name: "man", summary: "print the nocbridge(1) man page (roff)",
		about: "Prints this manual page in roff, as the packages install it: nocbridge man | man -l -",
	},
	{name: "help", summary: "print this help", about: "Prints the list of commands."},
}

// commonFlags come with every command that takes flags.
func commonFlags(fs *flag.FlagSet, o *options) {
	o.config = fs.String("config", defaultConfig(), "the config file's `PATH`")
	o.logFormat = fs.String("log-format", "auto", "log `FORMAT`: auto (text on a terminal, else JSON), text or json")
	o.logLevel = fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
}

// flagValues are the values the completion scripts offer for a flag;
// newLogger accepts exactly these (TestFlagValuesAccepted).
var flagValues = map[string][]string{
	"log-format": {"auto", "text", "json"},
	"log-level":  {"debug", "info", "warn", "error"},
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// flagSet returns c's flags (its own, then the common ones) bound to o.
func flagSet(c command) (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	o := &options{}
	if c.flags != nil {
		c.flags(fs, o)
		commonFlags(fs, o)
	}
	return fs, o
}

// commonFlagNames are the flags every command with flags has.
func commonFlagNames() map[string]bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	commonFlags(fs, &options{})
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: nocbridge <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		line := fmt.Sprintf("  %-12s %s", c.name, c.summary)
		if c.args != "" && c.more == nil {
			line = fmt.Sprintf("%-51s  %s", line, c.args)
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
		for _, m := range c.more {
			b.WriteString("               " + m + "\n")
		}
	}
	b.WriteString("\nCommon flags: --config PATH, --log-format auto|text|json, --log-level debug|info|warn|error.\n")
	b.WriteString("Default config: $NOCBRIDGE_CONFIG, else /etc/nocbridge/nocbridge.yaml.\n")
	b.WriteString("More: nocbridge man | man -l -\n")
	return b.String()
}
