// Command slowlisten starts listening on :80 only after the pause its
// first argument gives, as a program that loads its data first would, and
// answers each connection with "ready" and the time since it listened.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	pause, err := time.ParseDuration(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	time.Sleep(pause)
	ln, err := net.Listen("tcp", ":80")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Fprintln(c, "ready")
		c.Close()
	}
}
