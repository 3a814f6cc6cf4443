package icmp

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// timeoutConn answers its first `timeouts` writes with a passed deadline.
type timeoutConn struct {
	packetConn
	timeouts, writes int
}

func (c *timeoutConn) SetWriteDeadline(time.Time) error { return nil }

func (c *timeoutConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.writes++
	if c.writes <= c.timeouts {
		return 0, os.ErrDeadlineExceeded
	}
	return len(b), nil
}

// errConn fails every write with err.
type errConn struct {
	timeoutConn
	err error
}

func (c *errConn) WriteTo([]byte, net.Addr) (int, error) { c.writes++; return 0, c.err }

func TestWriteEcho(t *testing.T) {
	dst := &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}
	tests := []struct {
		name     string
		timeouts int
		want     error
		writes   int
	}{
		{"sent at once", 0, nil, 1},
		{"a deadline passed while the process waited for CPU", 1, nil, 2},
		{"a send buffer that stays full", 5, os.ErrDeadlineExceeded, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &timeoutConn{timeouts: tt.timeouts}
			if err := writeEcho(c, []byte("echo"), dst); !errors.Is(err, tt.want) || c.writes != tt.writes {
				t.Errorf("writeEcho: %v after %d writes, want %v after %d", err, c.writes, tt.want, tt.writes)
			}
		})
	}
	// Other errors are not retried.
	c := &errConn{err: syscall.EHOSTUNREACH}
	if err := writeEcho(c, []byte("echo"), dst); !errors.Is(err, syscall.EHOSTUNREACH) || c.writes != 1 {
		t.Errorf("writeEcho: %v after %d writes, want EHOSTUNREACH after 1", err, c.writes)
	}
}
