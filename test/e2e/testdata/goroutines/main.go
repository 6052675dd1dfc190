// Goroutines runs 1000 goroutines that pass values over channels.
package main

import (
	"fmt"
	"sync"
)

func main() {
	const n = 1000
	in := make(chan int)
	out := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := <-in
			out <- v * 2
		}()
	}
	for i := 1; i <= n; i++ {
		in <- i
	}
	wg.Wait()
	close(out)
	sum := 0
	for v := range out {
		sum += v
	}
	fmt.Println("sum", sum)
}
