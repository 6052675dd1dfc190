package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"unigo.dev/unigo/test/e2e/testdata/records"
)

// TestVolumeTool runs unigo volume on real files: create makes a sparse
// volume that checks clean and lists empty; the errors name the fix.
func TestVolumeTool(t *testing.T) {
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol.img")
	zeros := filepath.Join(dir, "zeros.img")
	os.WriteFile(zeros, make([]byte, 1<<20), 0o644)
	if r := run(t, "volume", "create", "--size", "1G", vol); r.code != 0 {
		t.Fatalf("create: exit status %d\n%s", r.code, r.stderr)
	}
	st, err := os.Stat(vol)
	if err != nil || st.Size() != 1<<30 {
		t.Fatalf("the volume: %v, %v", st, err)
	}
	if r := run(t, "volume", "fsck", vol); r.code != 0 || !strings.Contains(r.stdout, "clean") {
		t.Fatalf("fsck: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "volume", "ls", vol); r.code != 0 || r.stdout != "" {
		t.Fatalf("ls of an empty volume: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "--size", "1G", vol}, "remove the file first"},
		{[]string{"volume", "create", "--size", "1M", filepath.Join(dir, "small.img")}, "at least 4M"},
		{[]string{"volume", "create", vol}, "--size"},
		{[]string{"volume", "cp", vol + ":/missing", dir}, "does not exist"},
		{[]string{"volume", "fsck", filepath.Join(dir, "nothing.img")}, "no such file"},
		{[]string{"volume", "ls", zeros}, "not a Unigo volume"},
	} {
		if r := run(t, c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("unigo %s: exit status %d, stderr %q; want %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// newVolume makes an empty volume of size (unigo volume create) in a
// fresh folder.
func newVolume(t *testing.T, size string) string {
	t.Helper()
	vol := filepath.Join(t.TempDir(), "vol.img")
	if r := run(t, "volume", "create", "--size", size, vol); r.code != 0 {
		t.Fatalf("volume create: exit status %d\n%s", r.code, r.stderr)
	}
	return vol
}

// fsckClean wants unigo volume fsck to find vol clean, and returns what
// it said.
func fsckClean(t *testing.T, vol, when string) string {
	t.Helper()
	r := run(t, "volume", "fsck", vol)
	if r.code != 0 || !strings.Contains(r.stdout, "clean") {
		t.Fatalf("%s: fsck: exit status %d\n%s%s", when, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// TestVolume runs TestTmpfs's program on a block volume (-v FILE.img),
// on both monitors, each on a new volume: its output must be the same
// program's on Linux; the volume then checks clean, and what the guest
// left there comes out with unigo volume cp.
func TestVolume(t *testing.T) {
	native := filepath.Join(t.TempDir(), "tmpfs")
	build := exec.Command("go", "build", "-o", native, ".")
	build.Dir = filepath.Join("testdata", "tmpfs")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := exec.Command(native, t.TempDir()).Output()
	if err != nil {
		t.Fatalf("the program on Linux: %v", err)
	}
	bothVMMs(t, func(t *testing.T, vmm string) {
		vol := newVolume(t, "64M")
		r := run(t, "run", "--vmm", vmm, "-v", vol+":/data", image(t, "tmpfs"), "--", "/data")
		if r.code != 0 || r.stdout != string(want) {
			t.Fatalf("exit status %d; stdout:\n%s\nwant (Linux):\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
		fsckClean(t, vol, "after the run")
		// A second boot sees what the first left, and the host gets it out.
		r = run(t, "run", "--vmm", vmm, "-v", vol+":/data", image(t, "volfull"))
		if r.code != 0 || !strings.Contains(r.stdout, "write again: <nil>") {
			t.Fatalf("volfull: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		out := filepath.Join(t.TempDir(), "again")
		if r := run(t, "volume", "cp", vol+":/data/again", out); r.code != 0 {
			t.Fatalf("volume cp: exit status %d\n%s", r.code, r.stderr)
		}
		if b, err := os.ReadFile(out); err != nil || len(b) != 64<<10 {
			t.Fatalf("the file out of the volume: %d bytes, %v", len(b), err)
		}
		// Read-only: the guest's writes fail, and the file is left as it was.
		before, _ := os.ReadFile(vol)
		r = run(t, "run", "--vmm", vmm, "-v", vol+":/data:ro", image(t, "volrecords"))
		if r.code == 0 || !strings.Contains(r.stdout, "read-only file system") {
			t.Fatalf("read-only volume: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if after, _ := os.ReadFile(vol); !bytes.Equal(before, after) {
			t.Fatal("a read-only volume changed")
		}
	})
}

// TestVolumeMany makes 5,000 files on a volume, more than the kernel's
// node table holds, so that nodes are evicted and loaded again: every
// file reads back right, and the volume checks clean. On the own monitor
// it runs again in a 24 MiB guest, whose block cache is a fraction of
// the usual.
func TestVolumeMany(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		volumeMany(t, "--vmm", vmm)
		if vmm == "kvm" {
			volumeMany(t, "-m", "24M")
		}
	})
}

// volumeMany runs volmany on a new volume with the run flags given.
func volumeMany(t *testing.T, flags ...string) {
	t.Helper()
	vol := newVolume(t, "512M")
	r := run(t, append(append([]string{"run"}, flags...), "-v", vol+":/data", image(t, "volmany"))...)
	if want := "files: 5000 wrong: 0\nfiles: 2500 wrong: 0\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("%v: exit status %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s", flags, r.code, r.stdout, want, r.stderr)
	}
	fsckClean(t, vol, "after the run")
	if r := run(t, "volume", "ls", vol+":/data/m/d49"); r.code != 0 || strings.Count(r.stdout, "\n") != 50 {
		t.Fatalf("volume ls: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestBoltFiles runs bbolt in a folder share and in /tmp, where shared
// mappings are a copy that writes update (a share's) or the file's own
// pages (/tmp's): 200 transactions, then a second boot (the share) finds
// them all.
func TestBoltFiles(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		share := t.TempDir()
		img := image(t, "bolt")
		r := run(t, "run", "--vmm", vmm, "-v", share+":/data", img, "--", "write", "/data/bolt.db", "200")
		if r.code != 0 || !strings.HasSuffix(r.stdout, "committed 199\n") {
			t.Fatalf("write on a share: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := run(t, "run", "--vmm", vmm, "-v", share+":/data", img, "--", "check", "/data/bolt.db"); r.code != 0 || r.stdout != "keys: 200\n" {
			t.Fatalf("check on a share: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := run(t, "run", "--vmm", vmm, img, "--", "write", "/tmp/bolt.db", "200"); r.code != 0 || !strings.HasSuffix(r.stdout, "committed 199\n") {
			t.Fatalf("write in /tmp: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestVolumeInUse runs a second instance on a volume another holds: the
// own monitor refuses it beside a writer, read-only or not, naming the
// reason; read-only instances share a volume.
func TestVolumeInUse(t *testing.T) {
	needKVM(t)
	vol := newVolume(t, "16M")
	hold := func(flag string) *exec.Cmd {
		cmd, out, stderr := startInstance(t, "run", "-v", flag, image(t, "volwait"))
		if line, err := out.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
			t.Fatalf("-v %s: the instance said %q (%v)\n%s", flag, line, err, stderr.String())
		}
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		cmd.Process.Kill()
		cmd.Wait()
	}
	w := hold(vol + ":/data")
	for _, flag := range []string{vol + ":/data", vol + ":/data:ro"} {
		if r := runFor(t, 20*time.Second, "run", "-v", flag, image(t, "volwait")); r.code == 0 || !strings.Contains(r.stderr, "in use by another instance") {
			t.Errorf("-v %s beside a writer: exit status %d, stderr %q", flag, r.code, r.stderr)
		}
	}
	stop(w)
	// The killed writer committed nothing since its mount, which emptied
	// the journal: read-only mounts take the volume as it is.
	r1 := hold(vol + ":/data:ro")
	defer stop(r1)
	r2 := hold(vol + ":/data:ro")
	defer stop(r2)
	if r := runFor(t, 20*time.Second, "run", "-v", vol+":/data", image(t, "volwait")); r.code == 0 || !strings.Contains(r.stderr, "in use by another instance") {
		t.Errorf("a writer beside readers: exit status %d, stderr %q", r.code, r.stderr)
	}
}

// TestVolumeFull fills a 4 MiB volume: ENOSPC for data and for inodes
// reaches the program as an error, removing files gives the space back,
// and the volume checks clean.
func TestVolumeFull(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		vol := newVolume(t, "4M")
		r := run(t, "run", "--vmm", vmm, "-v", vol+":/data", image(t, "volfull"))
		want := `fill: no space left on device true
free blocks when full: 0
fsync when full: <nil>
inodes: no space left on device true
remove: <nil>
free blocks after: true
write again: <nil>
`
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit status %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
		fsckClean(t, vol, "after filling")
	})
}

// TestVolumeCrash kills the monitor with SIGKILL, 20 times at random
// moments, while the guest appends records to a volume's file and
// creates, renames and removes files, with fsync after each record:
// after each kill the volume checks clean (its journal replayed by the
// host tool, as the next mount replays it), every record the guest saw
// fsynced is in the file, and the next boot goes on from there; every
// fifth round a read-only mount, which replays in memory, sees them too.
func TestVolumeCrash(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		img := image(t, "volrecords")
		vol := newVolume(t, "16M")
		seed := time.Now().UnixNano()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		next := 0 // the first record of the round
		for round := 0; round < 20; round++ {
			want := 1 + rng.IntN(60) // kill after this many fsynced records
			last := -1
			count := counter(t, "synced ", &last)
			killAfter(t, want, func(l string) bool {
				if n, ok := strings.CutPrefix(l, "resumed at "); ok {
					if at, _ := strconv.Atoi(n); at < next {
						t.Fatalf("round %d: resumed at %d, but record %d was fsynced", round, at, next-1)
					}
					return false
				}
				return count(l)
			}, "run", "--vmm", vmm, "-v", vol+":/data", img)
			// The orphan of this round, not of the last: the mount freed it.
			if notes := strings.Count(fsckClean(t, vol, fmt.Sprintf("round %d", round)), "note:"); notes > 1 {
				t.Fatalf("round %d: %d files removed while open are left; the mounts should have freed all but the last", round, notes)
			}
			logf := filepath.Join(t.TempDir(), "log")
			if r := run(t, "volume", "cp", vol+":/data/log", logf); r.code != 0 {
				t.Fatalf("round %d: volume cp: %s", round, r.stderr)
			}
			b, _ := os.ReadFile(logf)
			for i := 0; i <= last; i++ {
				if len(b) < (i+1)*512 || !bytes.Equal(b[i*512:(i+1)*512], records.Record(uint64(i))) {
					t.Fatalf("round %d: record %d of %d fsynced ones is not in the volume's log", round, i, last+1)
				}
			}
			curf := filepath.Join(t.TempDir(), "cur")
			if r := run(t, "volume", "cp", vol+":/data/cur", curf); r.code != 0 {
				t.Fatalf("round %d: volume cp cur: %s", round, r.stderr)
			}
			// The guest may have gone on past the last line read before the
			// kill landed: cur names record last or a later one, whose record
			// the log holds (it is written first).
			c, _ := os.ReadFile(curf)
			if cur, err := strconv.Atoi(string(c)); err != nil || cur < last || len(b) < (cur+1)*512 || !bytes.Equal(b[cur*512:(cur+1)*512], records.Record(uint64(cur))) {
				t.Fatalf("round %d: cur holds %q; record %d was the last fsynced, and the log holds %d bytes", round, c, last, len(b))
			}
			if round%5 == 4 {
				// Read-only, the kill's committed transactions are replayed
				// in the guest's memory only: the records are there, and
				// the file is left as it was.
				before, _ := os.ReadFile(vol)
				r := run(t, "run", "--vmm", vmm, "-v", vol+":/data:ro", img, "--", "check")
				n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(r.stdout), "valid records: "))
				if r.code != 0 || n < last+1 {
					t.Fatalf("round %d: read-only check: exit status %d, %d records; %d were fsynced\n%s%s", round, r.code, n, last+1, r.stdout, r.stderr)
				}
				if after, _ := os.ReadFile(vol); !bytes.Equal(before, after) {
					t.Fatalf("round %d: a read-only mount changed the volume", round)
				}
			}
			next = last + 1
		}
	})
}

// TestVolumeBolt runs the bbolt database, unmodified, on a volume and kills
// the monitor with SIGKILL while it commits, 5 times: each time the
// database opens again with every transaction bbolt saw committed, and
// the volume checks clean.
func TestVolumeBolt(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		img := image(t, "bolt")
		vol := newVolume(t, "64M")
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		last := -1
		for round := 0; round < 5; round++ {
			want := 1 + rng.IntN(40)
			count := counter(t, "committed ", &last)
			killAfter(t, want, func(l string) bool {
				if n, ok := strings.CutPrefix(l, "keys: "); ok {
					if keys, _ := strconv.Atoi(n); keys < last+1 {
						t.Fatalf("round %d: the database holds %d keys, but transaction %d was committed", round, keys, last)
					}
					return false
				}
				return count(l)
			}, "run", "--vmm", vmm, "-v", vol+":/data", img, "--", "write", "/data/bolt.db")
			fsckClean(t, vol, fmt.Sprintf("round %d", round))
		}
		r := run(t, "run", "--vmm", vmm, "-v", vol+":/data", img, "--", "check", "/data/bolt.db")
		keys, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(r.stdout), "keys: "))
		if r.code != 0 || keys < last+1 {
			t.Fatalf("check: exit status %d, %d keys; transaction %d was committed\n%s%s", r.code, keys, last, r.stdout, r.stderr)
		}
	})
}
