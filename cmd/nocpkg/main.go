// Command nocpkg builds nocbridge's .deb and .rpm with nfpm (as a Go
// module: no other tool needed), from the repository it runs in:
//
//	go run ./cmd/nocpkg --version "$(git describe --tags --always)"
//
// The version goes into the binary through -ldflags (nocbridge version,
// the User-Agent of notifications) and becomes the packages' version.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	var o Options
	var formats string
	flag.StringVar(&o.Version, "version", "", "the version, as git describe --tags prints it: v1.2.0, v1.2.0-3-gabc1234 (default: git describe --tags --always --dirty in -repo)")
	flag.StringVar(&o.Commit, "commit", "", "commit the binary is built from (default: git rev-parse --short HEAD)")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "target architecture, as a GOARCH")
	flag.StringVar(&o.Out, "out", "dist", "folder to write the packages to")
	flag.StringVar(&formats, "formats", "deb,rpm", "package formats, comma-separated: deb, rpm")
	flag.StringVar(&o.Maintainer, "maintainer", "nocbridge developers <https://github.com/nocbridge/nocbridge/issues>", "the packages' maintainer")
	flag.StringVar(&o.Repo, "repo", ".", "the repository's root")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nocpkg: unexpected argument %q\n", flag.Arg(0))
		os.Exit(1)
	}
	o.Formats = strings.Split(formats, ",")
	if o.Version == "" {
		o.Version = git(o.Repo, "describe", "--tags", "--always", "--dirty")
	}
	if o.Commit == "" {
		o.Commit = git(o.Repo, "rev-parse", "--short", "HEAD")
	}
	o.MTime = time.Now().UTC().Truncate(time.Second)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			o.MTime = time.Unix(n, 0).UTC()
		}
	} else if ct := git(o.Repo, "log", "-1", "--format=%ct"); ct != "" {
		if n, err := strconv.ParseInt(ct, 10, 64); err == nil {
			o.MTime = time.Unix(n, 0).UTC()
		}
	}
	if o.Version == "" || o.Commit == "" {
		fmt.Fprintln(os.Stderr, "nocpkg: no git here to tell the version and commit: give --version and --commit")
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	built, err := Build(ctx, o)
	for _, b := range built {
		fmt.Printf("%s\t%d bytes\n", b.Path, b.Size)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nocpkg:", err)
		os.Exit(2)
	}
}

// git runs a git command in dir and returns its output, "" if it fails.
func git(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
