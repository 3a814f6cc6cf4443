package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		describe, want string
		bad            bool
	}{
		{describe: "v1.2.0", want: "1.2.0"},
		{describe: "1.2.0", want: "1.2.0"},
		{describe: "v1.3.0-rc1", want: "1.3.0~rc1"},
		{describe: "v1.3.0-rc.2", want: "1.3.0~rc.2"},
		{describe: "v1.2.0-3-gabc1234", want: "1.2.0+3.gabc1234"},
		{describe: "v1.3.0-rc1-3-gabc1234", want: "1.3.0~rc1+3.gabc1234"},
		{describe: "v1.2.0-dirty", want: "1.2.0+dirty"},
		{describe: "v1.2.0-3-gabc1234-dirty", want: "1.2.0+3.gabc1234.dirty"},
		{describe: "abc1234", want: "0.0.0+gabc1234"},
		{describe: "abc1234-dirty", want: "0.0.0+gabc1234.dirty"},
		{describe: "", bad: true},
		{describe: "v1.2", bad: true},
		{describe: "release one", bad: true},
		{describe: "v1.2.0; rm -rf /", bad: true},
	} {
		v, err := parseVersion(tc.describe)
		switch {
		case tc.bad && err == nil:
			t.Errorf("parseVersion(%q) = %q, want an error", tc.describe, v)
		case !tc.bad && err != nil:
			t.Errorf("parseVersion(%q): %v", tc.describe, err)
		case !tc.bad && v.String() != tc.want:
			t.Errorf("parseVersion(%q) = %q, want %q", tc.describe, v, tc.want)
		}
	}
}

// testVersion is what git describe would print for the packages the test
// builds; the binary carries it as it is, the packages as 1.2.3+4.gabcdef0.
const (
	testVersion  = "v1.2.3-4-gabcdef0"
	testUpgrade  = "v1.2.4"
	testCommit   = "abcdef0"
	debVersion   = "1.2.3+4.gabcdef0-1"
	rpmVersion   = "1.2.3+4.gabcdef0-1"
	upgradedDeb  = "1.2.4-1"
	installedBin = "/usr/bin/nocbridge"
)

// requirePackaging skips (or fails under NOCBRIDGE_REQUIRE_INTEROP=1)
// unless the test can install a .deb into a root of its own: dpkg, root
// (for the user's files and chroot), go (to build the binary), and the
// package's dependencies the maintainer scripts use from this machine.
func requirePackaging(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		netns.SkipOrFail(t, "packages are built and installed on Linux only (GOOS is %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "installing a .deb into a root of the test's own (dpkg --root, chown, chroot) needs root (euid is %d)", os.Geteuid())
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "go", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			netns.SkipOrFail(t, "%s is not installed (Debian: dpkg, golang, openssl)", tool)
		}
	}
	if _, err := os.Stat("/usr/share/zoneinfo/Europe/Berlin"); err != nil {
		netns.SkipOrFail(t, "the package's dependency tzdata is not installed here: %v", err)
	}
}

func build(t *testing.T, version string, formats ...string) map[string]string {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	built, err := Build(ctx, Options{
		Repo: "../..", Version: version, Commit: testCommit, Arch: runtime.GOARCH, Out: out, Formats: formats,
		Maintainer: "nocbridge tests <tests@nocbridge.invalid>", MTime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatalf("Build %s: %v", version, err)
	}
	paths := map[string]string{}
	for _, b := range built {
		if b.Size < 1<<20 {
			t.Errorf("%s: %d bytes, too small to hold the binary", b.Path, b.Size)
		}
		paths[b.Format] = b.Path
	}
	if len(paths) != len(formats) {
		t.Fatalf("Build %s wrote %v, want %v", version, built, formats)
	}
	return paths
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dpkgRoot runs dpkg on the test's root: the maintainer scripts run on this
// machine with DPKG_ROOT set (they touch only files under it), and the
// package's dependencies (openssl, tzdata) are this machine's.
func dpkgRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends",
		"--log=/dev/null", "--force-confold"}, args...)...)
}

