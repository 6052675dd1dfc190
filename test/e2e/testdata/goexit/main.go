// Goexit calls os.Exit from a goroutine other than main's.
package main

import (
	"fmt"
	"os"
)

func main() {
	done := make(chan struct{})
	go func() {
		fmt.Println("exit from goroutine")
		os.Exit(7)
	}()
	<-done
}
