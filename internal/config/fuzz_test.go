package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Whatever the file holds, Load returns a config or Errors, each at a
// line of that file, and never panics or hangs.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"valid-full.yaml", "invalid-types.yaml", "invalid-unknown-keys.yaml", "invalid-maintenance.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	path := filepath.Join(f.TempDir(), "nocbridge.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		var es Errors
		switch {
		case err == nil && cfg == nil:
			t.Fatal("no config and no error")
		case err != nil && !errors.As(err, &es):
			t.Fatalf("error %T, want Errors: %v", err, err)
		}
		for _, e := range es {
			if e.File != path || e.Msg == "" {
				t.Fatalf("error %q not positioned in the file", e)
			}
		}
	})
}