// inRoot runs the installed binary chrooted into root (it is static), so
// the absolute paths of the installed config resolve inside the root.
func inRoot(t *testing.T, root string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(installedBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The .deb and the .rpm hold what SPEC 13.3 lists; each installs into a
// clean root, enables nothing, and its production config passes nocbridge
// check right away; an upgrade keeps the operator's config (and, for the
// .deb, the secrets); a purge of the .deb leaves the state.
func TestPackages(t *testing.T) {
	requirePackaging(t)
	pkgs := build(t, testVersion, "deb", "rpm")
	upgrade := build(t, testUpgrade, "deb", "rpm")
	deb := pkgs["deb"]

	// What is inside, with modes and owners (sizes and times vary).
	var listing strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line) // mode owner/group size date time path
		listing.WriteString(f[0] + " " + f[1] + " " + f[5] + "\n")
	}
	notifytest.Golden(t, "deb-contents.golden", []byte(listing.String()))
	if got := run(t, "dpkg-deb", "-f", deb, "Version"); strings.TrimSpace(got) != debVersion {
		t.Errorf("deb Version %q, want %s", got, debVersion)
	}
	conffiles := run(t, "dpkg-deb", "-I", deb, "conffiles")
	notifytest.Golden(t, "deb-conffiles.golden", []byte(conffiles))

	// Installing enables and starts nothing: no maintainer script says so.
	ctrl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctrl)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		b, err := os.ReadFile(filepath.Join(ctrl, s))
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`systemctl\s+(enable|start|reenable|preset)|deb-systemd-helper|deb-systemd-invoke\s+start`).Find(b); m != nil {
			t.Errorf("%s: %q: installing must enable and start nothing", s, m)
		}
	}

	t.Run("rpm", func(t *testing.T) { checkRPM(t, pkgs["rpm"], upgrade["rpm"]) })

	root := newRoot(t)
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkgRoot(t, root, "--install", deb)

	installed(t, root, testVersion)
	man, err := os.ReadFile(filepath.Join(root, "usr/share/man/man1/nocbridge.1.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if page := gunzip(t, man); !strings.HasPrefix(page, `.TH NOCBRIDGE 1 "" "nocbridge `+strings.ReplaceAll(testVersion, "-", `\-`)+`"`) {
		t.Errorf("man page starts %.80q", page)
	}
	userAgent(t, filepath.Join(root, installedBin))
	t.Run("systemd-analyze", func(t *testing.T) { verifyUnit(t, root) })

	// An upgrade keeps the operator's config and the secrets made at install.
	conf := filepath.Join(root, "etc/nocbridge/nocbridge.yaml")
	edited := append(readFile(t, conf), "# edited by the operator\n"...)
	if err := os.WriteFile(conf, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	token := readFile(t, filepath.Join(root, "etc/nocbridge/secrets/http-token"))
	dpkgRoot(t, root, "--install", upgrade["deb"])
	if got := readFile(t, conf); !bytes.Equal(got, edited) {
		t.Errorf("the upgrade replaced the operator's %s", conf)
	}
	if got := readFile(t, filepath.Join(root, "etc/nocbridge/secrets/http-token")); !bytes.Equal(got, token) {
		t.Error("the upgrade replaced the API token made at install")
	}
	if out, err := inRoot(t, root, "version"); err != nil || !strings.HasPrefix(out, "nocbridge "+testUpgrade+" ") {
		t.Errorf("after the upgrade, nocbridge version: %v %q", err, out)
	}
	if st := run(t, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Version} ${Status}", "nocbridge"); st != upgradedDeb+" install ok installed" {
		t.Errorf("dpkg-query after the upgrade: %q", st)
	}
	noneEnabled(t, root)

	// A purge removes the package, its config and the files the
	// post-install made; the state stays.
	if err := os.WriteFile(filepath.Join(root, "var/lib/nocbridge/keep"), []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkgRoot(t, root, "--purge", "nocbridge")
	for _, gone := range []string{installedBin, "etc/nocbridge", "usr/lib/systemd/system/nocbridge.service"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("after purge, /%s is still there", strings.TrimPrefix(gone, "/"))
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/nocbridge/keep")); err != nil {
		t.Errorf("the purge removed the state: %v", err)
	}
}

// newRoot is an empty root for a package to install into, with the tzdata
// the packages depend on (the production example's maintenance window
// names Europe/Berlin).
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/share"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "cp", "-a", "/usr/share/zoneinfo", filepath.Join(root, "usr/share")+"/")
	return root
}

