// Syscall times a round trip of the cheapest system call, getppid(2).
package main

import (
	"fmt"
	"syscall"
	"time"
)

func main() {
	const n = 200_000
	t0 := time.Now()
	for i := 0; i < n; i++ {
		syscall.Getppid()
	}
	fmt.Printf("syscall_ns %.1f\n", float64(time.Since(t0).Nanoseconds())/n)
}
