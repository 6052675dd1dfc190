// Command ifaces lists the network interfaces and addresses, as
// net.Interfaces and net.InterfaceAddrs see them, listens on eth0's address
// and prints /etc/resolv.conf.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Println("interfaces:", err)
		os.Exit(1)
	}
	for _, i := range ifs {
		fmt.Printf("%d %s mtu %d %s [%v]\n", i.Index, i.Name, i.MTU, i.HardwareAddr, i.Flags)
	}
	// IPv6 autoconfiguration is asynchronous, as on Linux: wait a little
	// for a global IPv6 address, if the network advertises a prefix.
	var addrs []net.Addr
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		addrs, err = net.InterfaceAddrs()
		if err != nil {
			fmt.Println("addrs:", err)
			os.Exit(1)
		}
		if hasGlobal6(addrs) || time.Now().After(deadline) {
			break
		}
	}
	fmt.Println("addrs", addrs)
	// eth0's own address can be bound, and its DNS server is in resolv.conf.
	for _, a := range addrs {
		if ip := a.(*net.IPNet).IP; !ip.IsLoopback() {
			host := ip.String()
			if ip.IsLinkLocalUnicast() {
				host += "%eth0" // a link-local address needs its link, as on Linux
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				fmt.Println("listen:", err)
				os.Exit(1)
			}
			fmt.Println("listening on eth0's address:", ln.Addr().(*net.TCPAddr).IP)
		}
	}
	b, err := os.ReadFile("/etc/resolv.conf")
	fmt.Printf("resolv.conf: %q %v\n", b, err)
}

func hasGlobal6(addrs []net.Addr) bool {
	for _, a := range addrs {
		if ip := a.(*net.IPNet).IP; ip.To4() == nil && ip.IsGlobalUnicast() {
			return true
		}
	}
	return false
}
