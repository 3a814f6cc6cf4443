// Package reexec runs the test binary again as a child process (a process
// to kill -9, a second node), its TestMain choosing the child's part by an
// environment variable it is given.
package reexec

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Child is a running copy of the test binary.
type Child struct {
	Cmd   *exec.Cmd
	Lines *bufio.Scanner // its standard output, line by line
}

// Start runs the test binary with no test selected and env (NAME=value)
// added; its standard error is the test's. It is killed and waited for at
// the test's cleanup.
func Start(t testing.TB, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s as a child: %v", os.Args[0], err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &Child{Cmd: cmd, Lines: bufio.NewScanner(out)}
}

// Await reads the child's output until a line begins with prefix and
// returns the rest of that line; it fails the test when the output ends
// first.
func (c *Child) Await(t testing.TB, prefix string) string {
	t.Helper()
	for c.Lines.Scan() {
		if rest, ok := strings.CutPrefix(c.Lines.Text(), prefix); ok {
			return rest
		}
	}
	t.Fatalf("the child's output ended before a line %q…: %v", prefix, c.Lines.Err())
	return ""
}
