// Command writero writes to a string constant, which lies in the program's
// read-only data: on Linux a SIGSEGV that Go reports as a fault, exit 2.
package main

import (
	"fmt"
	"unsafe"
)

var greeting = "read-only bytes"

func main() {
	fmt.Println("writing to", greeting)
	p := unsafe.StringData(greeting)
	*p = 'R'
	fmt.Println("wrote:", greeting)
}
