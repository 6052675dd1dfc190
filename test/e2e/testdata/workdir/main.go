// Command workdir prints its working directory and reads hello.txt from
// it: for unigo run -w.
package main

import (
	"fmt"
	"os"
)

func main() {
	wd, err := os.Getwd()
	fmt.Println("getwd:", wd, err)
	b, err := os.ReadFile("hello.txt")
	fmt.Printf("hello.txt: %q %v\n", b, err)
}
