// Panic panics in main.
package main

func main() {
	var m map[string]int
	if len(m) == 0 {
		panic("boom from unigo")
	}
}
