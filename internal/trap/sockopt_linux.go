package trap

import (
	"context"
	"log/slog"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenUDP binds addr with a receive buffer of size bytes. SO_RCVBUFFORCE
// (root or CAP_NET_ADMIN) goes past net.core.rmem_max; otherwise the
// kernel caps SO_RCVBUF there and the effective size is logged.
func listenUDP(addr string, size int, log *slog.Logger) (*net.UDPConn, error) {
	var effective int
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
			}
			effective, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	// The kernel reports double the requested size (bookkeeping overhead).
	if effective/2 < size {
		log.Warn("trap socket receive buffer is smaller than requested; raise net.core.rmem_max or run with CAP_NET_ADMIN",
			"requested_bytes", size, "effective_bytes", effective/2)
	}
	return pc.(*net.UDPConn), nil
}
