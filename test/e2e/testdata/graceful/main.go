// Command graceful serves HTTP on port 80 until SIGTERM, then shuts the
// server down with http.Server.Shutdown, letting a request in flight finish,
// as a service on Linux does.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello from graceful") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("slow request began")
		time.Sleep(time.Second)
		fmt.Fprintln(w, "slow done")
	})
	srv := &http.Server{Addr: ":80", Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			fmt.Println("serve:", err)
			os.Exit(1)
		}
	}()
	fmt.Println("serving")
	<-ctx.Done()
	fmt.Println("SIGTERM: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Println("shutdown:", err)
		os.Exit(1)
	}
	fmt.Println("shut down cleanly")
}
