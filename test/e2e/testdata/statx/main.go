// Command statx asks statx(2) and readlinkat(2) about the files it is
// given, as libraries such as golang.org/x/sys/unix do, and prints the
// basic fields.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	for _, p := range os.Args[1:] {
		var buf [256]byte
		name, _ := syscall.BytePtrFromString(p)
		atFDCWD := -100
		_, _, e := syscall.Syscall6(332, uintptr(atFDCWD), uintptr(unsafe.Pointer(name)), 0, 0x7ff, uintptr(unsafe.Pointer(&buf[0])), 0)
		if e != 0 {
			fmt.Printf("statx %s: %v\n", p, e)
			continue
		}
		le := binary.LittleEndian
		mode := le.Uint16(buf[28:])
		size := le.Uint64(buf[40:])
		if mode&0o170000 != 0o100000 {
			size = 0 // a directory's size is the file system's business
		}
		fmt.Printf("statx: mask has basic stats %v, mode %o, size %d, rdev %d:%d\n", le.Uint32(buf[0:])&0x7ff == 0x7ff,
			mode, size, le.Uint32(buf[128:]), le.Uint32(buf[132:]))
		_, err := os.Readlink(p)
		fmt.Println("readlink:", err.(*os.PathError).Err)
	}
}
