// Command debugme is a program for the debugger tests: a breakpoint on
// main.add finds main.counter at 41 and its arguments 41 and 1.
package main

import "fmt"

var counter int

//go:noinline
func add(a, b int) int { return a + b }

func main() {
	counter = 41
	counter = add(counter, 1)
	fmt.Println("counter is", counter)
}
