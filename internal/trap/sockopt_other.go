//go:build !linux

package trap

import (
	"log/slog"
	"net"
)

func listenUDP(addr string, size int, log *slog.Logger) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	if err := c.SetReadBuffer(size); err != nil {
		log.Warn("setting trap socket receive buffer failed", "err", err)
	}
	return c, nil
}
