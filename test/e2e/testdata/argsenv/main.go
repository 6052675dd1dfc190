// Argsenv prints its arguments and two environment variables.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("args %q\n", os.Args[1:])
	fmt.Printf("FOO=%q BAR=%q\n", os.Getenv("FOO"), os.Getenv("BAR"))
}
