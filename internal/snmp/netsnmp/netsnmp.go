// Package netsnmp runs net-snmp's snmpd as a real SNMP agent for tests and
// benchmarks: private configuration (-C), private persistent state, bound
// to loopback addresses only, stopped with the caller.
package netsnmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Config describes one snmpd process.
type Config struct {
	Dir    string   // working folder for the configuration, state and log; must exist
	Listen []string // host:port pairs, IPv4 loopback
	// Conf is the snmpd.conf text. It must grant read access to
	// ReadyCommunity from 127.0.0.1 (rocommunity), which Start polls to
	// know the agent is up.
	Conf           string
	ReadyCommunity string
}

// Agent is a running snmpd.
type Agent struct {
	cfg     Config
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// Path is the snmpd binary, or an error saying it is missing.
func Path() (string, error) {
	if p, err := exec.LookPath("snmpd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/snmpd", "/usr/local/sbin/snmpd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("snmpd not found (install net-snmp: apt-get install snmpd)")
}

var runs atomic.Int64

// Start runs snmpd and returns once every listen address answers a GET of
// sysUpTime.0, or an error with the tail of snmpd's log.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	bin, err := Path()
	if err != nil {
		return nil, err
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("snmpd: no listen address")
	}
	// A fresh state folder per run: snmpd rewrites users and engine boots
	// there, and a restarted agent must not inherit a previous test's.
	run := strconv.FormatInt(runs.Add(1), 10)
	stateDir := filepath.Join(cfg.Dir, "state-"+run)
	confPath := filepath.Join(cfg.Dir, "snmpd-"+run+".conf")
	a := &Agent{cfg: cfg, logPath: filepath.Join(cfg.Dir, "snmpd-"+run+".log"), exited: make(chan struct{})}
	// Logging every request would slow the agent down and fill the log.
	conf := "dontLogTCPWrappersConnects yes\n" + cfg.Conf
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(a.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	endpoints := make([]string, len(cfg.Listen))
	for i, l := range cfg.Listen {
		if err := checkLoopback(l); err != nil {
			return nil, err
		}
		endpoints[i] = "udp:" + l
	}
	a.cmd = exec.Command(bin, "-f", "-Lo", "-C", "-c", confPath, strings.Join(endpoints, ","))
	// No MIB files are needed (numeric OIDs) and loading Debian's partial
	// set only fills the log with warnings.
	a.cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+stateDir, "MIBDIRS="+filepath.Join(cfg.Dir, "no-mibs"), "MIBS=")
	a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
	a.cmd.SysProcAttr = procAttr()
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start snmpd: %w", err)
	}
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.exited)
	}()
	if err := a.waitReady(ctx); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

func (a *Agent) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, addr := range a.cfg.Listen {
		for {
			err := getUptime(ctx, addr, a.cfg.ReadyCommunity)
			if err == nil {
				break
			}
			select {
			case <-a.exited:
				return fmt.Errorf("snmpd exited (%v) before answering on %s; log:\n%s", a.waitErr, addr, a.LogTail())
			case <-ctx.Done():
				return fmt.Errorf("snmpd did not answer on %s: %v; log:\n%s", addr, err, a.LogTail())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// checkLoopback enforces the project's rule: test agents live on loopback.
func checkLoopback(hostPort string) error {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Errorf("snmpd listen address %q: %w", hostPort, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return fmt.Errorf("snmpd listen address %q: want an IPv4 loopback address", hostPort)
	}
	return nil
}

func getUptime(ctx context.Context, addr, community string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Community: community, Version: gosnmp.Version2c,
		Timeout: 200 * time.Millisecond, Retries: 0, Context: ctx}
	if err := g.Connect(); err != nil {
		return err
	}
	defer g.Close()
	pkt, err := g.Get([]string{".1.3.6.1.2.1.1.3.0"})
	if err != nil {
		return err
	}
	if len(pkt.Variables) != 1 || pkt.Variables[0].Type != gosnmp.TimeTicks {
		return fmt.Errorf("unexpected answer to sysUpTime.0: %+v", pkt.Variables)
	}
	return nil
}

// Stop terminates snmpd and waits for it; safe to call twice.
func (a *Agent) Stop() {
	select {
	case <-a.exited:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// LogTail is the end of snmpd's log, for failure messages.
func (a *Agent) LogTail() string {
	b, _ := os.ReadFile(a.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago.
func FreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
