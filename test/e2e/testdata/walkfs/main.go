// Command walkfs walks the tree at its first argument and prints each entry
// relative to it: directories with their mode, files with their size,
// SHA-256 and mode; then it reads a file in pieces with Seek and ReadAt,
// and given "create", tries to create a file there.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	root := os.Args[1]
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			fmt.Printf("%s dir %v\n", rel, st.Mode())
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Printf("%s %d %x %v\n", rel, st.Size(), sha256.Sum256(b), st.Mode())
		return nil
	})
	fmt.Println("walk:", err)

	f, err := os.Open(filepath.Join(root, "sub", "blob.bin"))
	if err != nil {
		fail(err)
	}
	end, err := f.Seek(-10, io.SeekEnd)
	tail := make([]byte, 10)
	n, _ := io.ReadFull(f, tail)
	mid := make([]byte, 16)
	m, err2 := f.ReadAt(mid, 1000)
	fmt.Printf("seek to %d %v, tail %d bytes %x; at 1000: %d %v %x\n", end, err, n, tail, m, err2, mid)
	f.Close()

	_, err = os.Stat(filepath.Join(root, "missing"))
	fmt.Println("missing:", os.IsNotExist(err))
	_, err = os.ReadDir(filepath.Join(root, "a.txt"))
	fmt.Println("a file as a directory fails:", err != nil)
	_, err = os.Open("")
	fmt.Println("the empty path is missing:", os.IsNotExist(err))
	_, err = os.Stat(filepath.Join(root, "sub", "..", "a.txt"))
	fmt.Println("sub/../a.txt:", err)
	if err := os.Chdir(filepath.Join(root, "sub")); err != nil {
		fail(err)
	}
	wd, err := os.Getwd()
	rel, _ := filepath.Rel(root, wd)
	b, err2 := os.ReadFile(filepath.Join("deeper", "n.txt"))
	fmt.Printf("chdir: the working directory is %s (%v), a relative read %d bytes %v\n", rel, err, len(b), err2)
	if len(os.Args) > 2 && os.Args[2] == "create" {
		_, err = os.Create(filepath.Join(root, "new.txt"))
		fmt.Println("create:", err)
	}
}

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}