// installed checks what the package's post-install made in root, and that
// the installed binary is the version given and passes check on the
// installed production config.
func installed(t *testing.T, root, version string) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil || !regexp.MustCompile(`(?m)^nocbridge:x:\d+:\d+:[^:]*:/var/lib/nocbridge:/usr/sbin/nologin$`).Match(passwd) {
		t.Errorf("the user nocbridge was not created in the root: %v\n%s", err, passwd)
	}
	for path, mode := range map[string]fs.FileMode{
		"etc/nocbridge":                    fs.ModeDir | 0o750,
		"etc/nocbridge/secrets":            fs.ModeDir | 0o750,
		"etc/nocbridge/nocbridge.yaml":     0o640,
		"etc/nocbridge/secrets/http-token": 0o600,
		"etc/nocbridge/tls/key.pem":        0o600,
		"var/lib/nocbridge":                fs.ModeDir | 0o750,
		"var/log/nocbridge":                fs.ModeDir | 0o750,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("after install: %v", err)
			continue
		}
		if fi.Mode()&(fs.ModeDir|fs.ModePerm) != mode {
			t.Errorf("/%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	noneEnabled(t, root)
	if out, err := inRoot(t, root, "version"); err != nil || !strings.HasPrefix(out, "nocbridge "+version+" (commit "+testCommit+",") {
		t.Errorf("nocbridge version: %v %q, want nocbridge %s (commit %s, …)", err, out, version, testCommit)
	}
	if out, err := inRoot(t, root, "check", "--config", "/etc/nocbridge/nocbridge.yaml"); err != nil ||
		out != "/etc/nocbridge/nocbridge.yaml: ok\n" {
		t.Errorf("nocbridge check of the installed production config: %v\n%s", err, out)
	}
}

// noneEnabled fails if anything in root enables a unit.
func noneEnabled(t *testing.T, root string) {
	t.Helper()
	for _, dir := range []string{"etc/systemd", "usr/lib/systemd", "lib/systemd"} {
		filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && (strings.HasSuffix(d.Name(), ".wants") || strings.HasSuffix(d.Name(), ".requires") || d.Type()&fs.ModeSymlink != 0) {
				t.Errorf("installing enabled something: %s", strings.TrimPrefix(path, root))
			}
			return nil
		})
	}
}

