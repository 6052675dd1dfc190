// Command volfull fills the small block volume at /data: data until the
// blocks run out, then empty files until the inodes do; each error must
// reach the program. It then removes what it wrote and writes again.
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func main() {
	f, err := os.Create("/data/fill")
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(1)
	}
	chunk := make([]byte, 64<<10)
	total := 0
	for {
		n, err := f.Write(chunk)
		total += n
		if err != nil {
			fmt.Println("fill:", errors.Unwrap(err), total > 2<<20)
			break
		}
	}
	var st syscall.Statfs_t
	syscall.Statfs("/data", &st)
	fmt.Println("free blocks when full:", st.Bfree)
	fmt.Println("fsync when full:", f.Sync())
	f.Close()
	files := 0
	for {
		g, err := os.Create(fmt.Sprintf("/data/e%d", files))
		if err != nil {
			fmt.Println("inodes:", errors.Unwrap(err), files > 10)
			break
		}
		g.Close()
		files++
	}
	for i := 0; i < files; i++ {
		os.Remove(fmt.Sprintf("/data/e%d", i))
	}
	fmt.Println("remove:", os.Remove("/data/fill"))
	syscall.Statfs("/data", &st)
	fmt.Println("free blocks after:", st.Bfree > 512)
	fmt.Println("write again:", os.WriteFile("/data/again", chunk, 0o644))
}
