// Badptr passes ridiculous pointers to system calls, which must fail with
// EFAULT rather than bring the kernel down.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	bad := []uintptr{0, 8, 0xdead_beef_000, 1 << 47, ^uintptr(0) - 4095}
	for _, p := range bad {
		var errs []string
		call := func(name string, trap, a1, a2, a3 uintptr) {
			_, _, e := syscall.Syscall6(trap, a1, a2, a3, 8, 0, 0)
			errs = append(errs, fmt.Sprintf("%s=%d", name, e))
		}
		call("write", syscall.SYS_WRITE, 1, p, 16)
		call("clock_gettime", syscall.SYS_CLOCK_GETTIME, 1, p, 0)
		call("nanosleep", syscall.SYS_NANOSLEEP, p, 0, 0)
		call("getrandom", 318, p, 16, 0)
		call("rt_sigaction", syscall.SYS_RT_SIGACTION, 10, 0, p) // the old action goes to p
		call("uname", syscall.SYS_UNAME, p, 0, 0)
		call("pipe2", syscall.SYS_PIPE2, p, 0, 0)
		fmt.Println(errs)
	}
	fmt.Println("survived")
}
