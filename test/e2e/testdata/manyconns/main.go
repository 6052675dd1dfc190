// Command manyconns serves HTTP on loopback and holds 500 client
// connections to itself open at once before making a request on each.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

const conns = 500

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Path)
	}))
	var cs []net.Conn
	for len(cs) < conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fmt.Printf("dial %d: %v\n", len(cs), err)
			os.Exit(1)
		}
		cs = append(cs, c)
	}
	fmt.Println(conns, "connections open")
	errs := make(chan error)
	for i, c := range cs {
		go func() {
			fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: unigo\r\n\r\n", i)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 16))
			if string(b) != fmt.Sprintf("/%d", i) {
				err = fmt.Errorf("connection %d: body %q", i, b)
			}
			errs <- err
		}()
	}
	ok := 0
	for range cs {
		if err := <-errs; err != nil {
			fmt.Println(err)
		} else {
			ok++
		}
	}
	fmt.Println(ok, "answered")
}
