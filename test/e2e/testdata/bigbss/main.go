// Bigbss has a 24 MiB zeroed global, of which it writes and checks the
// first N MiB (its argument): the own monitor leaves a hole in RAM where
// such objects lie, and the kernel backs only the pages touched.
package main

import (
	"fmt"
	"os"
	"strconv"
)

var big [24 << 20]byte

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 0 || n > len(big)>>20 {
		fmt.Println("usage: bigbss MiB (0-24)")
		os.Exit(2)
	}
	for i := 0; i < n<<20; i += 4096 {
		if big[i] != 0 {
			fmt.Println("not zero at", i)
			os.Exit(1)
		}
		big[i] = byte(i >> 12)
	}
	sum := 0
	for i := 0; i < n<<20; i += 4096 {
		sum += int(big[i])
	}
	fmt.Println("touched", n, "MiB, sum", sum, "last", big[len(big)-1])
}
