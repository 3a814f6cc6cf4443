package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Warning is a setting that works but weakens security, at its line.
// `nocbridge check` prints it (String) and start-up logs it; it never fails
// a load. Messages never hold a secret's value.
type Warning struct {
	File string
	Line int
	Msg  string
}

// String is "FILE:LINE: warning: message".
func (w Warning) String() string {
	return Error{File: w.File, Line: w.Line, Msg: "warning: " + w.Msg}.Error()
}

// Warnings are every warning of one load: the config's own, then those the
// destination types add (notify.ConfigCheck.Warn).
type Warnings []Warning

// Add records a warning at file:line.
func (ws *Warnings) Add(file string, line int, format string, args ...any) {
	*ws = append(*ws, Warning{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Sorted orders warnings by file then line, stable for equal positions.
func (ws Warnings) Sorted() Warnings {
	return byPosition(ws, func(w Warning) (string, int) { return w.File, w.Line })
}

// byPosition is a copy of list ordered by file then line, stable for equal
// positions.
func byPosition[T any](list []T, pos func(T) (file string, line int)) []T {
	out := append([]T(nil), list...)
	sort.SliceStable(out, func(i, j int) bool {
		fi, li := pos(out[i])
		fj, lj := pos(out[j])
		if fi != fj {
			return fi < fj
		}
		return li < lj
	})
	return out
}

// LoopbackHost reports whether host (an IP address or a name, no port)
// means this machine only: a loopback address or "localhost". An empty or
// unspecified host (0.0.0.0, ::) means every interface.
func LoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// LoopbackListen reports whether a listen address (host:port) takes
// connections from this machine only.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && LoopbackHost(host)
}

// SecretFileWarning is the warning for a secret file (file, relative to
// baseDir) that group or others may read, "" when only its owner can or it
// cannot be read (reading it reports that).
func SecretFileWarning(file, baseDir string) string {
	if file == "" {
		return ""
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(baseDir, file)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("secret file %s is readable by group or others (mode %04o): make it 0600 (or 0400), owned by the user nocbridge runs as",
		file, fi.Mode().Perm())
}

// warn records a warning at line.
func (l *loader) warn(line int, format string, args ...any) {
	l.warnings.Add(l.file, line, format, args...)
}

// warnSecretFile warns at the key at path when its file is too open.
func (l *loader) warnSecretFile(file, baseDir string, path ...any) {
	if msg := SecretFileWarning(file, baseDir); msg != "" {
		l.warn(l.line(path...), "%s: %s", pathName(path), msg)
	}
}

// pathName is a key path as people write it: http.tls.key_file.
func pathName(path []any) string {
	parts := make([]string, 0, len(path))
	for _, p := range path {
		if s, ok := p.(string); ok {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ".")
}
