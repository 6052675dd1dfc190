// Command fileserver serves the files under /srv over HTTP, as
// net/http.FileServer does: build it with the files baked in,
//
//	unigo build --files ./public:/srv -o site.img ./examples/fileserver
//
// Listens on :80, or on $PORT; serves $ROOT instead of /srv if set.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr, root := ":80", "/srv"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	if r := os.Getenv("ROOT"); r != "" {
		root = r
	}
	fmt.Println("serving", root, "on", addr)
	log.Fatal(http.ListenAndServe(addr, http.FileServer(http.Dir(root))))
}
