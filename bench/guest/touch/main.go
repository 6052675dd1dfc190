// Touch maps 32 MiB and writes one byte per page, twice, and reports the
// cost per page of the first touch (demand paging) and of the second.
package main

import (
	"fmt"
	"syscall"
	"time"
)

func main() {
	const size = 32 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(err)
	}
	pages := float64(size / 4096)
	t0 := time.Now()
	for i := 0; i < size; i += 4096 {
		b[i] = 1
	}
	first := time.Since(t0)
	t1 := time.Now()
	for i := 0; i < size; i += 4096 {
		b[i] = 2
	}
	fmt.Printf("first_us %.2f second_us %.3f\n", float64(first.Nanoseconds())/pages/1000, float64(time.Since(t1).Nanoseconds())/pages/1000)
}
