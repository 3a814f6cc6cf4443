package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

//go:embed scripts/*.sh
var scripts embed.FS

// Options say what to build.
type Options struct {
	Repo       string    // the repository's root
	Version    string    // as `git describe --tags --always` prints it: v1.2.0, v1.2.0-3-gabc1234, abc1234
	Commit     string    // the commit the binary is built from
	Arch       string    // a GOARCH: amd64, arm64…
	Out        string    // the folder the packages are written to
	Formats    []string  // deb, rpm
	Maintainer string    // the packages' Maintainer/Packager
	MTime      time.Time // every file's time in the packages (the commit's time: reproducible)
}

// Built is one package written.
type Built struct {
	Format, Path string
	Size         int64
}

// unitBinary is where systemd/nocbridge.service expects the binary when
// installed by hand (README); the packages put it in /usr/bin.
const (
	unitBinary = "/usr/local/bin/nocbridge"
	binary     = "/usr/bin/nocbridge"
)

// Build builds the binary and writes one package per format.
func Build(ctx context.Context, o Options) ([]Built, error) {
	ver, err := parseVersion(o.Version)
	if err != nil {
		return nil, err
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	stage, err := os.MkdirTemp("", "nocpkg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	bin := filepath.Join(stage, "nocbridge")
	if err := goBuild(ctx, o.Repo, bin, "linux", o.Arch, o.Version, o.Commit); err != nil {
		return nil, err
	}
	// The man page and completions come from the binary itself; a binary for
	// another machine cannot run here, so they come from one for this one.
	docBin := bin
	if runtime.GOOS != "linux" || o.Arch != runtime.GOARCH {
		docBin = filepath.Join(stage, "nocbridge-host")
		if err := goBuild(ctx, o.Repo, docBin, runtime.GOOS, runtime.GOARCH, o.Version, o.Commit); err != nil {
			return nil, err
		}
	}
	gen := map[string][]string{
		"nocbridge.1":    {"man"},
		"nocbridge.bash": {"completion", "bash"},
		"_nocbridge":     {"completion", "zsh"},
		"nocbridge.fish": {"completion", "fish"},
	}
	for name, args := range gen {
		out, err := exec.CommandContext(ctx, docBin, args...).Output()
		if err != nil {
			return nil, fmt.Errorf("nocbridge %s: %w", strings.Join(args, " "), err)
		}
		if name == "nocbridge.1" {
			name, out = "nocbridge.1.gz", gzipped(out)
		}
		if err := os.WriteFile(filepath.Join(stage, name), out, 0o644); err != nil {
			return nil, err
		}
	}

	unit, err := os.ReadFile(filepath.Join(o.Repo, "systemd/nocbridge.service"))
	if err != nil {
		return nil, err
	}
	if n := bytes.Count(unit, []byte(unitBinary)); n < 2 {
		return nil, fmt.Errorf("systemd/nocbridge.service names %s %d times, want ExecStartPre and ExecStart", unitBinary, n)
	}
	unit = bytes.ReplaceAll(unit, []byte(unitBinary), []byte(binary))
	if err := os.WriteFile(filepath.Join(stage, "nocbridge.service"), unit, 0o644); err != nil {
		return nil, err
	}
	license, err := os.ReadFile(filepath.Join(o.Repo, "LICENSE"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, "copyright"), debianCopyright(license), 0o644); err != nil {
		return nil, err
	}
	for _, s := range []string{"postinstall.sh", "preremove.sh", "postremove.sh"} {
		b, err := scripts.ReadFile("scripts/" + s)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(stage, s), b, 0o755); err != nil {
			return nil, err
		}
	}

	contents, err := contents(o.Repo, stage)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	var built []Built
	for _, format := range o.Formats {
		b, err := write(format, o, ver, contents, stage)
		if err != nil {
			return built, fmt.Errorf("%s: %w", format, err)
		}
		built = append(built, b)
	}
	return built, nil
}

func goBuild(ctx context.Context, repo, out, goos, goarch, version, commit string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+version+" -X main.commit="+commit,
		"-o", out, "./cmd/nocbridge")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	return nil
}

