// Unimpl makes a system call the kernel does not implement (acct) and
// prints the error it gets.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	_, _, e := syscall.Syscall(syscall.SYS_ACCT, 0, 0, 0)
	fmt.Println("acct:", e.Error())
}
