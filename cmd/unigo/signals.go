package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// forwarded are the signals unigo run passes into the guest, as a Linux
// process would get them: the Go program's handlers (signal.Notify) decide,
// and without one Go's default ends it with the signal's status.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// powerOffAfter is the count of SIGINTs after which unigo powers the guest
// off itself: Ctrl-C three times stops a program that ignores it.
const powerOffAfter = 3

// forwardSignals sends the forwarded signals to the guest with send until
// stop is called. On the third SIGINT it powers the guest off: powerOff
// runs, the instance (if any) records it, and unigo exits 130.
func forwardSignals(send func(syscall.Signal) error, powerOff func()) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	done := make(chan struct{})
	go func() {
		ints := 0
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				sig := s.(syscall.Signal)
				if sig == syscall.SIGINT {
					if ints++; ints == powerOffAfter {
						fmt.Fprintf(runStderr, "unigo: interrupted %d times: powering the guest off\n", ints)
						powerOff()
						finishInstance(128+int(sig), "powered off by SIGINT")
						os.Exit(128 + int(sig))
					}
				}
				if err := send(sig); err != nil {
					fmt.Fprintf(runStderr, "unigo: %v: %v\n", sig, err)
				}
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// parseSignal reads unigo kill's -s: a name, with or without SIG, or a
// number, of KILL or a forwarded signal.
func parseSignal(s string) (syscall.Signal, error) {
	names := map[string]syscall.Signal{"KILL": syscall.SIGKILL}
	for _, f := range forwarded {
		sig := f.(syscall.Signal)
		names[strings.TrimPrefix(strings.ToUpper(signalName(sig)), "SIG")] = sig
	}
	u := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := names[u]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		for _, sig := range names {
			if int(sig) == n {
				return sig, nil
			}
		}
	}
	return 0, fmt.Errorf("-s %s: want KILL, INT, TERM, HUP, QUIT, USR1 or USR2; others do not reach the guest", s)
}

// signalName is the C name of sig, such as SIGTERM.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return fmt.Sprintf("signal %d", int(sig))
}