// contents lists every file of the packages: source, destination, kind, mode.
func contents(repo, stage string) (files.Contents, error) {
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
	}
	conf := func(src, dst string) *files.Content {
		c := file(src, dst, 0o640)
		c.Type = files.TypeConfigNoReplace // deb: a conffile; rpm: %config(noreplace)
		return c
	}
	only := func(c *files.Content, packager string) *files.Content { c.Packager = packager; return c }
	r := func(p string) string { return filepath.Join(repo, p) }
	s := func(p string) string { return filepath.Join(stage, p) }

	c := files.Contents{
		file(s("nocbridge"), binary, 0o755),
		file(s("nocbridge.service"), "/usr/lib/systemd/system/nocbridge.service", 0o644),
		file(r("systemd/nocbridge.sysusers"), "/usr/lib/sysusers.d/nocbridge.conf", 0o644),
		file(r("systemd/nocbridge.tmpfiles"), "/usr/lib/tmpfiles.d/nocbridge.conf", 0o644),
		conf(r("configs/production.example.yaml"), "/etc/nocbridge/nocbridge.yaml"),
		file(s("nocbridge.1.gz"), "/usr/share/man/man1/nocbridge.1.gz", 0o644),
		file(s("nocbridge.bash"), "/usr/share/bash-completion/completions/nocbridge", 0o644),
		only(file(s("_nocbridge"), "/usr/share/zsh/vendor-completions/_nocbridge", 0o644), "deb"),
		only(file(s("_nocbridge"), "/usr/share/zsh/site-functions/_nocbridge", 0o644), "rpm"),
		file(s("nocbridge.fish"), "/usr/share/fish/vendor_completions.d/nocbridge.fish", 0o644),
		file(r("configs/grafana-nocbridge.json"), "/usr/share/nocbridge/grafana-nocbridge.json", 0o644),
		file(r("configs/prometheus-nocbridge-rules.yml"), "/usr/share/nocbridge/prometheus-nocbridge-rules.yml", 0o644),
		file(r("README.md"), "/usr/share/doc/nocbridge/README.md", 0o644),
		only(file(s("copyright"), "/usr/share/doc/nocbridge/copyright", 0o644), "deb"),
		only(&files.Content{Source: r("LICENSE"), Destination: "/usr/share/licenses/nocbridge/LICENSE", Type: files.TypeRPMLicense,
			FileInfo: &files.ContentFileInfo{Mode: 0o644}}, "rpm"),
	}
	rules, err := filepath.Glob(r("rules/*.yaml"))
	if err != nil || len(rules) == 0 {
		return nil, fmt.Errorf("no rules/*.yaml in %s", repo)
	}
	for _, f := range rules {
		c = append(c, conf(f, "/etc/nocbridge/rules/"+filepath.Base(f)))
	}
	for _, f := range c {
		if _, err := os.Stat(f.Source); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func write(format string, o Options, v version, contents files.Contents, stage string) (Built, error) {
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return Built{}, err
	}
	deps := []string{"openssl", "tzdata"} // the post-install's certificates; maintenance windows' time zones
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:            "nocbridge",
		Arch:            o.Arch,
		Platform:        "linux",
		Version:         v.base,
		VersionSchema:   "none",
		Prerelease:      v.pre,
		VersionMetadata: v.meta,
		Release:         "1",
		Section:         "net",
		Priority:        "optional",
		Maintainer:      o.Maintainer,
		Vendor:          "nocbridge",
		Homepage:        "https://github.com/nocbridge/nocbridge",
		License:         "Apache-2.0",
		Description: "network-monitoring alert bridge with Cisco DNA Center-style notifications\n" +
			"nocbridge pings devices, polls SNMP, receives traps, evaluates YAML rules\n" +
			"and notifies chat rooms and ticketing systems with payloads shaped like\n" +
			"Cisco DNA Center event notifications. Installing it enables nothing:\n" +
			"edit /etc/nocbridge/nocbridge.yaml, then systemctl enable --now nocbridge.",
		MTime: o.MTime,
		Overridables: nfpm.Overridables{
			Depends:    deps,
			Recommends: []string{"systemd"},
			Contents:   cloneContents(contents),
			Umask:      0o022,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(stage, "postinstall.sh"),
				PreRemove:   filepath.Join(stage, "preremove.sh"),
				PostRemove:  filepath.Join(stage, "postremove.sh"),
			},
			RPM: nfpm.RPM{
				Summary:  "network-monitoring alert bridge with Cisco DNA Center-style notifications",
				Group:    "Applications/System",
				Packager: o.Maintainer,
			},
		},
	})
	if err := nfpm.Validate(info); err != nil {
		return Built{}, err
	}
	path := filepath.Join(o.Out, pkgr.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return Built{}, err
	}
	info.Target = path
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return Built{}, err
	}
	if err := f.Close(); err != nil {
		return Built{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Built{}, err
	}
	return Built{Format: format, Path: path, Size: fi.Size()}, nil
}

