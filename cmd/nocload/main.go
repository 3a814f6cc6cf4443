// Command nocload is a SNMPv2c trap load generator: pre-encoded linkDown
// traps, paced, from several sockets bound to consecutive 127.0.0.x
// addresses. It only sends to loopback.
//
//	go run ./cmd/nocload -target 127.0.0.1:9162 -rate 100000 -duration 10s -sources 16
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nocbridge/nocbridge/internal/trap/loadgen"
)

func main() {
	target := flag.String("target", "127.0.0.1:9162", "receiver address (loopback only)")
	rate := flag.Int("rate", 10000, "traps per second, all sources together")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	sources := flag.Int("sources", 16, "source sockets, bound to 127.0.0.10 and up")
	community := flag.String("community", "public", "SNMPv2c community")
	flag.Parse()

	to, err := netip.ParseAddrPort(*target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nocload: -target %q: %v\n", *target, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, loadgen.Config{Target: to, Rate: *rate, Duration: *duration, Sources: *sources, Community: *community})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "nocload:", err)
		os.Exit(2)
	}
	fmt.Printf("sent %d traps in %s (%.0f/s) from %d sources to %s, %d send errors\n",
		res.Sent, res.Elapsed.Round(time.Millisecond), res.Rate(), *sources, to, res.Errors)
}
