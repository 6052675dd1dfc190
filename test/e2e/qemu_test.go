package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
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
		for _, code := range []int{0, 3} {
			expect(t, run(t, q(image(t, "exitcode"), "--", strconv.Itoa(code))...), code, "exiting with")
		}
		expect(t, run(t, q(image(t, "goexit"))...), 7, "exit from goroutine")
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
