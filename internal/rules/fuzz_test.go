package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// Whatever a rule file holds, Parse answers, its errors in that file, and
// never panics or hangs.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../rules/*.yaml")
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range append(files, more...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errs := Parse(data, "fuzz.yaml")
		for _, e := range errs {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("error %q not positioned in the file", e)
			}
		}
	})
}
