package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// record is testdata/blkrecords's record i.
func record(i uint64) []byte {
	r := make([]byte, 512)
	binary.LittleEndian.PutUint64(r, i)
	for j := 8; j < 508; j++ {
		r[j] = byte(i*31 + uint64(j))
	}
	binary.LittleEndian.PutUint32(r[508:], crc32.ChecksumIEEE(r[:508]))
	return r
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
			cmd := exec.Command(unigoBin, "run", "--vmm", vmm, "--disk", disk, img)
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
			last := -1
			for last+1 < want && sc.Scan() {
				n, ok := strings.CutPrefix(sc.Text(), "synced ")
				if !ok {
					t.Fatalf("round %d: guest said %q", round, sc.Text())
				}
				last, _ = strconv.Atoi(n)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if last+1 < want {
				t.Fatalf("round %d: the guest stopped after record %d\n%s", round, last, stderr.String())
			}
			b, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= last; i++ {
				if !bytes.Equal(b[i*512:(i+1)*512], record(uint64(i))) {
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