// cloneContents copies the list: a packager rewrites the one it is given.
func cloneContents(c files.Contents) files.Contents {
	out := make(files.Contents, len(c))
	for i, x := range c {
		y := *x
		if x.FileInfo != nil {
			fi := *x.FileInfo
			y.FileInfo = &fi
		}
		out[i] = &y
	}
	return out
}

// version is a package version: base[~pre][+meta], which sorts right in
// dpkg and rpm alike (~ before the release, + after it).
type version struct{ base, pre, meta string }

func (v version) String() string {
	s := v.base
	if v.pre != "" {
		s += "~" + v.pre
	}
	if v.meta != "" {
		s += "+" + v.meta
	}
	return s
}

var (
	describeTag  = regexp.MustCompile(`^v?(\d+\.\d+\.\d+)(?:-([0-9A-Za-z.]+))?(?:-(\d+)-g([0-9a-f]+))?$`)
	describeHash = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
)

// parseVersion turns what `git describe --tags --always [--dirty]` prints
// into a package version: v1.2.0 → 1.2.0, v1.3.0-rc1 → 1.3.0~rc1,
// v1.2.0-3-gabc1234 → 1.2.0+3.gabc1234 (after 1.2.0), a bare commit (no
// tag yet) → 0.0.0+gabc1234, and -dirty → +dirty or .dirty at the end.
func parseVersion(describe string) (version, error) {
	d, dirty := strings.CutSuffix(describe, "-dirty")
	var v version
	if m := describeTag.FindStringSubmatch(d); m != nil {
		v = version{base: m[1], pre: m[2]}
		if m[3] != "" {
			v.meta = m[3] + ".g" + m[4]
		}
	} else if describeHash.MatchString(d) {
		v = version{base: "0.0.0", meta: "g" + d}
	} else {
		return version{}, fmt.Errorf("version %q: want what git describe --tags --always prints (v1.2.0, v1.2.0-3-gabc1234, abc1234)", describe)
	}
	if dirty {
		v.meta = strings.TrimPrefix(v.meta+".dirty", ".")
	}
	return v, nil
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // no name, no time: reproducible
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// debianCopyright is /usr/share/doc/nocbridge/copyright in Debian's
// machine-readable format, with the license's full text.
func debianCopyright(license []byte) []byte {
	var b strings.Builder
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
	b.WriteString("Upstream-Name: nocbridge\nSource: https://github.com/nocbridge/nocbridge\n\n")
	b.WriteString("Files: *\nCopyright: the nocbridge authors\nLicense: Apache-2.0\n")
	for _, line := range strings.Split(strings.TrimRight(string(license), "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString(" .\n")
		} else {
			b.WriteString(" " + line + "\n")
		}
	}
	return []byte(b.String())
}
