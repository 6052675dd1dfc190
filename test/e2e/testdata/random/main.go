// Random reads 1 MiB from crypto/rand and prints its SHA-256 and how many
// distinct byte values it holds.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

func main() {
	b := make([]byte, 1<<20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	var seen [256]bool
	distinct := 0
	for _, c := range b {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	fmt.Printf("sha256 %x distinct %d\n", sha256.Sum256(b), distinct)
}
