package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
)

// TestNetUDP sends datagrams inside the guest over loopback, to an echo
// server the test runs on the host's loopback (the guest's 10.0.2.2), and
// resolves a name with Go's own resolver against a small DNS server the test
// runs there too.
func TestNetUDP(t *testing.T) {
	echo := udpServer(t, func(q []byte) []byte { return append([]byte("echo: "), q...) })
	dns := udpServer(t, dnsAnswer)
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, image(t, "udpecho"), "--",
			fmt.Sprintf("10.0.2.2:%d", echo), fmt.Sprintf("10.0.2.2:%d", dns))
		expect(t, r, 0, "loopback: ping over loopback\nhost: echo: ping to the host\ndns: [10.1.2.3]\n")
	})
}

// udpServer answers each datagram on a loopback port with answer(datagram).
func udpServer(t *testing.T, answer func([]byte) []byte) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if a := answer(append([]byte(nil), buf[:n]...)); a != nil {
				pc.WriteTo(a, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// dnsAnswer answers a DNS query (RFC 1035 §4.1) for an A record with
// 10.1.2.3, and any other with no answers.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	end := 12 // the question: a name, then type and class
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5
	if end > len(q) {
		return nil
	}
	a := append([]byte(nil), q[:end]...)
	binary.BigEndian.PutUint16(a[2:], 0x8180)    // a response, recursion available
	binary.BigEndian.PutUint16(a[8:], 0)         // no authority
	binary.BigEndian.PutUint16(a[10:], 0)        // no additional records
	if binary.BigEndian.Uint16(q[end-4:]) != 1 { // not type A
		binary.BigEndian.PutUint16(a[6:], 0)
		return a
	}
	binary.BigEndian.PutUint16(a[6:], 1)
	return append(a, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3)
}

// TestNetDNS resolves a name the host can resolve through the guest's
// configured DNS server (/etc/resolv.conf: 10.0.2.3), which both monitors
// forward to the host's.
func TestNetDNS(t *testing.T) {
	const name = "proxy.golang.org" // a registry this machine reaches
	if _, err := net.LookupHost(name); err != nil {
		t.Skipf("the host cannot resolve %s: %v", name, err)
	}
	echo := udpServer(t, func(q []byte) []byte { return q })
	dns := udpServer(t, dnsAnswer)
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, image(t, "udpecho"), "--",
			fmt.Sprintf("10.0.2.2:%d", echo), fmt.Sprintf("10.0.2.2:%d", dns), name)
		expect(t, r, 0, "resolved: true\n")
	})
}
