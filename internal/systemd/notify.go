// Package systemd speaks the sd_notify protocol (READY=1, WATCHDOG=1,
// RELOADING=1, STOPPING=1) over $NOTIFY_SOCKET. Outside systemd every call
// is a no-op.
package systemd

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notify sends one state string. It returns false when not under systemd.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}

// Reloading announces a reload with the monotonic timestamp systemd wants.
func Reloading() (bool, error) {
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicMicros(), 10))
}

// WatchdogInterval is half of WATCHDOG_USEC (when it addresses this process),
// or 0 when no watchdog is configured.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Watchdog pings systemd at half the watchdog interval while healthy()
// holds, until ctx is done. A wedged process stops pinging and is restarted.
func Watchdog(ctx context.Context, healthy func() bool) {
	every := WatchdogInterval()
	if every == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy() {
				_, _ = Notify("WATCHDOG=1")
			}
		}
	}
}
