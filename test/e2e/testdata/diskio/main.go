// Command diskio reads the raw disk /dev/vda whole, writes its first 64 KiB
// back with fsync, prints what it moved, and waits for SIGTERM, so that a
// test can compare the monitor's disk counters with it.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	f, err := os.OpenFile("/dev/vda", os.O_RDWR, 0)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	n, err := io.Copy(io.Discard, f)
	if err != nil {
		fmt.Println("read:", err)
		os.Exit(1)
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	if err := f.Sync(); err != nil {
		fmt.Println("fsync:", err)
		os.Exit(1)
	}
	fmt.Printf("read %d wrote %d\n", n, len(buf))
	<-sigs
}
