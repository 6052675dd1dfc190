// Sleeper prints a line and sleeps for a minute.
package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("sleeping")
	time.Sleep(time.Minute)
}
