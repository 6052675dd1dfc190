package e2e

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86)")
	}
}

// TestQEMU boots the same images under QEMU (microvm, TCG: real x86
// semantics) through the PVH entry, with the boot suite's assertions.
func TestQEMU(t *testing.T) {
	needQEMU(t)
	q := func(args ...string) []string { return append([]string{"run", "--vmm", "qemu"}, args...) }
	t.Run("hello", func(t *testing.T) {
		r := run(t, q(image(t, "examples/hello"))...)
		if r.code != 0 || r.stdout != "hello\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("exit status", func(t *testing.T) {
		checkExitStatus(t, q()...) // 200 and 255 need the control channel
		expect(t, run(t, q(image(t, "goexit"))...), 7, "exit from goroutine")
	})
	t.Run("run package", func(t *testing.T) {
		expect(t, run(t, q("./testdata/argsenv", "--", "pkg")...), 0, `args ["pkg"]`)
	})
	t.Run("unimplemented syscall", func(t *testing.T) {
		checkUnimplemented(t, q()...)
	})
	t.Run("stop signals", func(t *testing.T) {
		checkStopSignals(t, q()...)
		time.Sleep(200 * time.Millisecond)
		if out, err := exec.Command("pgrep", "-f", "sleeper.img").Output(); err == nil {
			t.Errorf("QEMU outlived unigo: pids %s", out)
		}
	})
	t.Run("unigo test", func(t *testing.T) {
		checkUnigoTest(t, "--vmm", "qemu")
	})
	t.Run("QEMU fails to start", func(t *testing.T) {
		// More memory than the host gives (the kernel's overcommit
		// heuristic refuses 8 TiB here): QEMU exits 1 before the guest
		// runs, which is not the guest's exit(0) through isa-debug-exit.
		r := run(t, q("-m", "8T", image(t, "examples/hello"))...)
		if r.code != 125 || !strings.Contains(r.stderr, "qemu-system-x86_64 failed (exit status 1)") {
			t.Fatalf("exit %d, want 125 with QEMU's failure:\n%s", r.code, r.stderr)
		}
	})
	t.Run("triple fault", func(t *testing.T) {
		// The PVH entry moved to runtime.abort: an INT3 in 32-bit mode
		// with no IDT, which QEMU (-no-reboot) ends without a status.
		r := run(t, q(pvhEntryAt(t, "runtime.abort.abi0"))...)
		if r.code != 134 || !strings.Contains(r.stderr, "without an exit status") {
			t.Fatalf("exit %d, want 134 with a report:\n%s", r.code, r.stderr)
		}
	})
	t.Run("panic", func(t *testing.T) {
		r := run(t, q(image(t, "panic"))...)
		if r.code != 2 || !strings.Contains(r.stderr, "panic: boom from unigo") {
			t.Fatalf("exit %d, want 2 with the panic on stderr:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("nil dereference", func(t *testing.T) {
		r := run(t, q(image(t, "nilderef"))...)
		if r.code != 2 || !strings.Contains(r.stderr, "invalid memory address or nil pointer dereference") {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
	})
	t.Run("goroutines", func(t *testing.T) {
		expect(t, run(t, q(image(t, "goroutines"))...), 0, "sum 1001000")
	})
	t.Run("args and env", func(t *testing.T) {
		r := run(t, q("-e", "FOO=bar baz", image(t, "argsenv"), "--", "arg1", "two words", "")...)
		expect(t, r, 0, `args ["arg1" "two words" ""]`)
		expect(t, r, 0, `FOO="bar baz" BAR=""`)
	})
	t.Run("random", func(t *testing.T) {
		expect(t, run(t, q(image(t, "random"))...), 0, "distinct 256")
	})
	t.Run("clock", func(t *testing.T) {
		checkClock(t, run(t, q(image(t, "clock"))...)) // the CMOS RTC and the calibrated TSC
	})
	t.Run("gc churn", func(t *testing.T) {
		expect(t, run(t, q("-m", "256M", image(t, "gcchurn"))...), 0, "allocated ")
	})
	t.Run("out of memory", func(t *testing.T) {
		checkOOM(t, run(t, q("-m", "64M", image(t, "oom"))...))
	})
	t.Run("demand paging", func(t *testing.T) {
		expect(t, run(t, q("-m", "64M", image(t, "lazymap"))...), 0, "unmapped\n")
	})
	t.Run("memory for the image", func(t *testing.T) {
		// bigbss's 24 MiB array fits the own monitor's 24 MiB (TestBSSHole);
		// QEMU's RAM must hold it: a clear refusal, not a guest crash.
		r := run(t, q("-m", "24M", image(t, "bigbss"), "--", "1")...)
		if r.code != 125 || !strings.Contains(r.stderr, "QEMU must hold") || !strings.Contains(r.stderr, "use -m") {
			t.Fatalf("exit %d, want 125 and a message naming -m; stderr:\n%s", r.code, r.stderr)
		}
		expect(t, run(t, q("-m", "64M", image(t, "bigbss"), "--", "24")...), 0, "touched 24 MiB, sum 783360 last 0\n")
	})
	t.Run("bad pointers", func(t *testing.T) {
		expect(t, run(t, q(image(t, "badptr"))...), 0, "survived")
	})
	for _, m := range []string{"q35", "pc"} {
		t.Run("machine "+m, func(t *testing.T) {
			qm := func(args ...string) []string {
				return append([]string{"run", "--vmm", "qemu", "--qemu-machine", m}, args...)
			}
			r := run(t, qm("-e", "FOO=bar", image(t, "argsenv"), "--", "x y")...)
			expect(t, r, 0, `args ["x y"]`)
			expect(t, r, 0, `FOO="bar"`)
			r = run(t, qm(image(t, "nilderef"))...)
			if r.code != 2 || !strings.Contains(r.stderr, "nil pointer dereference") {
				t.Fatalf("nil dereference on %s: exit %d\n%s", m, r.code, r.stderr)
			}
		})
	}
	t.Run("preemption", func(t *testing.T) {
		// The local APIC timer interrupts a spinning goroutine; Go's own
		// preemption does the rest (SIGURG delivery).
		checkPreemption(t, run(t, q(image(t, "preempt"))...))
	})
}

// TestQEMUFallback hides /dev/kvm in a private mount namespace: unigo run
// falls back to QEMU and says so once on stderr.
func TestQEMUFallback(t *testing.T) {
	needKVM(t)
	needQEMU(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	img := image(t, "examples/hello")
	script := `mount -t tmpfs none /dev && mknod /dev/null c 1 3 && mknod /dev/urandom c 1 9 && mknod /dev/zero c 1 5 &&
chmod 666 /dev/null /dev/urandom /dev/zero && exec "$0" run "$1"`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, unigoBin, img)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if stdout.String() != "hello\n" || strings.Count(stderr.String(), "running under QEMU") != 1 {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// pvhEntryAt returns a copy of the hello image whose PVH note enters at the
// function sym.
func pvhEntryAt(t *testing.T, sym string) string {
	raw, addr := helloWithSymbol(t, sym)
	// The note: namesz, descsz, type 18 (XEN_ELFNOTE_PHYS32_ENTRY), "Xen\0", entry.
	pat := []byte{4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0}
	i := bytes.Index(raw, pat)
	if i < 0 {
		t.Fatal("no PVH note in the image")
	}
	binary.LittleEndian.PutUint32(raw[i+len(pat):], uint32(addr))
	p := filepath.Join(t.TempDir(), "entry.img")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
