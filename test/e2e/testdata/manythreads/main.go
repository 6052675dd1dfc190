// Command manythreads blocks 40 goroutines in nanosleep(2) at once, so that
// the runtime makes a thread for each, then lets each run 20 ms of
// computation, long enough to take timer interrupts on its own kernel stack,
// which the kernel took from RAM as the thread was made.
package main

import (
	"fmt"
	"syscall"
	"time"
)

const n = 40

func main() {
	done := make(chan uint64, n)
	for range n {
		go func() {
			ts := syscall.Timespec{Nsec: 300e6}
			syscall.Nanosleep(&ts, nil) // blocks this goroutine's thread in the kernel
			var x uint64
			for t := time.Now(); time.Since(t) < 20*time.Millisecond; x++ {
			}
			done <- x
		}()
	}
	for range n {
		<-done
	}
	fmt.Println("all", n, "goroutines ran")
}
