// Command signals waits for the signals a host sends a service: it names
// each SIGHUP, SIGUSR1 and SIGUSR2 it gets, and ends with status 7 at SIGTERM
// or SIGINT, as a service's handler would. The arguments ignore-int and
// ignore-term make it ignore those instead.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	for _, a := range os.Args[1:] {
		switch a {
		case "ignore-int":
			signal.Ignore(syscall.SIGINT)
		case "ignore-term":
			signal.Ignore(syscall.SIGTERM)
		}
	}
	fmt.Println("ready")
	for s := range sigs {
		fmt.Println("got", s)
		if s == syscall.SIGTERM || s == syscall.SIGINT {
			fmt.Println("cleaning up")
			os.Exit(7)
		}
	}
}
