// Command echo is a TCP echo server on port 7: every connection gets back
// what it sends, until it closes its side.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", ":7")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println("echoing on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Println("accept:", err)
			os.Exit(1)
		}
		go func() {
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
			c.Close()
		}()
	}
}
