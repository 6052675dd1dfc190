// Command mmapfile maps files with mmap(2) and compares what the mappings
// show with read(2): a file in a writable directory (its first argument),
// shared and private, while the file is written, grown and removed, and a
// read-only file (its second argument).
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func check(step string, err error) {
	if err != nil {
		fmt.Printf("%s: %v\n", step, err)
		os.Exit(1)
	}
}

func main() {
	name := filepath.Join(os.Args[1], "mapped")
	data := make([]byte, 3*4096+100)
	for i := range data {
		data[i] = byte(i % 251)
	}
	check("write", os.WriteFile(name, data, 0o644))
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	check("open", err)
	fd := int(f.Fd())

	ro, err := syscall.Mmap(fd, 0, 8*4096, syscall.PROT_READ, syscall.MAP_SHARED)
	check("mmap shared read-only", err)
	fmt.Println("shared mapping matches read(2):", bytes.Equal(ro[:len(data)], data))
	f.WriteAt([]byte("written later"), 5000)
	fmt.Println("sees a later write:", string(ro[5000:5013]))

	rw, err := syscall.Mmap(fd, 4096, 2*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	check("mmap shared writable at 4096", err)
	copy(rw[100:], "stored through a mapping")
	b := make([]byte, 24)
	f.ReadAt(b, 4096+100)
	fmt.Println("read(2) sees the store:", string(b))
	fmt.Println("the other mapping too:", string(ro[4096+100:4096+124]))

	check("grow", f.Truncate(6*4096))
	fmt.Println("grown pages read zeros:", bytes.Count(ro[4*4096:6*4096], []byte{0}) == 2*4096)
	f.WriteAt([]byte("in the grown part"), 5*4096)
	fmt.Println("and then the write:", string(ro[5*4096:5*4096+17]))

	priv, err := syscall.Mmap(fd, 0, 4*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	check("mmap private", err)
	copy(priv, "private")
	f.ReadAt(b[:7], 0)
	fmt.Println("a private store stays private:", string(priv[:7]), string(b[:7]) != "private")

	check("remove", os.Remove(name))
	fmt.Println("mapped after remove:", string(ro[5000:5013]))
	check("munmap", syscall.Munmap(rw))
	check("munmap", syscall.Munmap(priv))
	check("munmap", syscall.Munmap(ro))
	f.Close()

	_, err = syscall.Mmap(fd, 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
	fmt.Println("mmap of a closed descriptor:", err)
	d, _ := os.Open(os.Args[1])
	_, err = syscall.Mmap(int(d.Fd()), 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
	fmt.Println("mmap of a directory:", err)
	d.Close()

	g, err := os.Open(os.Args[2])
	check("open read-only file", err)
	st, _ := g.Stat()
	m, err := syscall.Mmap(int(g.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	check("mmap read-only file", err)
	want, _ := os.ReadFile(os.Args[2])
	fmt.Printf("read-only file: %d bytes, same %v, sha256 %x\n", len(m), bytes.Equal(m, want), sha256.Sum256(m))
	_, err = syscall.Mmap(int(g.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	fmt.Println("shared writable mapping of a read-only open:", err)
}
