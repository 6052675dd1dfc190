package e2e

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"unigo.dev/unigo/test/e2e/testdata/records"
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

// TestTmpfsNodes fills /tmp's node table, a kernel table backed page by
// page as it grows, to ENOSPC, empties it and fills it again.
func TestTmpfsNodes(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		expect(t, run(t, "run", "--vmm", vmm, image(t, "inodes")), 0, `fill: no space left on device
made as many as were free: true true
free when full: 0
free again: true
fill again: no space left on device true
`)
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

// TestShare runs TestTmpfs's program in a host folder share (-v) and
// wants what it does in a directory of this machine's Linux, less what 9P
// cannot do (RENAME_EXCHANGE); under QEMU the share is QEMU's own 9P server.
func TestShare(t *testing.T) {
	share := t.TempDir()
	sameAsLinuxImage(t, "tmpfs", image(t, "tmpfs"), []string{t.TempDir(), "share"}, []string{"/data", "share"}, "-v", share+":/data")
}

// TestShareHost checks a share from the host's side: the guest reads the
// host's file, and its writes, renames and removes are on the host's disk;
// links that point out of the folder reach nothing outside it; a read-only
// share refuses changes.
func TestShareHost(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		outside := t.TempDir()
		os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o600)
		share := filepath.Join(outside, "share")
		os.Mkdir(share, 0o755)
		for name, data := range map[string]string{"fromhost.txt": "hello guest", "old.txt": "old", "gone.txt": "gone"} {
			os.WriteFile(filepath.Join(share, name), []byte(data), 0o644)
		}
		os.Symlink(filepath.Join(outside, "secret"), filepath.Join(share, "abs"))
		os.Symlink("../secret", filepath.Join(share, "rel"))
		os.Symlink("..", filepath.Join(share, "up"))
		r := run(t, "run", "--vmm", vmm, "-v", share+":/data", image(t, "sharehost"), "--", "/data")
		want := `from the host: "hello guest" ok
through abs: no such file or directory, secret seen: false
through rel: no such file or directory, secret seen: false
through up/secret: no such file or directory, secret seen: false
through ../secret: no such file or directory, secret seen: false
mkdir: ok
create: ok
fsync: ok
rename: ok
remove: ok
statfs: ok true
entry: abs false
entry: fromhost.txt false
entry: out true
entry: rel false
entry: up false
`
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit status %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
		for name, want := range map[string]string{"out/new.txt": "from the guest", "out/renamed.txt": "old"} {
			if b, err := os.ReadFile(filepath.Join(share, name)); string(b) != want {
				t.Errorf("host's %s: %q, %v; want %q", name, b, err, want)
			}
		}
		for _, name := range []string{"old.txt", "gone.txt"} {
			if _, err := os.Stat(filepath.Join(share, name)); !os.IsNotExist(err) {
				t.Errorf("host's %s is still there (%v)", name, err)
			}
		}
		r = run(t, "run", "--vmm", vmm, "-v", share+":/data:ro", image(t, "sharehost"), "--", "/data", "ro")
		if !strings.Contains(r.stdout, "write to a read-only share: read-only file system\nremove in a read-only share: read-only file system\n") {
			t.Errorf("read-only share: exit status %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(share, "fromhost.txt")); err != nil {
			t.Errorf("a read-only share lost a file: %v", err)
		}
	})
}

// TestShareFlags wants a clear refusal, before any boot, of -v and --disk
// values that cannot work.
func TestShareFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct{ v, want string }{
		{filepath.Join(dir, "missing") + ":/data", "no such file or directory"},
		{file + ":/data", "not a Unigo volume"},
		{dir + ":data", "must be absolute"},
		{dir + ":/a/b", "a folder of the root"},
		{dir + ":/tmp", "the guest's own"},
		{dir, "want HOSTDIR:GUESTDIR"},
	} {
		r := run(t, "run", "-v", c.v, image(t, "sharehost"), "--", "/data")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("-v %s: exit status %d, stderr %q; want %q", c.v, r.code, r.stderr, c.want)
		}
	}
	odd := filepath.Join(dir, "odd.img")
	os.WriteFile(odd, make([]byte, 100), 0o644)
	for _, c := range []struct{ disk, want string }{
		{filepath.Join(dir, "missing.img"), "no such file or directory"},
		{odd, "a whole number of 512-byte sectors"},
		{dir, "not a regular file"},
	} {
		r := run(t, "run", "--disk", c.disk, image(t, "blkrecords"))
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("--disk %s: exit status %d, stderr %q; want %q", c.disk, r.code, r.stderr, c.want)
		}
	}
}

