// Command ifaces lists the network interfaces and addresses, as
// net.Interfaces and net.InterfaceAddrs see them.
package main

import (
	"fmt"
	"net"
	"os"
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
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		fmt.Println("addrs:", err)
		os.Exit(1)
	}
	fmt.Println("addrs", addrs)
}
