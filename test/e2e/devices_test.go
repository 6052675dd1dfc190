package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDevices reads and writes /dev/null, /dev/zero, /dev/random and
// /dev/urandom and stats them inside the guest.
func TestDevices(t *testing.T) { sameAsLinux(t, "devices") }

// TestProcSelf reads /proc/self/cmdline and looks up the user and group
// (os/user reads /etc/passwd and /etc/group).
func TestProcSelf(t *testing.T) { sameAsLinux(t, "procself", "one", "two words", "three") }

// sameAsLinux runs testdata program pkg with args on both monitors and
// wants what it prints as a Linux process here.
func sameAsLinux(t *testing.T, pkg string, args ...string) {
	sameAsLinuxIn(t, pkg, args, args)
}

// sameAsLinuxIn is sameAsLinux with the arguments of each run given apart
// (a path that is /tmp in the guest and a fresh directory on Linux, say).
func sameAsLinuxIn(t *testing.T, pkg string, linuxArgs, guestArgs []string) {
	t.Helper()
	sameAsLinuxImage(t, pkg, image(t, pkg), linuxArgs, guestArgs)
}

// sameAsLinuxImage is sameAsLinuxIn with the guest's image given (one
// built with --files, say) and more flags for unigo run.
func sameAsLinuxImage(t *testing.T, pkg, img string, linuxArgs, guestArgs []string, runFlags ...string) {
	t.Helper()
	native := filepath.Join(t.TempDir(), pkg)
	build := exec.Command("go", "build", "-o", native, ".")
	build.Dir = filepath.Join("testdata", pkg)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := exec.Command(native, linuxArgs...).Output()
	if err != nil {
		t.Fatalf("the program on Linux: %v", err)
	}
	bothVMMs(t, func(t *testing.T, vmm string) {
		args := append(append([]string{"run", "--vmm", vmm}, runFlags...), img, "--")
		r := run(t, append(args, guestArgs...)...)
		if r.code != 0 || r.stdout != string(want) {
			t.Fatalf("exit status %d; stdout:\n%s\nwant (Linux):\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
	})
}
