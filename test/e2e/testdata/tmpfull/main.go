// Command tmpfull checks what only Unigo's mounts show: the read-only
// root, /tmp's own file system and size limit, and the /proc/self files
// that describe them.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"unigo.dev/unigo/test/e2e/testdata/errs"
)

func main() {
	fmt.Println("create in /:", errs.Name(os.WriteFile("/x", nil, 0o644)))
	fmt.Println("mkdir in /:", errs.Name(os.Mkdir("/d", 0o755)))
	os.WriteFile("/tmp/a", []byte("a"), 0o644)
	fmt.Println("rename out of /tmp:", errs.Name(os.Rename("/tmp/a", "/a")))
	fmt.Println("remove /tmp:", errs.Name(syscall.Rmdir("/tmp")))

	es, _ := os.ReadDir("/")
	for _, e := range es {
		fmt.Println("in /:", e.Name(), e.IsDir())
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/tmp", &st); err != nil {
		fmt.Println("statfs:", err)
		os.Exit(1)
	}
	size := st.Blocks * uint64(st.Bsize)
	fmt.Printf("statfs /tmp: tmpfs %v\n", st.Type == 0x01021994)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	fmt.Println("mountinfo has /tmp:", strings.Contains(string(mi), " /tmp rw,"))
	exe, err := os.Executable()
	fmt.Println("executable:", exe, err)

	// Fill /tmp: the writes stop with ENOSPC at its size, and space comes
	// back when the file goes.
	for round := 0; round < 2; round++ {
		f, err := os.Create("/tmp/fill")
		if err != nil {
			fmt.Println("create:", err)
			os.Exit(1)
		}
		buf := make([]byte, 1<<20)
		total := uint64(0)
		for {
			n, err := f.Write(buf)
			total += uint64(n)
			if err != nil {
				fmt.Println("fill:", errs.Name(err))
				break
			}
		}
		f.Close()
		fmt.Printf("round %d: wrote within 1%% of the size: %v\n", round, total <= size && total > size-size/100)
		syscall.Statfs("/tmp", &st)
		fmt.Println("free when full:", st.Bfree < 300)
		os.Remove("/tmp/fill")
	}
	syscall.Statfs("/tmp", &st)
	fmt.Println("free again:", st.Bfree*uint64(st.Bsize) > size-size/100)
}
