// Package tmpfs gives tests a small filesystem of their own, to fill up: a
// state directory on a full disk is met for real, not faked.
package tmpfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// Mount mounts a tmpfs of size bytes on a fresh directory and returns it;
// t.Cleanup unmounts it, also when the test fails. It needs root: without
// it the test is skipped, or fails under NOCBRIDGE_REQUIRE_INTEROP=1.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "mounting a tmpfs needs root (euid is %d)", os.Geteuid())
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		netns.SkipOrFail(t, "mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Lazy: a store the test failed to close must not leave it mounted.
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until the filesystem is full and returns its
// path: removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC: full
		}
	}
	// The last partial block: byte by byte.
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
	}
	return path
}
