package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// linuxVM is the Linux guest the harness compares with: Debian's cloud
// kernel (the distribution's kernel made for VMs) and an initramfs whose
// init is the program, under QEMU (TCG) on the microvm machine, the same
// machine `unigo run --vmm qemu` uses.
type linuxVM struct {
	kernel  string // bzImage
	modules string // the kernel's /lib/modules/VERSION/kernel
	version string
}

// linuxPackage is the Debian package of the cloud kernel: its dependency
// names the current versioned package.
const linuxPackage = "linux-image-cloud-amd64"

// findLinux returns the cloud kernel installed on the host, or else one
// fetched with apt-get download into cache and unpacked there (no
// installation, no root needed for the unpacking).
func findLinux(cache string) (*linuxVM, error) {
	for _, root := range []string{"/", filepath.Join(cache, "linux")} {
		k, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*-cloud-amd64"))
		if len(k) > 0 {
			v := strings.TrimPrefix(filepath.Base(k[len(k)-1]), "vmlinuz-")
			m := filepath.Join(root, "lib/modules", v, "kernel")
			if _, err := os.Stat(m); err == nil {
				return &linuxVM{kernel: k[len(k)-1], modules: m, version: v}, nil
			}
		}
	}
	deps, err := exec.Command("apt-cache", "depends", linuxPackage).Output()
	if err != nil {
		return nil, fmt.Errorf("no cloud kernel in /boot, and apt-cache depends %s: %v (install it: apt-get install %s)", linuxPackage, err, linuxPackage)
	}
	var pkg string
	for _, l := range strings.Split(string(deps), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "Depends: "); ok && strings.HasPrefix(p, "linux-image-") {
			pkg = p
		}
	}
	if pkg == "" {
		return nil, fmt.Errorf("apt-cache depends %s names no kernel package", linuxPackage)
	}
	dl := filepath.Join(cache, "deb")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, err
	}
	c := exec.Command("apt-get", "download", pkg)
	c.Dir = dl
	if out, err := c.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) == 0 {
		return nil, fmt.Errorf("apt-get download %s left no .deb in %s", pkg, dl)
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], filepath.Join(cache, "linux")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %v\n%s", debs[0], err, out)
	}
	return findLinux(cache)
}

// vmModules are the modules vminit loads, where the kernel tree keeps them.
var vmModules = map[string]string{
	"virtio":       "drivers/virtio/virtio.ko",
	"virtio_ring":  "drivers/virtio/virtio_ring.ko",
	"virtio_mmio":  "drivers/virtio/virtio_mmio.ko",
	"failover":     "net/core/failover.ko",
	"net_failover": "drivers/net/net_failover.ko",
	"virtio_net":   "drivers/net/virtio_net.ko",
}

// initramfs writes a cpio archive (the kernel's "newc" format,
// Documentation/driver-api/early-userspace/buffer-format.rst) holding
// /dev/console, /proc, the program as /PROG and, when init is given, init
// as /init with the network modules; without init the program is /init.
func (vm *linuxVM) initramfs(out, prog, init string) error {
	var w cpio
	w.dir("dev")
	w.node("dev/console", 0o020600, 5, 1) // char device 5:1
	w.dir("proc")
	name := filepath.Base(prog)
	if init == "" {
		name = "init"
	} else {
		if err := w.file("init", init); err != nil {
			return err
		}
		w.dir("modules")
		for m, p := range vmModules {
			if err := w.file("modules/"+m+".ko", filepath.Join(vm.modules, p)); err != nil {
				return err
			}
		}
	}
	if err := w.file(name, prog); err != nil {
		return err
	}
	w.trailer()
	return os.WriteFile(out, w.buf.Bytes(), 0o644)
}

// qemu returns QEMU's arguments to boot initrd with mem MiB; a non-zero port
// is forwarded from the host's loopback to the guest's port 80 (slirp). With
// args, the kernel runs /init with them (after "--", kernel-parameters.txt).
func (vm *linuxVM) qemu(initrd string, memMiB, port int, args ...string) []string {
	a := []string{"-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", fmt.Sprintf("%dM", memMiB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", vm.kernel, "-initrd", initrd}
	// Under TCG the kernel's TSC calibration against the PIT fails now and
	// then on this loaded host, and the boot then hangs; TCG's TSC is the
	// host's (QEMU reads the host's counter), so its frequency is given.
	cmdline := "console=ttyS0 quiet panic=-1"
	if khz := hostTSCkHz(); khz > 0 {
		cmdline += fmt.Sprintf(" tsc_early_khz=%d", khz)
	}
	if port != 0 {
		a = append(a, "-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:80", port),
			"-device", "virtio-net-device,netdev=n0")
	}
	if len(args) > 0 {
		cmdline += " -- " + strings.Join(args, " ")
	}
	return append(a, "-append", cmdline)
}

// cpio builds a newc archive in memory.
type cpio struct {
	buf bytes.Buffer
	ino int
}

func (c *cpio) header(name string, mode, size, rmaj, rmin int) {
	c.ino++
	fmt.Fprintf(&c.buf, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rmaj, rmin, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
}

func (c *cpio) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpio) dir(name string)                        { c.header(name, 0o040755, 0, 0, 0) }
func (c *cpio) node(name string, mode, rmaj, rmin int) { c.header(name, mode, 0, rmaj, rmin) }
func (c *cpio) trailer()                               { c.header("TRAILER!!!", 0, 0, 0, 0) }

func (c *cpio) file(name, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	c.header(name, 0o100755, len(b), 0, 0)
	c.buf.Write(b)
	c.pad()
	return nil
}

// hostTSCkHz reads the host's clock rate from /proc/cpuinfo ("cpu MHz"; on
// x86 Linux reports the TSC's), 0 if it cannot.
func hostTSCkHz() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			var mhz float64
			if _, err := fmt.Sscan(strings.TrimSpace(v), &mhz); err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}
