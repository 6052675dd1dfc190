// Command httpget fetches the URL in its first argument and prints the
// status and the body's length and SHA-256.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	resp, err := http.Get(os.Args[1])
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
