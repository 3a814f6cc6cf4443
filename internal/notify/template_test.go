package notify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/tmpl"
)

// A destination's template_file renders within the same budget as rule
// templates: a runaway one fails at load (check) quickly, naming its file,
// and at send time RenderTemplate stops it.
func TestTemplateFileBudget(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	start := time.Now()
	_, err := LoadTemplate(write("big.tmpl", `{{ range 300000000 }}{{ json $.Description }}{{ end }}`), Env{BaseDir: dir})
	if !errors.Is(err, tmpl.ErrBudget) || !strings.Contains(err.Error(), "big.tmpl") {
		t.Fatalf("LoadTemplate = %v; want the render budget's error naming the file", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v", took)
	}
	// Fine on the sample event, too big on a real one.
	tm, err := LoadTemplate(write("per-label.tmpl", `{{ range .Device.Labels }}{{ range 100000 }}{{ . }}{{ end }}{{ end }}`), Env{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Sample("", SampleTime)
	ev.Device.Labels = map[string]string{"vendor": "cisco"}
	if _, err := RenderTemplate(tm, NewTemplateData(ev, "msg_1", "")); !errors.Is(err, tmpl.ErrBudget) {
		t.Errorf("RenderTemplate = %v; want the render budget's error", err)
	}
}

// A template_file or tls.ca_file that never ends (/dev/zero) is an error at
// load, not a hang of check.
func TestFilesNamedByADestinationAreBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := LoadTemplate("/dev/zero", Env{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadTemplate(/dev/zero) = %v; want a size error", err)
	}
	d := config.Destination{Name: "hook"}
	d.TLS.CAFile = "/dev/zero"
	if _, err := NewHTTPClient(d, ""); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("NewHTTPClient(ca_file /dev/zero) = %v; want a size error", err)
	}
}
