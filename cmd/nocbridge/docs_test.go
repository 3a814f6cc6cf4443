package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// Usage, man page and completions come from one list; each must show every
// command and every flag of it.
func TestEveryCommandEverywhere(t *testing.T) {
	man := manPage()
	scripts := map[string]string{"bash": bashCompletion(), "zsh": zshCompletion(), "fish": fishCompletion()}
	for _, c := range commands {
		if !strings.Contains(usage(), "\n  "+c.name+" ") {
			t.Errorf("usage lacks %s", c.name)
		}
		if !strings.Contains(man, `\fBnocbridge `+roffText(c.name)+`\fR`) {
			t.Errorf("man page lacks %s", c.name)
		}
		fs, _ := flagSet(c)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(man, `\fB\-\-`+roffText(f.Name)+`\fR`) {
				t.Errorf("man page lacks %s --%s", c.name, f.Name)
			}
		})
		for shell, s := range scripts {
			if !strings.Contains(s, c.name) {
				t.Errorf("%s completion lacks %s", shell, c.name)
			}
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(s, f.Name) {
					t.Errorf("%s completion lacks %s --%s", shell, c.name, f.Name)
				}
			})
		}
	}
	for _, args := range [][]string{{"help"}, {"man"}, {"completion", "bash"}, {"completion", "zsh"}, {"completion", "fish"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitOK || stdout.Len() == 0 {
			t.Errorf("nocbridge %v: exit %d, %d bytes out, stderr %q", args, code, stdout.Len(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"completion", "tcsh"}, &stdout, &stderr); code != exitInvalid || !strings.Contains(stderr.String(), "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, stderr %q", code, stderr.String())
	}
}

// The values the completions offer are the ones the flags accept.
func TestFlagValuesAccepted(t *testing.T) {
	for _, f := range flagValues["log-format"] {
		if _, err := newLogger(os.Stderr, f, "info"); err != nil {
			t.Errorf("--log-format %s offered but refused: %v", f, err)
		}
	}
	for _, l := range flagValues["log-level"] {
		if _, err := newLogger(os.Stderr, "text", l); err != nil {
			t.Errorf("--log-level %s offered but refused: %v", l, err)
		}
	}
}

// groff in its strictest warning mode finds nothing to say.
func TestManPageRenders(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		netns.SkipOrFail(t, "groff is not installed (Debian: groff-base)")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(manPage())
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("groff: %v\n%s", err, out)
	}
	cmd = exec.Command("groff", "-man", "-Tutf8")
	cmd.Stdin = strings.NewReader(manPage())
	out, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	plain := stripOverstrike(string(out))
	for _, want := range []string{"nocbridge check [--config PATH]", "--log-level LEVEL", "NOCBRIDGE_CONFIG", "/etc/nocbridge/nocbridge.yaml"} {
		if !strings.Contains(plain, want) {
			t.Errorf("rendered man page lacks %q", want)
		}
	}
}

// stripOverstrike removes grotty's bold and underline (char BS char) and
// SGR sequences.
func stripOverstrike(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		if i+2 < len(r) && r[i+1] == '\b' {
			continue
		}
		if r[i] == '\b' {
			continue
		}
		if r[i] == 0x1b {
			for i < len(r) && r[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteRune(r[i])
	}
	return b.String()
}

// The bash script completes what a user types, in a real bash.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		netns.SkipOrFail(t, "bash is not installed")
	}
	script := filepath.Join(t.TempDir(), "nocbridge.bash")
	if err := os.WriteFile(script, []byte(bashCompletion()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		line []string // the words typed, the last one being completed
		want []string
	}{
		{[]string{"nocbridge", "ch"}, []string{"check"}},
		{[]string{"nocbridge", "c"}, []string{"check", "completion"}},
		{[]string{"nocbridge", "dlq", ""}, []string{"list", "replay"}},
		{[]string{"nocbridge", "completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"nocbridge", "check", "--log-format", "j"}, []string{"json"}},
		{[]string{"nocbridge", "run", "--log-level", "w"}, []string{"warn"}},
		{[]string{"nocbridge", "silence", "add", "--js"}, []string{"--json"}},
		{[]string{"nocbridge", "test-notify", "--dest"}, []string{"--destination"}},
		{[]string{"nocbridge", "check", "--config", script[:len(script)-5]}, []string{script}},
		{[]string{"nocbridge", "test-notify", "--destination", ""}, nil},
	} {
		var words strings.Builder
		for _, w := range tt.line {
			words.WriteString(" '" + w + "'")
		}
		prog := "source " + script + "\nCOMP_WORDS=(" + words.String() + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(tt.line)-1) + "\n_nocbridge\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", tt.line, err, out)
		}
		got := strings.Fields(string(out))
		if !slices.Equal(got, tt.want) {
			t.Errorf("completing %q: got %q, want %q", tt.line, got, tt.want)
		}
	}
}

// fish completes from the script too; zsh at least parses it.
func TestFishAndZshCompletion(t *testing.T) {
	dir := t.TempDir()
	t.Run("fish", func(t *testing.T) {
		if _, err := exec.LookPath("fish"); err != nil {
			netns.SkipOrFail(t, "fish is not installed (Debian: fish)")
		}
		script := filepath.Join(dir, "nocbridge.fish")
		if err := os.WriteFile(script, []byte(fishCompletion()), 0o644); err != nil {
			t.Fatal(err)
		}
		for line, want := range map[string][]string{
			"nocbridge dlq ":                      {"list", "replay"},
			"nocbridge check --log-format ":       {"auto", "text", "json"},
			"nocbridge silence add --crea":        {"--created-by"},
			"nocbridge completion ":               {"bash", "zsh", "fish"},
			"nocbridge test-notify --destination": {"--destination"},
		} {
			out, err := exec.Command("fish", "--no-config", "-c", "source "+script+"; complete -C '"+line+"'").CombinedOutput()
			if err != nil {
				t.Fatalf("%q: %v\n%s", line, err, out)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
			slices.Sort(got)
			w := slices.Clone(want)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Errorf("completing %q: got %q, want %q", line, got, w)
			}
		}
	})
	t.Run("zsh", func(t *testing.T) {
		if _, err := exec.LookPath("zsh"); err != nil {
			netns.SkipOrFail(t, "zsh is not installed (Debian: zsh)")
		}
		script := filepath.Join(dir, "_nocbridge")
		if err := os.WriteFile(script, []byte(zshCompletion()), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
		// Loaded the way compinit loads it, it registers itself for nocbridge.
		prog := "autoload -Uz compinit && compinit -u -d " + filepath.Join(dir, "zcompdump") +
			" && fpath=(" + dir + " $fpath) && autoload -Uz _nocbridge && compdef _nocbridge nocbridge && print -r -- $_comps[nocbridge]"
		out, err := exec.Command("zsh", "-f", "-c", prog).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "_nocbridge" {
			t.Fatalf("zsh: %v\n%s", err, out)
		}
	})
}
