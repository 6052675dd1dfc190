// Command httpget fetches the URL in its first argument and prints the
// status and the body's length and SHA-256.
package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	// IPv6 autoconfiguration is asynchronous, as on Linux: a fetch from
	// the start may find no address or route yet, so dial errors are
	// retried for a few seconds.
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err = http.Get(os.Args[1])
		var op *net.OpError
		if err == nil || !errors.As(err, &op) || op.Op != "dial" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Println("get:", err)
		os.Exit(1)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Println("read:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %d bytes sha256 %x\n", resp.Status, len(body), sha256.Sum256(body))
	if len(body) < 100 {
		fmt.Printf("body %q\n", body)
	}
}
