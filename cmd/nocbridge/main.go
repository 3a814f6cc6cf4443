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
	"github.com/nocbridge/nocbridge/internal/probe"
	"github.com/nocbridge/nocbridge/internal/receive"
	"github.com/nocbridge/nocbridge/internal/ruletest"
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

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitInvalid
	}
	cmd, args := args[0], args[1:]
	if cmd == "test" {
		return testRules(args, stdout, stderr)
	}
	// `dlq list|replay` and `silence add|list|expire` take their action
	// first; flag parsing stops at the first non-flag, so take it off before
	// parsing (and the ID of `silence expire ID --config …` with it).
	var action, operand string
	if (cmd == "dlq" || cmd == "silence") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	takesID := cmd == "silence" && action == "expire" || cmd == "probe"
	if takesID && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		operand, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "nocbridge %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return exitOK
	case "completion":
		return completion(args, stdout, stderr)
	case "man":
		fmt.Fprint(stdout, manPage())
		return exitOK
	}
	c, ok := lookup(cmd)
	if !ok || c.flags == nil {
		fmt.Fprintf(stderr, "nocbridge: unknown command %q\n\n%s", cmd, usage())
		return exitInvalid
	}
	fs, o := flagSet(c)
	fs.SetOutput(stderr)
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
	logger, err := newLogger(stderr, *o.logFormat, *o.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "nocbridge:", err)
		return exitInvalid
	}
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "check":
		warnings, err := app.Check(*o.config, version)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitCode(err)
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, w) // FILE:LINE: warning: …; valid all the same
		}
		fmt.Fprintf(stdout, "%s: ok\n", *o.config)
		return exitOK
	case "run":
		return runDaemon(ctx, *o.config, logger)
	case "test-notify":
		if *o.destination == "" {
			fmt.Fprintln(stderr, "nocbridge test-notify: --destination is required")
			return exitInvalid
		}
		if err := app.TestNotify(ctx, *o.config, version, *o.destination, *o.eventID, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return exitCode(err)
		}
		return exitOK
	case "receive":
		if err := receive.Run(ctx, *o.listen, *o.secret, stdout); err != nil {
			fmt.Fprintln(stderr, "nocbridge receive:", err)
			return exitRuntime
		}
		return exitOK
	case "dlq":
		dlq := ctl.DLQCommand{Action: action, ID: *o.id, Destination: *o.destination, Limit: *o.limit, Cursor: *o.cursor}
		if err := ctl.DLQ(ctx, *o.config, dlq, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "nocbridge dlq:", err)
			return exitCode(err)
		}
		return exitOK
	case "silence":
		o.silence.Action, o.silence.ID, o.silence.Table = action, operand, !*o.asJSON && onTerminal(stdout)
		if err := ctl.Silence(ctx, *o.config, o.silence, stdout); err != nil {
			fmt.Fprintln(stderr, "nocbridge silence:", err)
			return exitCode(err)
		}
		return exitOK
	case "probe":
		answered, err := probe.Command(ctx, *o.config, operand, *o.asJSON, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "nocbridge probe:", err)
			return exitCode(err)
		}
		if !answered {
			return exitRuntime // the device did not answer: a runtime failure, not bad input
		}
		return exitOK
	}
	return exitInvalid
}

// testRules is `nocbridge test rules FILE…`: 0 when every test passes, 1
// on a mismatch or a file that does not load.
func testRules(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "rules" {
		fmt.Fprint(stderr, "usage: nocbridge test rules FILE…\n")
		return exitInvalid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !ruletest.Run(ctx, args[1:], stdout) {
		return exitInvalid
	}
	return exitOK
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
	if errors.As(err, &ce) || errors.As(err, &e) || errors.Is(err, app.ErrUsage) || errors.Is(err, probe.ErrTarget) {
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
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: readableDurations}
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

// readableDurations logs durations as Go durations ("retry_in":"1.5s")
// rather than the JSON handler's nanoseconds (SPEC 6: readable fields).
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
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
	fs.Var((*listFlag)(&c.Match.Devices), "device", "add: device `NAME` or glob (repeatable)")
	fs.Var((*listFlag)(&c.Match.Sites), "site", "add: `SITE` (repeatable)")
	fs.Var((*listFlag)(&c.Match.Roles), "role", "add: `ROLE` (repeatable)")
	fs.Var(labelFlag{&c.Match.Labels}, "label", "add: device label `KEY=VALUE` (repeatable)")
	fs.Var((*listFlag)(&c.Match.EventIDs), "event-id", "add: event `ID` or glob such as NETWORK-INTERFACES-* (repeatable; default every event)")
	fs.DurationVar(&c.For, "for", 0, "add: how long, from the start: a `DURATION` such as 2h or 30m")
	fs.StringVar(&c.Until, "until", "", "add: when it ends, an `RFC3339` time (instead of --for)")
	fs.StringVar(&c.Start, "start", "", "add: when it starts, an `RFC3339` time (default now)")
	fs.StringVar(&c.Comment, "comment", "", "add: why, as `TEXT` (required)")
	fs.StringVar(&c.CreatedBy, "created-by", os.Getenv("USER"), "add: who asks, by `NAME` (default $USER)")
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
