// Command devices uses the character devices programs open by path:
// /dev/null, /dev/zero, /dev/random and /dev/urandom.
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
)

func main() {
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		fail(err)
	}
	n, err := null.Write([]byte("dropped"))
	fmt.Println("write /dev/null:", n, err)
	b, err := io.ReadAll(null)
	fmt.Printf("read /dev/null: %d bytes, %v\n", len(b), err)
	null.Close()

	zero, err := os.Open("/dev/zero")
	if err != nil {
		fail(err)
	}
	z := bytes.Repeat([]byte{0xff}, 4096)
	n, err = io.ReadFull(zero, z)
	fmt.Println("read /dev/zero:", n, err, bytes.Count(z, []byte{0}) == len(z))
	_, err = zero.Write([]byte("x"))
	fmt.Println("write to a read-only /dev/zero fails:", err != nil)
	zero.Close()

	for _, p := range []string{"/dev/random", "/dev/urandom"} {
		f, err := os.Open(p)
		if err != nil {
			fail(err)
		}
		r := make([]byte, 64)
		n, err := io.ReadFull(f, r)
		fmt.Printf("read %s: %d %v, not all zero: %v\n", p, n, err, !bytes.Equal(r, make([]byte, 64)))
		f.Close()
	}

	for _, p := range []string{"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"} {
		st, err := os.Stat(p)
		if err != nil {
			fail(err)
		}
		rdev := st.Sys().(*syscall.Stat_t).Rdev
		fmt.Printf("stat %s: %v, device %d:%d\n", p, st.Mode(), rdev>>8, rdev&0xff)
	}
	if st, err := os.Stat("/dev"); err == nil {
		fmt.Println("stat /dev: directory", st.IsDir())
	}
}

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}