// userAgent sends one test notification with the installed binary to a
// loopback receiver: the User-Agent carries the version it was built with.
func userAgent(t *testing.T, bin string) {
	t.Helper()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case got <- r.Method + " " + r.URL.Path + " " + r.Header.Get("User-Agent"):
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nocbridge.yaml")
	err := os.WriteFile(cfg, []byte(`state_dir: state
http: {listen: 127.0.0.1:0}
rules: []
devices: []
destinations:
  - {name: hook, type: webhook, url: "`+srv.URL+`/hook"}
subscriptions:
  - {name: all, destinations: [hook]}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "test-notify", "--config", cfg, "--destination", "hook").CombinedOutput()
	if err != nil {
		t.Fatalf("nocbridge test-notify: %v\n%s", err, out)
	}
	select {
	case req := <-got:
		if want := "POST /hook nocbridge/" + testVersion; req != want {
			t.Errorf("the receiver got %q, want %q", req, want)
		}
	default:
		t.Errorf("test-notify said %q but the receiver got nothing", out)
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit, its binary
// the installed one.
func verifyUnit(t *testing.T, root string) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		netns.SkipOrFail(t, "systemd-analyze is not installed (Debian: systemd)")
	}
	unit := readFile(t, filepath.Join(root, "usr/lib/systemd/system/nocbridge.service"))
	if n := bytes.Count(unit, []byte(installedBin)); n != 2 {
		t.Errorf("the installed unit names %s %d times, want 2 (ExecStartPre, ExecStart)", installedBin, n)
	}
	path := filepath.Join(t.TempDir(), "nocbridge.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte(installedBin), []byte(filepath.Join(root, installedBin))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}
}

// checkRPM lists the .rpm with rpm itself: files, modes, owners, which are
// %config(noreplace), version, scripts; then installs it into a root of its
// own and upgrades it there.
func checkRPM(t *testing.T, path, upgrade string) {
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		netns.SkipOrFail(t, "rpm is not installed (Debian: rpm)")
	}
	q := func(args ...string) string {
		t.Helper()
		return run(t, rpm, append([]string{"-qp", "--nosignature", "--nodigest"}, args...)...)
	}
	if got := q("--qf", "%{VERSION}-%{RELEASE} %{ARCH} %{LICENSE}", path); got != rpmVersion+" "+rpmArch()+" Apache-2.0" {
		t.Errorf("rpm version, arch, license: %q", got)
	}
	// FILEFLAGS: 1 %config, 16 noreplace, 128 %license.
	list := q("--qf", `[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEFLAGS} %{FILENAMES}\n]`, path)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	slices.Sort(lines)
	notifytest.Golden(t, "rpm-contents.golden", []byte(strings.Join(lines, "\n")+"\n"))
	if m := regexp.MustCompile(`systemctl\s+(enable|start|preset)`).FindString(q("--scripts", path)); m != "" {
		t.Errorf("rpm scripts: %q: installing must enable and start nothing", m)
	}

	// rpm runs scriptlets chrooted into the root, where this Debian root
	// has no shell: the files go in with --noscripts, then the %post runs
	// here the way dpkg --force-script-chrootless runs it (DPKG_ROOT names
	// the root), with rpm's argument: 1 on install, 2 on upgrade.
	root := newRoot(t)
	install := func(pkg, arg string) {
		t.Helper()
		run(t, rpm, "--root", root, "--dbpath", "/var/lib/rpm", "--nodeps", "--noscripts", "--nosignature", "--nodigest", "-U", pkg)
		script := filepath.Join(t.TempDir(), "post")
		if err := os.WriteFile(script, []byte(q("--qf", "%{POSTIN}", pkg)), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", script, arg)
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%%post %s of %s: %v\n%s", arg, filepath.Base(pkg), err, out)
		}
	}
	install(path, "1")
	installed(t, root, testVersion)

	conf := filepath.Join(root, "etc/nocbridge/nocbridge.yaml")
	edited := append(readFile(t, conf), "# edited by the operator\n"...)
	if err := os.WriteFile(conf, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	install(upgrade, "2")
	if got := readFile(t, conf); !bytes.Equal(got, edited) {
		t.Errorf("the rpm upgrade replaced the operator's %s", conf)
	}
	if got := run(t, rpm, "--root", root, "--dbpath", "/var/lib/rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "nocbridge"); got != "1.2.4-1" {
		t.Errorf("rpm -q after the upgrade: %q", got)
	}
	if out, err := inRoot(t, root, "version"); err != nil || !strings.HasPrefix(out, "nocbridge "+testUpgrade+" ") {
		t.Errorf("after the rpm upgrade, nocbridge version: %v %q", err, out)
	}
}

func rpmArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
