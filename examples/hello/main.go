// Hello prints a greeting: the smallest Unigo program.
package main

import "fmt"

func main() {
	fmt.Println("hello")
}
