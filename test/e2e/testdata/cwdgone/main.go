// Command cwdgone removes its working directory, in the folder its
// argument names, and prints what the calls that use it answer then: as
// on Linux, the directory lives on, empty, and nothing made later takes
// its place.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func errno(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

func main() {
	base := os.Args[1]
	gone := filepath.Join(base, "gone")
	fmt.Println("mkdir:", os.Mkdir(gone, 0o755))
	fmt.Println("chdir:", os.Chdir(gone))
	fmt.Println("rmdir:", os.Remove(gone))
	_, err := os.Create("a")
	fmt.Println("create in it:", errno(err))
	fmt.Println("mkdir in it:", errno(os.Mkdir("d", 0o755)))
	es, err := os.ReadDir(".")
	fmt.Println("readdir:", len(es), errno(err))
	var buf [4096]byte
	_, err = syscall.Getcwd(buf[:])
	fmt.Println("getcwd:", errno(err))
	// New directories, which could take the removed one's node.
	for i := 0; i < 20; i++ {
		os.Mkdir(filepath.Join(base, fmt.Sprint("new", i)), 0o755)
	}
	_, err = syscall.Getcwd(buf[:])
	fmt.Println("getcwd after mkdirs:", errno(err))
	_, err = os.Stat("new0")
	fmt.Println("a new one seen from it:", errno(err))
	fmt.Println("chdir back:", os.Chdir(base))
	wd, err := os.Getwd()
	fmt.Println("getwd:", wd == base, err)
	for i := 0; i < 20; i++ {
		os.Remove(filepath.Join(base, fmt.Sprint("new", i)))
	}
}
