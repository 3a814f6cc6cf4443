package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Secret is a string that never prints: fmt, slog, JSON and YAML output all
// show "<redacted>". Use Reveal() only where the value goes on the wire.
type Secret string

const redacted = "<redacted>"

func (s Secret) Reveal() string               { return string(s) }
func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalYAML() (any, error)    { return redacted, nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s Secret) IsZero() bool                 { return s == "" }

// Bounds on what is read of a file a config names, so a path such as
// /dev/zero fails instead of hanging or filling memory: MaxSmallFile for
// secrets, certificates and templates, MaxConfigFile for the config and
// rule files (10,000 devices fit well inside).
const (
	MaxSmallFile  = 1 << 20
	MaxConfigFile = 64 << 20
)

// ReadFile reads a whole file of at most limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, err
}

func readBounded(path string) ([]byte, error) { return ReadFile(path, MaxSmallFile) }

// ResolveSecret returns the inline value, or the trimmed content of file
// (relative to baseDir). Setting both is an error. The error never contains
// the secret, only the file name.
func ResolveSecret(inline Secret, file, baseDir string) (Secret, error) {
	if inline != "" && file != "" {
		return "", fmt.Errorf("set either the value or the _file key, not both")
	}
	if file == "" {
		return inline, nil
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(baseDir, file)
	}
	b, err := readBounded(file)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", file)
	}
	return Secret(v), nil
}
