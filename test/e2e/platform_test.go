package e2e

import (
	"context"
	"errors"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQEMUPlatform boots images with plain qemu-system-x86_64 -kernel, as a
// user would without unigo, and checks what the kernel's platform layer
// finds (--debug's report) and how the machine powers off.
func TestQEMUPlatform(t *testing.T) {
	needQEMU(t)
	hello, exitcode := image(t, "examples/hello"), image(t, "exitcode")
	for _, c := range []struct {
		name    string
		args    []string
		img     string
		cmdline string
		status  int      // QEMU's exit status
		want    []string // in the output (COM1: stdout and stderr alike)
	}{
		{"microvm ACPI soft-off", []string{"-M", "microvm"}, hello, "debug a:hello", 0,
			[]string{"unigo: platform: PVH", "soft-off", "\nhello\n"}},
		{"microvm virtio-mmio", []string{"-M", "microvm,acpi=off", "-device", "virtio-rng-device",
			"-device", "isa-debug-exit,iobase=0xf4,iosize=4"}, hello, "debug a:hello", 1,
			[]string{"no ACPI", "unigo: virtio-mmio at 0xfeb", "device 4\n", "\nhello\n"}},
		{"q35 ECAM", []string{"-M", "q35", "-device", "virtio-rng-pci"}, hello, "debug a:hello", 0,
			[]string{"PM timer at port 0x", "ECAM at 0xb0000000", " 1af4:1005 class 00ff00", "pci 00:1f.0 8086:2918"}},
		{"pc legacy PCI", []string{"-M", "pc", "-device", "virtio-rng-pci"}, hello, "debug a:hello", 0,
			[]string{"from the ACPI PM timer", "pci 00:01.0 8086:7000 class 060100", " 1af4:1005 class 00ff00"}},
		{"isa-debug-exit", []string{"-M", "microvm", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"},
			exitcode, "a:exitcode a:3", 3*2 + 1, []string{"exiting with 3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"-accel", "tcg", "-cpu", "max", "-m", "128M", "-nodefaults", "-no-user-config",
				"-display", "none", "-no-reboot", "-serial", "stdio"}, c.args...)
			args = append(args, "-kernel", c.img, "-append", c.cmdline)
			out, err := exec.CommandContext(ctx, "qemu-system-x86_64", args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("QEMU did not stop in a minute: no power-off?\n%s", out)
			}
			status := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if status != c.status || t.Failed() {
				t.Fatalf("QEMU exit status %d, want %d; output:\n%s", status, c.status, out)
			}
		})
	}
}

// TestKvmclock: under KVM the kernel takes the TSC frequency from kvmclock
// (the own monitor has KVM keep it), which must agree with the frequency
// KVM_GET_TSC_KHZ gave the monitor; the clock test then runs on it.
func TestKvmclock(t *testing.T) {
	needKVM(t)
	r := run(t, "run", "--debug", image(t, "clock"))
	m := regexp.MustCompile(`unigo: clock: TSC (\d+) kHz from kvmclock \(the monitor: (\d+) kHz\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no kvmclock line with --debug (does this KVM offer KVM_FEATURE_CLOCKSOURCE2?):\n%s", r.stderr)
	}
	kc, _ := strconv.ParseFloat(m[1], 64)
	mon, _ := strconv.ParseFloat(m[2], 64)
	if d := math.Abs(kc-mon) / mon; d > 1e-3 {
		t.Errorf("kvmclock's %v kHz is %.2f%% off the monitor's %v kHz", kc, 100*d, mon)
	}
	checkClock(t, r)
}
