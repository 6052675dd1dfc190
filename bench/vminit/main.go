// Vminit is the init of the benchmark harness's Linux VM: Debian's cloud
// kernel has its virtio drivers as modules and no kernel-level IP
// configuration, so before the program runs this loads the modules of a
// virtio-mmio network device, gives eth0 the address QEMU's user network
// expects (10.0.2.15/24) and brings eth0 and lo up; then it executes the
// program, which becomes process 1. The program measured is unchanged.
//
//	/init PROGRAM [ARGS...]  (from the kernel's command line: init=/init -- /httpd)
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// modules in load order: each needs some before it (their .modinfo "depends=").
var modules = []string{"virtio_ring", "virtio", "virtio_mmio", "failover", "net_failover", "virtio_net"}

func main() {
	if len(os.Args) < 2 {
		fail("usage: /init PROGRAM [ARGS...]")
	}
	// virtio_mmio's devices are named on the kernel's command line (QEMU's
	// microvm adds virtio_mmio.device=...); a module loaded after boot gets
	// its parameters from whoever loads it.
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		check(syscall.Mount("proc", "/proc", "proc", 0, ""), "mount /proc")
		cmdline, err = os.ReadFile("/proc/cmdline")
		check(err, "read /proc/cmdline")
	}
	for _, m := range modules {
		var params []string
		for _, w := range strings.Fields(string(cmdline)) {
			if p, ok := strings.CutPrefix(w, m+"."); ok {
				params = append(params, p)
			}
		}
		load("/modules/"+m+".ko", strings.Join(params, " "))
	}
	up("lo", [4]byte{127, 0, 0, 1}, [4]byte{255, 0, 0, 0})
	up("eth0", [4]byte{10, 0, 2, 15}, [4]byte{255, 255, 255, 0})
	err = syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fail(fmt.Sprintf("exec %s: %v", os.Args[1], err))
}

// load inserts a kernel module with finit_module(2).
func load(path, params string) {
	f, err := os.Open(path)
	check(err, "open module")
	p, _ := syscall.BytePtrFromString(params)
	if _, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(p)), 0); e != 0 && e != syscall.EEXIST {
		fail(fmt.Sprintf("finit_module %s: %v", path, e))
	}
	f.Close()
}

// ifreq is struct ifreq with a sockaddr_in (netdevice(7)).
type ifreq struct {
	name [16]byte
	data [24]byte
}

// up sets an interface's IPv4 address and netmask and brings it up with the
// SIOCSIF* ioctls of netdevice(7).
func up(name string, addr, mask [4]byte) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	check(err, "socket")
	defer syscall.Close(fd)
	ioctl := func(req uintptr, r *ifreq, what string) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(r))); e != 0 {
			fail(fmt.Sprintf("%s %s: %v", what, name, e))
		}
	}
	sin := func(a [4]byte) *ifreq {
		r := &ifreq{}
		copy(r.name[:], name)
		*(*uint16)(unsafe.Pointer(&r.data[0])) = syscall.AF_INET
		copy(r.data[4:8], a[:])
		return r
	}
	ioctl(syscall.SIOCSIFADDR, sin(addr), "SIOCSIFADDR")
	ioctl(syscall.SIOCSIFNETMASK, sin(mask), "SIOCSIFNETMASK")
	r := &ifreq{}
	copy(r.name[:], name)
	*(*uint16)(unsafe.Pointer(&r.data[0])) = syscall.IFF_UP | syscall.IFF_RUNNING
	ioctl(syscall.SIOCSIFFLAGS, r, "SIOCSIFFLAGS")
}

func check(err error, what string) {
	if err != nil {
		fail(what + ": " + err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "vminit:", msg)
	os.Exit(1)
}

// sysFinitModule is finit_module's number on amd64 (arch/x86/entry/syscalls/syscall_64.tbl).
const sysFinitModule = 313
