package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDevices reads and writes /dev/null, /dev/zero, /dev/random and
// /dev/urandom and stats them inside the guest, on both monitors, and wants
// what the same program prints as a Linux process here.
func TestDevices(t *testing.T) {
	native := filepath.Join(t.TempDir(), "devices")
	build := exec.Command("go", "build", "-o", native, ".")
	build.Dir = "testdata/devices"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := exec.Command(native).Output()
	if err != nil {
		t.Fatalf("the program on Linux: %v", err)
	}
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, image(t, "devices"))
		if r.code != 0 || r.stdout != string(want) {
			t.Fatalf("exit status %d; stdout:\n%s\nwant (Linux):\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
	})
}
