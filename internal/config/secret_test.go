package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every way a Secret can be printed or serialised shows "<redacted>".
func TestSecretRedacts(t *testing.T) {
	const value = "s3cr3t-value"
	s := Secret(value)
	type holder struct {
		Token Secret `json:"token" yaml:"token"`
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "token", s, "holder", holder{s})
	var jsonOut bytes.Buffer
	enc := json.NewEncoder(&jsonOut)
	enc.SetEscapeHTML(false) // keep <redacted> readable
	if err := enc.Encode(holder{s}); err != nil {
		t.Fatal(err)
	}
	yamlOut, err := yaml.Marshal(holder{s})
	if err != nil {
		t.Fatal(err)
	}
	text, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%s": fmt.Sprintf("%s", s), "%v": fmt.Sprintf("%v", s), "%q": fmt.Sprintf("%q", s),
		"%#v": fmt.Sprintf("%#v", s), "%+v struct": fmt.Sprintf("%+v", holder{s}), "%x": fmt.Sprintf("%x", s),
		"String": s.String(), "GoString": s.GoString(), "slog": logged.String(),
		"json": jsonOut.String(), "yaml": string(yamlOut), "text": string(text),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) || !strings.Contains(out, "<redacted>") {
			t.Errorf("%s does not redact: %d bytes, want <redacted>", name, len(out))
		}
	}
	if s.Reveal() != value || s.IsZero() || !Secret("").IsZero() {
		t.Error("Reveal/IsZero")
	}
}

func TestAsErrors(t *testing.T) {
	positioned := Error{File: "a.yaml", Line: 3, Msg: "bad"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"Errors", Errors{positioned, {File: "a.yaml", Line: 1, Msg: "first"}}, "a.yaml:3: bad\na.yaml:1: first"},
		{"Error", fmt.Errorf("wrapped: %w", positioned), "a.yaml:3: bad"},
		{"*Error", fmt.Errorf("wrapped: %w", &positioned), "a.yaml:3: bad"},
		{"plain", fmt.Errorf("boom"), "f.yaml: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := AsErrors(tt.err, "f.yaml")
			if got := es.Error(); got != tt.want {
				t.Errorf("AsErrors = %q, want %q", got, tt.want)
			}
		})
	}
	sorted := Errors{{File: "b", Line: 1}, {File: "a", Line: 9, Msg: "x"}, {File: "a", Line: 2}, {File: "a", Line: 9, Msg: "y"}}.Sorted()
	if got := sorted.Error(); got != "a:2: \na:9: x\na:9: y\nb:1: " {
		t.Errorf("Sorted = %q", got)
	}
	if (Errors{}).Err() != nil {
		t.Error("empty Errors.Err() != nil")
	}
}
