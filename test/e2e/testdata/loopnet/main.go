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
	if _, err := net.Dial("tcp", "127.0.0.1:1"); err != nil {
		fmt.Println("closed port:", err)
	}
}

func fail(what string, err error) {
	fmt.Println(what+":", err)
	os.Exit(1)
}
