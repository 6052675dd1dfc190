package main

import (
	"fmt"
	"net"

	"unigo.dev/unigo/vmm/gdb"
)

// debugSession is unigo run --gdb: the listener, then the debugger's
// session, which the machine stops for (machine.Debugger).
type debugSession struct {
	ln net.Listener
	*gdb.Server
}

// listenGDB listens at addr before the guest is built, so that a bad or
// taken address fails the run at once.
func listenGDB(addr string) (*debugSession, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--gdb %s: %w", addr, err)
	}
	return &debugSession{ln: ln}, nil
}

// accept waits for the debugger; interrupt stops the guest for it.
func (d *debugSession) accept(image string, interrupt func()) error {
	fmt.Fprintf(runStderr, "unigo: waiting for a debugger at %s: gdb %s -ex 'target remote %s'\n", d.ln.Addr(), image, d.ln.Addr())
	s, err := gdb.Accept(d.ln, interrupt)
	d.ln.Close()
	if err != nil {
		return fmt.Errorf("--gdb: %w", err)
	}
	d.Server = s
	return nil
}

func (d *debugSession) close() {
	d.ln.Close()
	if d.Server != nil {
		d.Server.Close()
	}
}
