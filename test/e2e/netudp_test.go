package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
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

// TestNetUDPForward sends datagrams from two host sockets through
// -p HOST:5353/udp to a UDP server in the guest, and each gets its own
// answers back.
func TestNetUDPForward(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		port := freeUDPPort(t)
		cmd, out, stderr := startInstance(t, "run", "--vmm", vmm, "-p", fmt.Sprintf("%d:5353/udp", port), image(t, "udpserve"))
		defer cmd.Process.Kill()
		if line, err := out.ReadString('\n'); err != nil || line != "listening on [::]:5353\n" {
			t.Fatalf("first line %q, %v; stderr:\n%s", line, err, stderr.String())
		}
		for _, msg := range []string{"first client", "second client"} {
			c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 128)
			var n int
			for try := 0; ; try++ { // UDP: ask again until the guest's stack is up
				c.Write([]byte(msg))
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if n, err = c.Read(buf); err == nil || try == 40 {
					break
				}
			}
			if err != nil || string(buf[:n]) != "echo: "+msg {
				t.Fatalf("answer %q, %v; want %q; stderr:\n%s", buf[:n], err, "echo: "+msg, stderr.String())
			}
		}
	})
}

// freeUDPPort returns a UDP port on 127.0.0.1 that nothing listens on.
func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}
