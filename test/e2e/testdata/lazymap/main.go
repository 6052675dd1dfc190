// Lazymap maps 256 MiB, more than its guest has, touches one page in each
// MiB and checks what it reads back: memory comes on first touch. It also
// hands the kernel a page it has never touched.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	const size = 256 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(err)
	}
	for i := 0; i < size; i += 1 << 20 {
		b[i+7] = byte(i >> 20)
	}
	sum := 0
	for i := 0; i < size; i += 1 << 20 {
		if b[i] != 0 {
			panic("fresh memory is not zero")
		}
		sum += int(b[i+7])
	}
	fmt.Println("sum", sum)
	// The kernel reads a page nobody touched: it must be there, and zero.
	n, err := os.Stdout.Write(b[size-4096+100 : size-4096+104])
	fmt.Println("\nwrote", n, err)
	if err := syscall.Munmap(b); err != nil {
		panic(err)
	}
	fmt.Println("unmapped")
}
