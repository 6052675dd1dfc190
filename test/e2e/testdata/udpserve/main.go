// Command udpserve answers UDP datagrams on port 5353 of every address with
// "echo: " and the datagram, for -p HOST:5353/udp.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	pc, err := net.ListenPacket("udp", ":5353")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", pc.LocalAddr())
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(1)
		}
		pc.WriteTo(append([]byte("echo: "), buf[:n]...), from)
	}
}
