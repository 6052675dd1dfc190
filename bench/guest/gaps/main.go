// Gaps reads the clock in a tight loop for one second and reports the gaps
// between reads longer than 20 µs: each is a timer interrupt (or another
// interruption) taken between two reads.
package main

import (
	"fmt"
	"sort"
	"time"
)

func main() {
	var gaps []time.Duration
	start := time.Now()
	prev := start
	for prev.Sub(start) < time.Second {
		now := time.Now()
		if d := now.Sub(prev); d > 20*time.Microsecond {
			gaps = append(gaps, d)
		}
		prev = now
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	med := time.Duration(0)
	if len(gaps) > 0 {
		med = gaps[len(gaps)/2]
	}
	fmt.Printf("gaps %d median_us %.1f\n", len(gaps), float64(med.Nanoseconds())/1000)
}
