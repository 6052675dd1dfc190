// Command loopnet serves HTTP on the loopback interface and fetches from
// itself, then echoes 4 MiB through a TCP connection both ways and compares
// checksums.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen", err)
	}
	fmt.Println("listening on", ln.Addr())
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	resp, err := http.Get("http://" + ln.Addr().String() + "/unigo")
	if err != nil {
		fail("get", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%s: %s\n", resp.Status, body)

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen", err)
	}
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				fail("accept", err)
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	c, err := net.Dial("tcp", echo.Addr().String())
	if err != nil {
		fail("dial", err)
	}
	data := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		fail("read", err)
	}
	fmt.Printf("echoed %d bytes, checksums equal: %v\n", len(got), sha256.Sum256(got) == sha256.Sum256(data))
	// net.Buffers goes out with one writev(2).
	c2, err := net.Dial("tcp", echo.Addr().String())
	if err != nil {
		fail("dial", err)
	}
	bufs := net.Buffers{[]byte("vec"), []byte("tored")}
	if _, err := bufs.WriteTo(c2); err != nil {
		fail("writev", err)
	}
	c2.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c2)
	fmt.Printf("writev echo: %s\n", b)
	// sendmsg(2) and recvmsg(2): a UDP datagram on loopback, read into a
	// buffer too small for it (MSG_TRUNC), and readv(2) on a TCP connection.
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	u1, err := net.ListenUDP("udp", lo)
	if err != nil {
		fail("listen udp", err)
	}
	u2, err := net.ListenUDP("udp", lo)
	if err != nil {
		fail("listen udp", err)
	}
	if _, _, err := u1.WriteMsgUDP([]byte("datagram"), nil, u2.LocalAddr().(*net.UDPAddr)); err != nil {
		fail("sendmsg", err)
	}
	small := make([]byte, 4)
	n, _, flags, from, err := u2.ReadMsgUDP(small, nil)
	if err != nil {
		fail("recvmsg", err)
	}
	fmt.Printf("recvmsg: %q truncated %v, from the sender %v\n", small[:n], flags&syscall.MSG_TRUNC != 0,
		from.Port == u1.LocalAddr().(*net.UDPAddr).Port)
	c3, err := net.Dial("tcp", echo.Addr().String())
	if err != nil {
		fail("dial", err)
	}
	c3.Write([]byte("scattered"))
	c3.(*net.TCPConn).CloseWrite()
	raw, _ := c3.(*net.TCPConn).SyscallConn()
	var parts [][]byte
	raw.Read(func(fd uintptr) bool {
		a, b := make([]byte, 4), make([]byte, 16)
		n, err := readv(fd, a, b)
		if err == syscall.EAGAIN {
			return false
		}
		if n > 4 {
			parts = [][]byte{a, b[:n-4]}
		}
		return true
	})
	fmt.Printf("readv: %q\n", parts)
	// IPv6: a listener on ::1, and a wildcard one, which Go makes an
	// AF_INET6 socket that IPv4 clients reach too (IPv4-mapped); UDP on ::1.
	six, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		fail("listen [::1]", err)
	}
	go serveEcho(six)
	fmt.Println("ipv6 echo:", echoOnce(six.Addr().String(), "six"))
	dual, err := net.Listen("tcp", ":0")
	if err != nil {
		fail("listen :0", err)
	}
	go serveEcho(dual)
	port := dual.Addr().(*net.TCPAddr).Port
	fmt.Printf("dual-stack listener %v: via IPv4 %s, via IPv6 %s\n", dual.Addr().(*net.TCPAddr).IP,
		echoOnce(fmt.Sprintf("127.0.0.1:%d", port), "four"), echoOnce(fmt.Sprintf("[::1]:%d", port), "six"))
	u6, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		fail("listen udp6", err)
	}
	u6c, err := net.DialUDP("udp", nil, u6.LocalAddr().(*net.UDPAddr))
	if err != nil {
		fail("dial udp6", err)
	}
	u6c.Write([]byte("datagram6"))
	b6 := make([]byte, 64)
	n6, from6, err := u6.ReadFromUDP(b6)
	fmt.Printf("udp6: %q from %v (the sender %v)\n", b6[:n6], from6.IP, from6.Port == u6c.LocalAddr().(*net.UDPAddr).Port)
	if _, err := net.Dial("tcp", "127.0.0.1:1"); err != nil {
		fmt.Println("closed port:", err)
	}
}

func fail(what string, err error) {
	fmt.Println(what+":", err)
	os.Exit(1)
}

// readv fills a, then b, from descriptor fd with one readv(2).
func readv(fd uintptr, a, b []byte) (int, error) {
	iov := [2]syscall.Iovec{{Base: &a[0], Len: uint64(len(a))}, {Base: &b[0], Len: uint64(len(b))}}
	n, _, e := syscall.Syscall(syscall.SYS_READV, fd, uintptr(unsafe.Pointer(&iov[0])), 2)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// serveEcho answers each connection to ln with what it sent, and the
// address it came from.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			b, _ := io.ReadAll(c)
			fmt.Fprintf(c, "%s from %s", b, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}()
	}
}

// echoOnce sends msg to serveEcho at addr and returns the answer.
func echoOnce(addr, msg string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
