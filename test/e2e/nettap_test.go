package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"unigo.dev/unigo/proto/dhcp"
)

// TestNetTap gives the guest an address on a tap device in a network
// namespace the test makes, fetches from it over IPv4 and IPv6 (link-local)
// and pings it there over both: --net tap:NAME with --ip and --gw, and
// without them from a DHCP server the test runs on the tap, on both
// monitors. The fetch runs in this test binary, started again inside the
// namespace (TestNetTapInside).
func TestNetTap(t *testing.T) {
	needNetns(t)
	img := image(t, "examples/httpd")
	bothVMMs(t, func(t *testing.T, vmm string) {
		for _, mode := range []string{"static", "dhcp"} {
			out, err := inNetns("TestNetTapInside", "UNIGO_TAP_TEST="+vmm, "UNIGO_TAP_MODE="+mode, "UNIGO_TAP_IMG="+img)
			if err != nil || !strings.Contains(string(out), "answer: hello from unigo: /over-tap\n") ||
				!strings.Contains(string(out), "answer: hello from unigo: /over-tap-ipv6") || !strings.Contains(string(out), "ping: echo reply") ||
				!strings.Contains(string(out), "ping6: echo reply") {
				t.Fatalf("%s: %v\n%s", mode, err, out)
			}
			if mode == "dhcp" && !strings.Contains(string(out), "dhcp: offered 10.9.0.2, acknowledged 10.9.0.2, renewed 10.9.0.2") {
				t.Fatalf("%s: the guest did not take its address from the test's DHCP server:\n%s", mode, out)
			}
		}
	})
}

// TestNetTapInside is TestNetTap's half inside the namespace.
func TestNetTapInside(t *testing.T) {
	vmm := inside(t, "UNIGO_TAP_TEST", "TestNetTap")
	args := []string{"run", "--vmm", vmm, "--net", "tap:tap0", "--ip", "10.9.0.2/24", "--gw", "10.9.0.1"}
	var stopDHCP func()
	if os.Getenv("UNIGO_TAP_MODE") == "dhcp" {
		args = args[:5]
		stopDHCP = serveDHCP(t, "tap0")
	}
	cmd := exec.Command(os.Getenv("UNIGO_BIN"), append(args, os.Getenv("UNIGO_TAP_IMG"))...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Errorf("after SIGTERM: %v, want exit status 143; stderr:\n%s", err, stderr.String())
		}
	}()
	if stopDHCP != nil {
		defer stopDHCP() // before the guest stops: it waits for a renewal
	}
	defer ping(t, [4]byte{10, 9, 0, 2})
	defer ping6(t, "fe80::5054:ff:fe12:3456", "tap0")
	c := &http.Client{Timeout: 2 * time.Second}
	// IPv4 to the address given or leased, then IPv6 to the link-local
	// address the guest derives from its MAC (QEMU's default, and the own
	// monitor's), which neighbor discovery resolves.
	for _, url := range []string{"http://10.9.0.2/over-tap", "http://[fe80::5054:ff:fe12:3456%25tap0]/over-tap-ipv6"} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := c.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("answer: %s", strings.TrimSpace(string(b)))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer from %s: %v; stderr:\n%s", url, err, stderr.String())
			}
		}
	}
}

// ping sends an ICMP echo request (RFC 792) to addr from a raw socket and
// wants the reply.
func ping(t *testing.T, addr [4]byte) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err != nil {
		t.Errorf("raw ICMP socket: %v", err)
		return
	}
	defer syscall.Close(fd)
	req := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'u', 'n', 'i', 'g', 'o'}
	var sum uint32
	for i := 0; i < len(req); i += 2 {
		v := uint32(req[i]) << 8
		if i+1 < len(req) {
			v |= uint32(req[i+1])
		}
		sum += v
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	req[2], req[3] = byte(^sum>>8), byte(^sum)
	tv := syscall.Timeval{Sec: 1}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	for try := 0; try < 5; try++ {
		if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrInet4{Addr: addr}); err != nil {
			t.Errorf("send the echo request: %v", err)
			return
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				break // timed out: ask again
			}
			ihl := int(buf[0]&0xf) * 4 // the reply comes with its IP header
			if n >= ihl+8 && buf[ihl] == 0 && buf[ihl+4] == 0x12 && buf[ihl+5] == 0x34 {
				t.Logf("ping: echo reply from %v", addr)
				return
			}
		}
	}
	t.Errorf("no echo reply from %v", addr)
}

