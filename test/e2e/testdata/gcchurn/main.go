// Gcchurn allocates 200 MB in short-lived chunks, keeping a small live set,
// and forces collections.
package main

import (
	"fmt"
	"runtime"
)

var sink [][]byte

func main() {
	const chunk = 64 << 10
	total := 0
	for i := 0; total < 200<<20; i++ {
		b := make([]byte, chunk)
		b[0], b[len(b)-1] = byte(i), byte(i)
		sink = append(sink, b)
		if len(sink) > 64 {
			sink = sink[:0]
		}
		total += chunk
		if i%1000 == 0 {
			runtime.GC()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("allocated %d MiB in %d GCs\n", ms.TotalAlloc>>20, ms.NumGC)
}
