// Preempt spins in a tight loop on one goroutine while another counts the
// ticks of a 10 ms ticker: without preemption the ticker never runs.
package main

import (
	"fmt"
	"sync/atomic"
	"time"
)

var stop atomic.Bool

func spin() {
	x := 0
	for !stop.Load() {
		x++
	}
	_ = x
}

func main() {
	go spin()
	t := time.NewTicker(10 * time.Millisecond)
	t0 := time.Now()
	for i := 0; i < 20; i++ {
		<-t.C
	}
	stop.Store(true)
	fmt.Printf("20 ticks in %d ms\n", time.Since(t0).Milliseconds())
}