// serveDHCP answers DHCP on device dev until the returned function is
// called, which logs what it offered, acknowledged and renewed: 10.9.0.2/24,
// router and DNS 10.9.0.1, for two seconds, so that the guest renews within
// the test (at half the lease); the function waits up to 5 s for that.
func serveDHCP(t *testing.T, dev string) func() {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) {
			if err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); err == nil {
				err = syscall.BindToDevice(int(fd), dev)
			}
		})
		return err
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", ":67")
	if err != nil {
		t.Fatalf("DHCP server: %v", err)
	}
	var mu sync.Mutex
	var offered, acked, renewed netip.Addr
	renewal := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := dhcp.Parse(buf[:n])
			if err != nil || m.Reply {
				continue
			}
			me, you := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2")
			r := &dhcp.Message{Reply: true, XID: m.XID, Flags: m.Flags, CHAddr: m.CHAddr, ServerID: me,
				YIAddr: you, PrefixLen: 24, Router: me, DNS: []netip.Addr{me}, Lease: 2 * time.Second}
			mu.Lock()
			switch m.Type {
			case dhcp.Discover:
				r.Type, offered = dhcp.Offer, you
			case dhcp.Request:
				r.Type = dhcp.Ack
				if m.CIAddr.IsUnspecified() {
					acked = m.RequestedIP
				} else {
					renewed = m.CIAddr
					select {
					case renewal <- struct{}{}:
					default:
					}
				}
			}
			mu.Unlock()
			pc.WriteTo(r.Marshal(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcp.ClientPort})
		}
	}()
	return func() {
		select {
		case <-renewal:
		case <-time.After(5 * time.Second):
		}
		pc.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		t.Logf("dhcp: offered %v, acknowledged %v, renewed %v", offered, acked, renewed)
	}
}

// TestNetKeepalive checks that the keep-alive options Go sets reach the
// netstack: a guest on a tap device dials a server in the test's network
// namespace with probes every second, the tap's link goes down, and the
// guest's read fails with ETIMEDOUT within seconds instead of waiting
// forever. The own monitor only: QEMU's tap shares the code under test.
func TestNetKeepalive(t *testing.T) {
	needNetns(t)
	needKVM(t)
	img := image(t, "keepalive")
	out, err := inNetns("TestNetKeepaliveInside", "UNIGO_KEEPALIVE_IMG="+img)
	if err != nil || !strings.Contains(string(out), "timed out: true, within 15 s: true") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestNetKeepaliveInside is TestNetKeepalive's half inside the namespace.
func TestNetKeepaliveInside(t *testing.T) {
	img := inside(t, "UNIGO_KEEPALIVE_IMG", "TestNetKeepalive")
	ln, err := net.Listen("tcp", "10.9.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(os.Getenv("UNIGO_BIN"), "run", "--net", "tap:tap0", "--ip", "10.9.0.2/24", img, "--", "10.9.0.1:7000")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v; stderr:\n%s", err, stderr.String())
	}
	defer c.Close()
	time.Sleep(500 * time.Millisecond)
	if out, err := exec.Command("ip", "link", "set", "tap0", "down").CombinedOutput(); err != nil {
		t.Fatalf("ip link set tap0 down: %v\n%s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("guest: %v\n%s%s", err, stdout.String(), stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the guest still waits 30 s after its peer vanished:\n%s%s", stdout.String(), stderr.String())
	}
}

