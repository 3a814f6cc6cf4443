// Package relay is a TCP relay on loopback for tests: a link between two
// servers that a test can cut (a network partition, a WAN outage) and
// restore, the address staying the same so the client reconnects to it.
package relay

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Link relays every connection made to Addr to its target.
type Link struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	conns  []net.Conn
	down   bool
}

// New listens on a loopback port and relays to target until the test ends;
// with target "" it refuses connections until SetTarget.
func New(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); l.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.relay(c)
		}
	}()
	return l
}

// Addr is the relay's host:port.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// SetTarget sets where connections go (a server known only once started).
func (l *Link) SetTarget(target string) {
	l.mu.Lock()
	l.target = target
	l.mu.Unlock()
}

func (l *Link) relay(c net.Conn) {
	l.mu.Lock()
	target, down := l.target, l.down
	l.mu.Unlock()
	if down || target == "" {
		_ = c.Close()
		return
	}
	u, err := net.Dial("tcp", target)
	if err != nil {
		_ = c.Close()
		return
	}
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		_ = c.Close()
		_ = u.Close()
		return
	}
	l.conns = append(l.conns, c, u)
	l.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
	_, _ = io.Copy(c, u)
	_ = c.Close()
}

// Cut drops the connections relayed and refuses new ones.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

// Restore accepts connections again.
func (l *Link) Restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}
