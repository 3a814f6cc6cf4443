package webhooksig

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference test vector.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignVector(t *testing.T) {
	got, err := Sign(vecSecret, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != vecSig {
		t.Fatalf("Sign = %q, want %q", got, vecSig)
	}
}

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

func TestVerify(t *testing.T) {
	now := time.Unix(vecTS, 0)
	other, _ := Sign("whsec_"+"c2VjcmV0LXR3bw==", vecID, now, []byte(vecBody))
	tests := []struct {
		name    string
		secret  string
		h       http.Header
		body    string
		now     time.Time
		wantErr error
	}{
		{"valid", vecSecret, headers(vecID, "1614265330", vecSig), vecBody, now, nil},
		{"valid among several", vecSecret, headers(vecID, "1614265330", "v1a,bm9wZQ== "+other+" "+vecSig), vecBody, now, nil},
		{"valid within tolerance", vecSecret, headers(vecID, "1614265330", vecSig), vecBody, now.Add(4 * time.Minute), nil},
		{"tampered body", vecSecret, headers(vecID, "1614265330", vecSig), `{"test": 2432232315}`, now, ErrNoValidSignature},
		{"tampered id", vecSecret, headers("msg_other", "1614265330", vecSig), vecBody, now, ErrNoValidSignature},
		{"wrong secret", "whsec_c2VjcmV0LXR3bw==", headers(vecID, "1614265330", vecSig), vecBody, now, ErrNoValidSignature},
		{"garbage signature", vecSecret, headers(vecID, "1614265330", "v1,!!!"), vecBody, now, ErrNoValidSignature},
		{"only other versions", vecSecret, headers(vecID, "1614265330", "v1a,abc v2,def"), vecBody, now, ErrNoV1Signature},
		{"too old", vecSecret, headers(vecID, "1614265330", vecSig), vecBody, now.Add(6 * time.Minute), ErrTimestampTooOld},
		{"too new", vecSecret, headers(vecID, "1614265330", vecSig), vecBody, now.Add(-6 * time.Minute), ErrTimestampTooNew},
		{"bad timestamp", vecSecret, headers(vecID, "yesterday", vecSig), vecBody, now, ErrInvalidTimestamp},
		{"missing id", vecSecret, headers("", "1614265330", vecSig), vecBody, now, ErrMissingHeaders},
		{"missing signature", vecSecret, headers(vecID, "1614265330", ""), vecBody, now, ErrMissingHeaders},
		{"bad secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers(vecID, "1614265330", vecSig), vecBody, now, ErrSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.h, []byte(tt.body), tt.now, 0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyCustomTolerance(t *testing.T) {
	now := time.Unix(vecTS, 0).Add(time.Hour)
	if err := Verify(vecSecret, headers(vecID, "1614265330", vecSig), []byte(vecBody), now, 2*time.Hour); err != nil {
		t.Fatalf("Verify with 2h tolerance: %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		secret string
		ok     bool
	}{
		{vecSecret, true},
		{"whsec_c2VjcmV0", true},   // 6 bytes: no padding needed
		{"whsec_c2VjcmV0LQ", true}, // unpadded
		{"whsec_", false},
		{"whsec_not base64!", false},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},
		{"", false},
	}
	for _, tt := range tests {
		key, err := ParseSecret(tt.secret)
		if (err == nil) != tt.ok {
			t.Errorf("ParseSecret(%q) error = %v, want ok=%v", tt.secret, err, tt.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrSecret) {
				t.Errorf("ParseSecret(%q) error %v is not ErrSecret", tt.secret, err)
			}
			if tt.secret != "" && strings.Contains(err.Error(), strings.TrimPrefix(tt.secret, "whsec_")) && len(tt.secret) > 6 {
				t.Errorf("ParseSecret error leaks the secret")
			}
		} else if len(key) == 0 {
			t.Errorf("ParseSecret(%q) returned an empty key", tt.secret)
		}
	}
}

func TestSignRejectsBadSecret(t *testing.T) {
	if _, err := Sign("plain", vecID, time.Unix(vecTS, 0), nil); !errors.Is(err, ErrSecret) {
		t.Fatalf("Sign with a plain secret: %v, want ErrSecret", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(vecID, "1614265330", vecSig, []byte(vecBody))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		// Must never panic, and a signature we compute must always verify.
		_ = Verify(vecSecret, headers(id, ts, sig), body, time.Unix(vecTS, 0), 0)
		if id == "" || strings.ContainsAny(id, "\r\n\x00") {
			return
		}
		s, err := Sign(vecSecret, id, time.Unix(vecTS, 0), body)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(vecSecret, headers(id, "1614265330", s), body, time.Unix(vecTS, 0), 0); err != nil {
			t.Fatalf("own signature does not verify: %v", err)
		}
	})
}
