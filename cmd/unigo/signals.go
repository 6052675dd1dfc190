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

// signalCatcher takes the forwarded signals for one boot. It is made when
// the boot starts: setting the handlers up starts a thread of Go's (0.2-0.5
// ms here), which so runs beside the VM's set-up rather than after it. While
// no guest takes them (before forward, after stop), a signal ends unigo as it
// would without the handlers, with 128+signal, once cleanup has run.
type signalCatcher struct {
	sigs    chan os.Signal
	targets chan *signalTarget // nil: none
	done    chan struct{}
}

type signalTarget struct {
	send     func(syscall.Signal) error
	powerOff func()
}

func catchSignals(cleanup func()) *signalCatcher {
	c := &signalCatcher{sigs: make(chan os.Signal, 4), targets: make(chan *signalTarget, 1), done: make(chan struct{})}
	go func() {
		signal.Notify(c.sigs, forwarded...)
		c.loop(cleanup)
	}()
	return c
}

// forward sends the signals to the guest with send until stop is called. On
// the third SIGINT it powers the guest off: powerOff runs, the instance (if
// any) records it, and unigo exits 130.
func (c *signalCatcher) forward(send func(syscall.Signal) error, powerOff func()) (stop func()) {
	c.targets <- &signalTarget{send, powerOff}
	return func() { close(c.done) }
}

func (c *signalCatcher) loop(cleanup func()) {
	var t *signalTarget
	ints := 0
	end := func(sig syscall.Signal) {
		cleanup()
		finishInstance(128+int(sig), "ended by "+signalName(sig)+" while no guest ran")
		os.Exit(128 + int(sig))
	}
	for {
		select {
		case <-c.done:
			// Off the exit's path: signal.Stop waits for Go's signal
			// loop to be idle (0.1-0.4 ms here).
			signal.Stop(c.sigs)
			select {
			case s := <-c.sigs:
				end(s.(syscall.Signal))
			default:
			}
			return
		case t = <-c.targets:
		case s := <-c.sigs:
			sig := s.(syscall.Signal)
			select {
			case t = <-c.targets: // it came at once with the guest
			default:
			}
			if t == nil {
				end(sig)
			}
			if sig == syscall.SIGINT {
				if ints++; ints == powerOffAfter {
					fmt.Fprintf(runStderr, "unigo: interrupted %d times: powering the guest off\n", ints)
					t.powerOff()
					finishInstance(128+int(sig), "powered off by SIGINT")
					os.Exit(128 + int(sig))
				}
			}
			if err := t.send(sig); err != nil {
				fmt.Fprintf(runStderr, "unigo: %v: %v\n", sig, err)
			}
		}
	}
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
