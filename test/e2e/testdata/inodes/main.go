// Command inodes fills /tmp's node table, a kernel table whose pages are
// backed as it grows: it makes empty files until the kernel answers
// ENOSPC, checks the count against statfs's free nodes, removes them all
// and makes them again, which reuses the freed nodes.
package main

import (
	"fmt"
	"os"
	"syscall"

	"unigo.dev/unigo/test/e2e/testdata/errs"
)

func fill() (int, error) {
	for n := 0; ; n++ {
		f, err := os.Create(fmt.Sprintf("/tmp/f%d", n))
		if err != nil {
			return n, err
		}
		f.Close()
	}
}

func freeNodes() uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/tmp", &st); err != nil {
		fmt.Println("statfs:", err)
		os.Exit(1)
	}
	return st.Ffree
}

func main() {
	free := freeNodes()
	n, err := fill()
	fmt.Println("fill:", errs.Name(err))
	fmt.Println("made as many as were free:", uint64(n) == free, n > 1000)
	fmt.Println("free when full:", freeNodes())
	for i := range n {
		if err := os.Remove(fmt.Sprintf("/tmp/f%d", i)); err != nil {
			fmt.Println("remove:", err)
			os.Exit(1)
		}
	}
	fmt.Println("free again:", freeNodes() == free)
	m, err := fill()
	fmt.Println("fill again:", errs.Name(err), m == n)
}
