// Clock prints how long time.Sleep(50ms) took and the wall clock.
package main

import (
	"fmt"
	"time"
)

func main() {
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		time.Sleep(50 * time.Millisecond)
		fmt.Printf("slept %d us\n", time.Since(t0).Microseconds())
	}
	fmt.Printf("now %d\n", time.Now().UnixNano())
}
