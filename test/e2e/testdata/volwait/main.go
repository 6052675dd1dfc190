// Command volwait lists the folder /data, says "ready", and waits to be
// stopped: an instance that holds its volume.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	es, err := os.ReadDir("/data")
	if err != nil {
		fmt.Println("readdir:", err)
		os.Exit(1)
	}
	fmt.Println("ready", len(es))
	time.Sleep(time.Hour)
}
