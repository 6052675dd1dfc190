package e2e

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"unigo.dev/unigo/test/e2e/testdata/records"
)

// killAfter runs unigo with args, hands each line the guest prints to
// line, which reports whether it counts (and fails the test on a line it
// did not expect), and kills the monitor with SIGKILL once want lines
// have counted: a crash at a moment the test does not choose exactly.
// The test fails if the guest stops first.
func killAfter(t *testing.T, want int, line func(string) bool, args ...string) {
	t.Helper()
	cmd := exec.Command(unigoBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	counted := 0
	for counted < want && sc.Scan() {
		if line(sc.Text()) {
			counted++
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if counted < want {
		t.Fatalf("the guest stopped after %d of %d lines\n%s", counted, want, stderr.String())
	}
}

// counter returns a line function for killAfter that counts the lines
// "PREFIX N", keeping N in *last, and fails on any other line.
func counter(t *testing.T, prefix string, last *int) func(string) bool {
	return func(l string) bool {
		n, ok := strings.CutPrefix(l, prefix)
		if !ok {
			t.Fatalf("the guest said %q", l)
		}
		*last, _ = strconv.Atoi(n)
		return true
	}
}

// TestDiskCrash kills the monitor with SIGKILL, 20 times at random
// moments, while the guest writes records to a raw disk (--disk) with
// fsync after each; every record the guest saw fsynced must be on the
// host's file after each kill.
func TestDiskCrash(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		img := image(t, "blkrecords")
		disk := filepath.Join(t.TempDir(), "disk.img")
		seed := time.Now().UnixNano()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		for round := 0; round < 20; round++ {
			os.Remove(disk)
			if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			want := 1 + rng.IntN(100) // kill after this many fsynced records
			last := -1
			killAfter(t, want, counter(t, "synced ", &last), "run", "--vmm", vmm, "--disk", disk, img)
			b, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= last; i++ {
				if !bytes.Equal(b[i*512:(i+1)*512], records.Record(uint64(i))) {
					t.Fatalf("round %d: record %d of %d fsynced ones is not on the host's disk", round, i, last+1)
				}
			}
		}
		// The guest reads back what the host holds.
		r := run(t, "run", "--vmm", vmm, "--disk", disk, img, "--", "check")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "valid records: ") {
			t.Fatalf("check: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestDiskFull writes records until the disk's end: the write past it is
// ENOSPC, not a hang or a wrapped write; a read-only disk refuses to open
// for writing.
func TestDiskFull(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		disk := filepath.Join(t.TempDir(), "disk.img")
		os.WriteFile(disk, make([]byte, 64<<10), 0o644)
		r := run(t, "run", "--vmm", vmm, "--disk", disk, image(t, "blkrecords"))
		if r.code != 0 || !strings.HasSuffix(r.stdout, "synced 127\nfull: no space left on device\n") {
			t.Fatalf("exit status %d; stdout ends:\n%s\nstderr:\n%s", r.code, tail(r.stdout), r.stderr)
		}
		r = run(t, "run", "--vmm", vmm, "--disk", disk+":ro", image(t, "blkrecords"), "--", "check")
		if r.stdout != "valid records: 128\n" {
			t.Fatalf("read-only check: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, "run", "--vmm", vmm, "--disk", disk+":ro", image(t, "blkrecords"))
		if !strings.Contains(r.stdout, "open: open /dev/vda: read-only file system") {
			t.Fatalf("writing a read-only disk: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}