// TestFilesPCI gives the guest a share, a disk and a block volume on
// QEMU's q35 and pc, where they are virtio PCI functions: the kernel finds
// their structures through the capabilities and drives the same polled
// queue.
func TestFilesPCI(t *testing.T) {
	needQEMU(t)
	for _, m := range []string{"q35", "pc"} {
		t.Run(m, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi"), 0o644)
			r := run(t, "run", "--vmm", "qemu", "--qemu-machine", m, "-v", dir+":/data", "-w", "/data", image(t, "workdir"))
			if want := "getwd: /data <nil>\nhello.txt: \"hi\" <nil>\n"; r.code != 0 || r.stdout != want {
				t.Fatalf("share: exit status %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
			}
			disk := filepath.Join(dir, "disk.img")
			os.WriteFile(disk, make([]byte, 64<<10), 0o644)
			r = run(t, "run", "--vmm", "qemu", "--qemu-machine", m, "--disk", disk, image(t, "blkrecords"))
			if r.code != 0 || !strings.HasSuffix(r.stdout, "synced 127\nfull: no space left on device\n") {
				t.Fatalf("disk: exit status %d; stdout ends:\n%s\nstderr:\n%s", r.code, tail(r.stdout), r.stderr)
			}
			b, _ := os.ReadFile(disk)
			if !bytes.Equal(b[127*512:], records.Record(127)) {
				t.Errorf("the host's file lacks the last record")
			}
			vol := newVolume(t, "4M")
			r = run(t, "run", "--vmm", "qemu", "--qemu-machine", m, "-v", vol+":/data", image(t, "volfull"))
			if r.code != 0 || !strings.HasSuffix(r.stdout, "write again: <nil>\n") {
				t.Fatalf("volume: exit status %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			fsckClean(t, vol, "after the run")
		})
	}
}

// TestWorkdir starts the program in a share with -w: relative paths and
// getwd work from there; a -w that is no directory is said and / is used.
func TestWorkdir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi"), 0o644)
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, "-v", dir+":/data:ro", "-w", "/data", image(t, "workdir"))
		if want := "getwd: /data <nil>\nhello.txt: \"hi\" <nil>\n"; r.code != 0 || r.stdout != want {
			t.Fatalf("exit status %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
		r = run(t, "run", "--vmm", vmm, "-w", "/nowhere", image(t, "workdir"))
		if !strings.HasPrefix(r.stdout, "getwd: / <nil>\n") || !strings.Contains(r.stderr, "starting in /") {
			t.Fatalf("-w /nowhere: exit status %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestSelectiveDrivers builds a program that opens no files and one that
// does: only the second carries the share and disk drivers, unigo build -v
// says which, and -v on the first is refused with the reason.
func TestSelectiveDrivers(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		pkg, says string
		drivers   bool
	}{
		{"../../examples/hello", "no share or disk drivers: the program opens no files", false},
		{"./testdata/workdir", "the share and disk drivers (9P for -v folders, virtio-blk for --disk and the block volumes of -v FILE.img, with their file system), because the program calls", true},
	} {
		img := filepath.Join(dir, filepath.Base(c.pkg)+".img")
		r := run(t, "build", "-v", "-o", img, c.pkg)
		if r.code != 0 || !strings.Contains(r.stderr, c.says) {
			t.Fatalf("build -v %s: exit status %d, stderr:\n%s\nwant %q", c.pkg, r.code, r.stderr, c.says)
		}
		f, err := elf.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		syms, _ := f.Symbols()
		f.Close()
		has := false
		for _, s := range syms {
			has = has || s.Name == "unigo.dev/unigo/guest/kernel.p9rpc"
		}
		if has != c.drivers {
			t.Errorf("%s: the 9P client linked: %v, want %v", c.pkg, has, c.drivers)
		}
		if !c.drivers {
			r := run(t, "run", "-v", dir+":/data", img)
			if r.code == 0 || !strings.Contains(r.stderr, "left the share and disk drivers out") {
				t.Errorf("-v with %s: exit status %d, stderr %q", c.pkg, r.code, r.stderr)
			}
			if r := run(t, "run", img); r.code != 0 || r.stdout != "hello\n" {
				t.Errorf("%s without drivers: exit status %d, stdout %q", c.pkg, r.code, r.stdout)
			}
		}
	}
}

// TestCwdGone removes the working directory, in /tmp and on a block
// volume: what the calls that use it answer then is Linux's, and a
// directory made later does not take its place.
func TestCwdGone(t *testing.T) {
	img := image(t, "cwdgone")
	sameAsLinuxImage(t, "cwdgone", img, []string{t.TempDir()}, []string{"/tmp"})
	vol := newVolume(t, "16M")
	sameAsLinuxImage(t, "cwdgone", img, []string{t.TempDir()}, []string{"/data"}, "-v", vol+":/data")
	fsckClean(t, vol, "after the runs")
}
