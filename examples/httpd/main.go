// Command httpd is a small HTTP server: it answers every request with a
// greeting and the path asked for. Listens on :80, or on $PORT.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := ":80"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from unigo: %s\n", r.URL.Path)
	})
	fmt.Println("listening on", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
