package icmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
)

// reply is an echo reply that carries our nonce, on its way to the scheduler.
type reply struct {
	fam   family
	seq   uint16
	src   netip.Addr
	stamp int64     // send time echoed back in the payload
	at    time.Time // when the reader got it: the end of the RTT
}

// readBufLen holds any echo reply of ours; longer datagrams (other
// programs' pings seen by a raw socket) are truncated, which is harmless.
const readBufLen = 1500

// readRetryDelay paces the reader after an unexpected socket error.
const readRetryDelay = 100 * time.Millisecond

// read passes the socket's echo replies to out until ctx is done or the
// socket is closed.
func (e *Engine) read(ctx context.Context, s *socket, out chan<- reply) {
	buf := make([]byte, readBufLen)
	var lastErr string
	for {
		n, from, err := s.conn.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			if msg := err.Error(); msg != lastErr { // log a failure once, not on every retry
				e.log.Warn("reading ICMP socket failed; retrying", "family", s.fam, "err", err)
				lastErr = msg
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(readRetryDelay):
			}
			continue
		}
		if lastErr != "" {
			e.log.Info("reading ICMP socket works again", "family", s.fam)
			lastErr = ""
		}
		r, ok := e.parseReply(s, buf[:n], from)
		if !ok {
			continue
		}
		r.at = at
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
	}
}

// parseReply accepts echo replies to this engine: our ID (raw sockets only,
// ping sockets get theirs rewritten by the kernel) and our nonce.
func (e *Engine) parseReply(s *socket, b []byte, from net.Addr) (reply, bool) {
	m, err := icmp.ParseMessage(s.fam.proto(), b)
	if err != nil || m.Type != s.fam.echoReply() {
		return reply{}, false
	}
	echo, ok := m.Body.(*icmp.Echo)
	if !ok || (s.raw && uint16(echo.ID) != e.id) {
		return reply{}, false
	}
	if len(echo.Data) < payloadLen || !bytes.Equal(echo.Data[:nonceLen], e.nonce[:]) {
		return reply{}, false
	}
	src, ok := addrOf(from)
	if !ok {
		return reply{}, false
	}
	return reply{
		fam:   s.fam,
		seq:   uint16(echo.Seq),
		src:   src,
		stamp: int64(binary.BigEndian.Uint64(echo.Data[nonceLen:payloadLen])),
	}, true
}

// echoRequest marshals echo request seq, stamped with its send time.
func (e *Engine) echoRequest(fam family, seq uint16, stamp int64) ([]byte, error) {
	payload := make([]byte, payloadLen)
	copy(payload, e.nonce[:])
	binary.BigEndian.PutUint64(payload[nonceLen:], uint64(stamp))
	m := icmp.Message{Type: fam.echoRequest(), Body: &icmp.Echo{ID: int(e.id), Seq: int(seq), Data: payload}}
	return m.Marshal(nil) // ICMPv6 checksums are the kernel's job: no pseudo-header needed
}
