// Package webhooksig signs and verifies webhooks per the Standard Webhooks
// specification (https://www.standardwebhooks.com): the signature is
// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" where the key is the
// base64 part of a "whsec_…" secret.
package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names, lower case as the specification writes them (net/http
// canonicalises them on the wire anyway).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far webhook-timestamp may be from now before a
// message is refused as a possible replay.
const DefaultTolerance = 5 * time.Minute

const prefix = "whsec_"

var (
	ErrSecret            = errors.New("secret must be whsec_ followed by base64")
	ErrMissingHeaders    = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrInvalidTimestamp  = errors.New("webhook-timestamp is not unix seconds")
	ErrTimestampTooOld   = errors.New("webhook-timestamp is too old")
	ErrTimestampTooNew   = errors.New("webhook-timestamp is too far in the future")
	ErrNoValidSignature  = errors.New("no matching v1 signature")
	ErrNoV1Signature     = errors.New("no v1 signature in webhook-signature")
	errEmptySecretDecode = errors.New("secret key is empty")
)

// ParseSecret returns the HMAC key of a whsec_ secret. Its errors never
// contain the secret.
func ParseSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, prefix)
	if !ok {
		return nil, ErrSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Some generators omit padding; accept that too.
		key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
		if err != nil {
			return nil, ErrSecret
		}
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrSecret, errEmptySecretDecode)
	}
	return key, nil
}

func mac(key []byte, id string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(ts, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Sign returns the webhook-signature value for one message.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return SignKey(key, id, ts, body), nil
}

// SignKey is Sign with an already parsed key, for senders that validate the
// secret once at load.
func SignKey(key []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body))
}

// Verify checks a received message: headers present, timestamp within
// tolerance of now (0 means DefaultTolerance), and at least one of the
// space-separated v1 signatures matching, compared in constant time.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id, tsRaw, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(tsRaw), 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	switch t := time.Unix(ts, 0); {
	case now.Sub(t) > tolerance:
		return fmt.Errorf("%w: %s ago (tolerance %s)", ErrTimestampTooOld, now.Sub(t).Truncate(time.Second), tolerance)
	case t.Sub(now) > tolerance:
		return fmt.Errorf("%w: %s ahead (tolerance %s)", ErrTimestampTooNew, t.Sub(now).Truncate(time.Second), tolerance)
	}
	want := mac(key, id, ts, body)
	sawV1 := false
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a: asymmetric) are not ours to check
		}
		sawV1 = true
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	if !sawV1 {
		return ErrNoV1Signature
	}
	return ErrNoValidSignature
}
