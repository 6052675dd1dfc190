package e2e

import (
	"path/filepath"
	"testing"
)

// TestTmpfs creates, writes, truncates, renames, links, locks and removes
// files and directories in /tmp, and wants every step to end as it does in
// a directory of this machine's Linux.
func TestTmpfs(t *testing.T) {
	sameAsLinuxIn(t, "tmpfs", []string{t.TempDir()}, []string{"/tmp"})
}

// TestTmpfsFull checks the mounts only Unigo has: the read-only root
// (EROFS, EXDEV out of /tmp, EBUSY for the mount point), tmpfs's statfs and
// size limit (ENOSPC at it, twice, with the space back after a remove) and
// /proc/self's mountinfo and exe.
func TestTmpfsFull(t *testing.T) {
	want := `create in /: read-only file system
mkdir in /: read-only file system
rename out of /tmp: invalid cross-device link
remove /tmp: device or resource busy
in /: tmp true
statfs /tmp: tmpfs true
mountinfo has /tmp: true
executable: /tmpfull <nil>
fill: no space left on device
round 0: wrote within 1% of the size: true
free when full: true
fill: no space left on device
round 1: wrote within 1% of the size: true
free when full: true
free again: true
`
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, "-m", "64M", image(t, "tmpfull"))
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit status %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
	})
}

// TestMmapFile maps a /tmp file shared (read-only and writable) and
// private while it is written, grown and removed, and an image file, and
// wants what the same program sees on Linux.
func TestMmapFile(t *testing.T) {
	src, err := filepath.Abs(filepath.Join("testdata", "mmapfile"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "mmapfile.img")
	if r := run(t, "build", "--files", src+":/src", "-o", img, "./testdata/mmapfile"); r.code != 0 {
		t.Fatalf("unigo build --files: exit status %d\n%s", r.code, r.stderr)
	}
	sameAsLinuxImage(t, "mmapfile", img, []string{t.TempDir(), filepath.Join(src, "main.go")}, []string{"/tmp", "/src/main.go"})
}
