// Command keepalive dials the address it is given with TCP keep-alive
// probes every second after a second of quiet, and waits for a byte that
// never comes: when the peer vanishes, the probes find out and the read
// fails with ETIMEDOUT.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 2}}
	c, err := d.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	fmt.Println("connected")
	t0 := time.Now()
	_, err = c.Read(make([]byte, 1))
	fmt.Printf("read: %v; timed out: %v, within 15 s: %v\n", err, errors.Is(err, syscall.ETIMEDOUT), time.Since(t0) < 15*time.Second)
}
