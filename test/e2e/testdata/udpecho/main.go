// Command udpecho sends UDP datagrams: to an echo server of its own on
// loopback, and, given an address, to an echo server there; given a second,
// it resolves unigo.test with Go's own resolver against a DNS server there;
// given a third, it resolves that name through the network's DNS server.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fail("listen", err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	fmt.Println("loopback:", roundTrip(pc.LocalAddr().String(), "ping over loopback"))
	if len(os.Args) > 1 {
		fmt.Println("host:", roundTrip(os.Args[1], "ping to the host"))
	}
	if len(os.Args) > 2 {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "udp", os.Args[2])
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, "unigo.test")
		if err != nil {
			fail("lookup", err)
		}
		fmt.Println("dns:", addrs)
	}
	if len(os.Args) > 3 { // the network's own DNS server, from /etc/resolv.conf
		addrs, err := net.LookupHost(os.Args[3])
		if err != nil {
			fail("lookup", err)
		}
		fmt.Println("resolved:", len(addrs) > 0)
	}
}

func roundTrip(addr, msg string) string {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fail("dial", err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for try := 0; try < 5; try++ { // UDP may drop: ask again
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	fail("no answer from", fmt.Errorf("%s", addr))
	return ""
}

func fail(what string, err error) {
	fmt.Println(what, err)
	os.Exit(1)
}
