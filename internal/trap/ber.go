package trap

import "errors"

// BER tags of the SNMP message envelope.
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagSequence    = 0x30
)

var errMalformed = errors.New("malformed SNMP message")

// header is what the receiver needs from a message before decoding it
// fully: enough to check the community, choose v3 credentials and answer
// engine discovery, without trusting anything past the envelope.
type header struct {
	version   int
	community []byte // v1, v2c

	// v3
	msgFlags      byte
	securityModel int
	engineID      []byte
	userName      []byte
}

// SNMPv3 msgFlags bits (RFC 3412).
const (
	flagAuth       = 0x01
	flagPriv       = 0x02
	flagReportable = 0x04
)

// parseHeader reads the message envelope. The outer SEQUENCE must span the
// datagram exactly: a truncated or padded datagram is malformed.
func parseHeader(b []byte) (header, error) {
	var h header
	tag, msg, rest, err := readTLV(b)
	if err != nil || tag != tagSequence || len(rest) != 0 {
		return h, errMalformed
	}
	v, msg, err := readInt(msg)
	if err != nil {
		return h, err
	}
	h.version = v
	switch v {
	case 0, 1:
		tag, h.community, _, err = readTLV(msg)
		if err != nil || tag != tagOctetString {
			return h, errMalformed
		}
		return h, nil
	case 3:
		return h, parseV3Header(&h, msg)
	}
	return h, errMalformed
}

func parseV3Header(h *header, msg []byte) error {
	tag, global, msg, err := readTLV(msg)
	if err != nil || tag != tagSequence {
		return errMalformed
	}
	if _, global, err = readInt(global); err != nil { // msgID
		return err
	}
	if _, global, err = readInt(global); err != nil { // msgMaxSize
		return err
	}
	tag, flags, global, err := readTLV(global)
	if err != nil || tag != tagOctetString || len(flags) != 1 {
		return errMalformed
	}
	h.msgFlags = flags[0]
	if h.msgFlags&flagPriv != 0 && h.msgFlags&flagAuth == 0 {
		return errMalformed // RFC 3412 7.2 (5): privacy without authentication
	}
	if h.securityModel, _, err = readInt(global); err != nil {
		return err
	}
	tag, sp, _, err := readTLV(msg)
	if err != nil || tag != tagOctetString {
		return errMalformed
	}
	if h.securityModel != 3 {
		return nil // not USM: the caller refuses it
	}
	tag, usm, _, err := readTLV(sp)
	if err != nil || tag != tagSequence {
		return errMalformed
	}
	if tag, h.engineID, usm, err = readTLV(usm); err != nil || tag != tagOctetString {
		return errMalformed
	}
	if _, usm, err = readInt(usm); err != nil { // boots
		return err
	}
	if _, usm, err = readInt(usm); err != nil { // time
		return err
	}
	if tag, h.userName, _, err = readTLV(usm); err != nil || tag != tagOctetString {
		return errMalformed
	}
	return nil
}

// readTLV splits one definite-length BER element off b.
func readTLV(b []byte) (tag byte, value, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errMalformed
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, errMalformed // multi-byte tags never occur in SNMP
	}
	n := int(b[1])
	off := 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 || len(b) < 2+k {
			return 0, nil, nil, errMalformed // indefinite, or longer than any datagram
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		off += k
	}
	if n > len(b)-off {
		return 0, nil, nil, errMalformed
	}
	return tag, b[off : off+n], b[off+n:], nil
}

// readInt reads an INTEGER of at most 32 bits (versions, msgID, boots…).
func readInt(b []byte) (int, []byte, error) {
	tag, v, rest, err := readTLV(b)
	if err != nil || tag != tagInteger || len(v) == 0 || len(v) > 5 {
		return 0, nil, errMalformed
	}
	n := int64(int8(v[0]))
	for _, c := range v[1:] {
		n = n<<8 | int64(c)
	}
	if n < -1<<31 || n > 1<<32-1 {
		return 0, nil, errMalformed
	}
	return int(n), rest, nil
}
