// Command nocbench runs nocbridge's benchmarks against their peers (fping,
// snmptrapd…) in the same run on the same machine, and prints ratios.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// benchmarks maps a subcommand to its runner; each lives in its own file.
var benchmarks = map[string]func(ctx context.Context, args []string) error{}

func main() {
	if len(os.Args) < 2 || benchmarks[os.Args[1]] == nil {
		names := make([]string, 0, len(benchmarks))
		for n := range benchmarks {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: nocbench <%v> [flags]\n", names)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchmarks[os.Args[1]](ctx, os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "nocbench:", err)
		os.Exit(2)
	}
}
