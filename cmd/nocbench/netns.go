package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchNetnsPrefix names the namespaces nocbench creates, with its pid, so
// that one left by a killed run can be told apart and removed.
const benchNetnsPrefix = "nocbench-"

var benchNetnsName = regexp.MustCompile(`^` + benchNetnsPrefix + `[a-z]+-(\d+)-\d+$`)

// rerunInNetns runs this nocbench invocation again inside a network
// namespace of its own (loopback only), with env set to the namespace's
// name, and deletes the namespace afterwards, whatever the outcome. Root
// only. In there, /proc/net/snmp counts this run's datagrams alone.
func rerunInNetns(ctx context.Context, bench, env string) error {
	removeStaleBenchNetns()
	name := fmt.Sprintf("%s%s-%d-%d", benchNetnsPrefix, bench, os.Getpid(), time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	defer func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "nocbench: ip netns del %s: %v: %s\n", name, err, strings.TrimSpace(string(out)))
		}
	}()
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", name, exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), env+"="+name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// On Ctrl-C the child stops its own children (snmptrapd) before the
	// namespace goes; it dies with us if we are killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	fmt.Printf("(running in network namespace %s, deleted at the end)\n", name)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s benchmark in namespace %s: %w", bench, name, err)
	}
	return nil
}

// removeStaleBenchNetns deletes namespaces of earlier nocbench runs whose
// process is gone (killed before it could delete them).
func removeStaleBenchNetns() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		m := benchNetnsName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // still running
		}
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}
