// Nilderef dereferences a nil pointer: Go turns the fault into a panic.
package main

import "fmt"

type T struct{ x int }

//go:noinline
func get(t *T) int { return t.x }

func main() {
	fmt.Println("before")
	fmt.Println(get(nil))
}