// ping6 sends an ICMPv6 echo request (RFC 4443 §4.1) to the link-local
// address addr on device dev and wants the reply; the kernel fills in the
// checksum of a raw ICMPv6 socket (RFC 3542 §3.1).
func ping6(t *testing.T, addr, dev string) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		t.Errorf("ping6: %v", err)
		return
	}
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_ICMPV6)
	if err != nil {
		t.Errorf("raw ICMPv6 socket: %v", err)
		return
	}
	defer syscall.Close(fd)
	tv := syscall.Timeval{Sec: 1}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	to := &syscall.SockaddrInet6{Addr: netip.MustParseAddr(addr).As16(), ZoneId: uint32(ifi.Index)}
	req := []byte{128, 0, 0, 0, 0x56, 0x78, 0, 1, 'u', 'n', 'i', 'g', 'o'}
	for try := 0; try < 5; try++ {
		if err := syscall.Sendto(fd, req, 0, to); err != nil {
			t.Errorf("send the echo request: %v", err)
			return
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				break // timed out: ask again
			}
			if n >= 8 && buf[0] == 129 && buf[4] == 0x56 && buf[5] == 0x78 { // no IP header on ICMPv6 raw sockets
				t.Logf("ping6: echo reply from %s%%%s", addr, dev)
				return
			}
		}
	}
	t.Errorf("no ICMPv6 echo reply from %s%%%s", addr, dev)
}

// inNetns runs test, a TestXxxInside of this binary, in a new network
// namespace with env (and UNIGO_BIN) added, and returns what it printed.
func inNetns(test string, env ...string) ([]byte, error) {
	cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(append(os.Environ(), "UNIGO_BIN="+unigoBin), env...)
	return cmd.CombinedOutput()
}

// needNetns skips a test that makes a network namespace and a tap device
// when it cannot.
func needNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace and a tap device")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian: util-linux, iproute2)", tool)
		}
	}
}

// inside starts the half of test outer that runs in its network namespace:
// it returns the environment variable key that inNetns set, or skips when
// run on its own, and makes the tap device.
func inside(t *testing.T, key, outer string) string {
	v := os.Getenv(key)
	if v == "" {
		t.Skipf("run by %s inside a network namespace", outer)
	}
	tapUp(t)
	return v
}

// tapUp makes tap0 with the host side's address 10.9.0.1/24 in the
// namespace the test runs in, and brings it and lo up.
func tapUp(t *testing.T) {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"tuntap", "add", "tap0", "mode", "tap"},
		{"addr", "add", "10.9.0.1/24", "dev", "tap0"},
		{"link", "set", "tap0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
}

// TestNetNoDHCP starts a guest on a tap device where no DHCP server
// answers: after the client's wait the program runs anyway, told why on
// stderr, with eth0 up and only its link-local address. The own monitor
// only: the guest's side is the same under QEMU.
func TestNetNoDHCP(t *testing.T) {
	needNetns(t)
	needKVM(t)
	out, err := inNetns("TestNetNoDHCPInside", "UNIGO_NODHCP_IMG="+image(t, "ifaces"))
	if err != nil || !strings.Contains(string(out), "no DHCP server answered in 5s") ||
		!strings.Contains(string(out), "addrs [127.0.0.1/8 ::1/128 fe80::5054:ff:fe12:3456/64]") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestNetNoDHCPInside is TestNetNoDHCP's half inside the namespace.
func TestNetNoDHCPInside(t *testing.T) {
	img := inside(t, "UNIGO_NODHCP_IMG", "TestNetNoDHCP")
	out, err := exec.Command(os.Getenv("UNIGO_BIN"), "run", "--net", "tap:tap0", img).CombinedOutput()
	t.Logf("guest: %v\n%s", err, out)
	if err != nil {
		t.Fail()
	}
}
