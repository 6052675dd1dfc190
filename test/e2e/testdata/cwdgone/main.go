// Command cwdgone removes its working directory, in the folder its
// argument names, and prints what the calls that use it answer then: as
// on Linux, the directory lives on, empty, and nothing made later takes
// its place.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"unigo.dev/unigo/test/e2e/testdata/errs"
)

func main() {
	base := os.Args[1]
	gone := filepath.Join(base, "gone")
	fmt.Println("mkdir:", os.Mkdir(gone, 0o755))
	fmt.Println("chdir:", os.Chdir(gone))
	fmt.Println("rmdir:", os.Remove(gone))
	_, err := os.Create("a")
	fmt.Println("create in it:", errs.Name(err))
	fmt.Println("mkdir in it:", errs.Name(os.Mkdir("d", 0o755)))
	es, err := os.ReadDir(".")
	fmt.Println("readdir:", len(es), errs.Name(err))
	var buf [4096]byte
	_, err = syscall.Getcwd(buf[:])
	fmt.Println("getcwd:", errs.Name(err))
	// New directories, which could take the removed one's node.
	for i := 0; i < 20; i++ {
		os.Mkdir(filepath.Join(base, fmt.Sprint("new", i)), 0o755)
	}
	_, err = syscall.Getcwd(buf[:])
	fmt.Println("getcwd after mkdirs:", errs.Name(err))
	_, err = os.Stat("new0")
	fmt.Println("a new one seen from it:", errs.Name(err))
	fmt.Println("chdir back:", os.Chdir(base))
	wd, err := os.Getwd()
	fmt.Println("getwd:", wd == base, err)
	for i := 0; i < 20; i++ {
		os.Remove(filepath.Join(base, fmt.Sprint("new", i)))
	}
}
