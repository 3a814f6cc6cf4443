// Command nocbridge is the daemon and its tools. It stays thin: flags,
// signals and logging; everything else is internal/app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/nocbridge/nocbridge/internal/app"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/receive"
)

// Set by the build: -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes (SPEC 2).
const (
	exitOK      = 0
	exitInvalid = 1
	exitRuntime = 2
)

const usage = `usage: nocbridge <command> [flags]

commands:
  run          run the daemon                     [--config PATH]
  check        validate config and rules          [--config PATH]
  test-notify  send a sample event to a destination  --config PATH --destination NAME [--event-id ID]
  receive      webhook tester: print and verify requests  --listen ADDR [--secret whsec_…]
  dlq          list or replay dead letters of the running daemon  list|replay [--id ID] [--destination NAME]
                 list [--limit N [--cursor C]]: a page; the next page's command goes to stderr
  silence      silences of the running daemon:
                 add --device NAME [--site S] [--role R] [--label K=V] [--event-id GLOB]
                     (--for 2h | --until RFC3339) [--start RFC3339] --comment TEXT [--created-by NAME]
                 list [--json]
                 expire ID
  version      print version information

Common flags: --log-format auto|text|json, --log-level debug|info|warn|error.
Default config: $NOCBRIDGE_CONFIG, else /etc/nocbridge/nocbridge.yaml.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitInvalid
	}
	cmd, args := args[0], args[1:]
	// `dlq list|replay` and `silence add|list|expire` take their action
	// first; flag parsing stops at the first non-flag, so take it off before
	// parsing (and the ID of `silence expire ID --config …` with it).
	var action, operand string
	if (cmd == "dlq" || cmd == "silence") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	takesID := cmd == "silence" && action == "expire"
	if takesID && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		operand, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", defaultConfig(), "config file")
	logFormat := fs.String("log-format", "auto", "log format: auto (text on a terminal, else JSON), text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	var destination, eventID, listen, secret, id, cursor *string
	var limit *int
	var silence ctl.SilenceCommand
	var asJSON *bool
	switch cmd {
	case "test-notify":
		destination = fs.String("destination", "", "destination name")
		eventID = fs.String("event-id", "NETWORK-DEVICES-1-101", "event id of the sample event")
	case "receive":
		listen = fs.String("listen", "127.0.0.1:9000", "address to listen on")
		secret = fs.String("secret", "", "whsec_… secret to verify Standard Webhooks signatures")
	case "dlq":
		id = fs.String("id", "", "replay only this dead letter (webhook-id)")
		destination = fs.String("destination", "", "list or replay only this destination's dead letters")
		limit = fs.Int("limit", 0, "list at most this many (0: all of them)")
		cursor = fs.String("cursor", "", "list the page this cursor starts (from the previous page)")
	case "silence":
		asJSON = silenceFlags(fs, &silence)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "nocbridge %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "run", "check":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "nocbridge: unknown command %q\n\n%s", cmd, usage)
		return exitInvalid
	}
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	rest := fs.Args()
	if takesID && operand == "" && len(rest) > 0 {
		operand, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "nocbridge %s: unexpected argument %q\n", cmd, rest[0])
		return exitInvalid
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "nocbridge:", err)
		return exitInvalid
	}
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "check":
		warnings, err := app.Check(*configPath, version)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitCode(err)
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, w) // FILE:LINE: warning: …; valid all the same
		}
		fmt.Fprintf(stdout, "%s: ok\n", *configPath)
		return exitOK
	case "run":
		return runDaemon(ctx, *configPath, logger)
	case "test-notify":
		if *destination == "" {
			fmt.Fprintln(stderr, "nocbridge test-notify: --destination is required")
			return exitInvalid
		}
		if err := app.TestNotify(ctx, *configPath, version, *destination, *eventID, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return exitCode(err)
		}
		return exitOK
	case "receive":
		if err := receive.Run(ctx, *listen, *secret, stdout); err != nil {
			fmt.Fprintln(stderr, "nocbridge receive:", err)
			return exitRuntime
		}
		return exitOK
	case "dlq":
		dlq := ctl.DLQCommand{Action: action, ID: *id, Destination: *destination, Limit: *limit, Cursor: *cursor}
		if err := ctl.DLQ(ctx, *configPath, dlq, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "nocbridge dlq:", err)
			return exitCode(err)
		}
		return exitOK
	case "silence":
		silence.Action, silence.ID, silence.Table = action, operand, !*asJSON && onTerminal(stdout)
		if err := ctl.Silence(ctx, *configPath, silence, stdout); err != nil {
			fmt.Fprintln(stderr, "nocbridge silence:", err)
			return exitCode(err)
		}
		return exitOK
	}
	return exitInvalid
}

func runDaemon(ctx context.Context, configPath string, logger *slog.Logger) int {
	a, err := app.New(app.Options{ConfigPath: configPath, Version: version, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitCode(err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = a.Reload(ctx) // a rejected reload is logged; the old config keeps running
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		logger.Error("nocbridge failed", "err", err)
		return exitCode(err)
	}
	return exitOK
}

// exitCode: 1 for invalid input/config, 2 for runtime failures.
func exitCode(err error) int {
	var ce config.Errors
	var e config.Error
	if errors.As(err, &ce) || errors.As(err, &e) || errors.Is(err, app.ErrUsage) {
		return exitInvalid
	}
	return exitRuntime
}

func defaultConfig() string {
	if p := os.Getenv("NOCBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "/etc/nocbridge/nocbridge.yaml"
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "auto" {
		format = "json"
		if onTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want auto, text or json", format)
}

func onTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// silenceFlags binds `silence`'s flags to c; the returned flag is --json.
func silenceFlags(fs *flag.FlagSet, c *ctl.SilenceCommand) *bool {
	fs.Var((*listFlag)(&c.Match.Devices), "device", "add: device name or glob (repeatable)")
	fs.Var((*listFlag)(&c.Match.Sites), "site", "add: site (repeatable)")
	fs.Var((*listFlag)(&c.Match.Roles), "role", "add: role (repeatable)")
	fs.Var(labelFlag{&c.Match.Labels}, "label", "add: device label KEY=VALUE (repeatable)")
	fs.Var((*listFlag)(&c.Match.EventIDs), "event-id", "add: event ID or glob such as NETWORK-INTERFACES-* (repeatable; default every event)")
	fs.DurationVar(&c.For, "for", 0, "add: how long, from the start (2h, 30m)")
	fs.StringVar(&c.Until, "until", "", "add: when it ends, RFC 3339 (instead of --for)")
	fs.StringVar(&c.Start, "start", "", "add: when it starts, RFC 3339 (default now)")
	fs.StringVar(&c.Comment, "comment", "", "add: why (required)")
	fs.StringVar(&c.CreatedBy, "created-by", os.Getenv("USER"), "add: who asks")
	return fs.Bool("json", false, "list: print JSON even on a terminal")
}

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// labelFlag collects KEY=VALUE flags into a map.
type labelFlag struct{ m *map[string]string }

func (l labelFlag) String() string {
	if l.m == nil || len(*l.m) == 0 {
		return ""
	}
	return fmt.Sprint(*l.m)
}

func (l labelFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, such as vendor=cisco")
	}
	if *l.m == nil {
		*l.m = map[string]string{}
	}
	(*l.m)[k] = val
	return nil
}
