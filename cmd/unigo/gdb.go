package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"unigo.dev/unigo/vmm/gdb"
	"unigo.dev/unigo/vmm/machine"
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

// lldbServer is unigo invoked as lldb-server (a link named so, found on
// PATH by Delve's lldb backend, which runs "lldb-server gdbserver ADDR --
// PROGRAM ARGS..." and connects to ADDR): it runs the image with --gdb ADDR.
// Any other use goes to the next real lldb-server on PATH.
func lldbServer(args []string) error {
	if len(args) >= 3 && args[0] == "gdbserver" && args[2] == "--" && len(args) >= 4 {
		if img, err := machine.LoadImage(args[3]); err == nil {
			img.Close()
			addr := args[1]
			if strings.HasPrefix(addr, ":") {
				addr = "127.0.0.1" + addr // Delve names a port only: keep the debugger off the network
			}
			return cmdRun(append([]string{"--gdb", addr, args[3], "--"}, args[4:]...))
		}
	}
	self, _ := os.Executable()
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, "lldb-server")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			if real, _ := filepath.EvalSymlinks(p); real != self && p != self {
				return syscall.Exec(p, append([]string{p}, args...), os.Environ())
			}
		}
	}
	return fmt.Errorf("lldb-server %s: not a Unigo image, and no other lldb-server on PATH", strings.Join(args, " "))
}

const dlvUsage = `usage: unigo dlv [--headless ADDR] image [-- args...]

Debugs an image with Delve (dlv on PATH: go install
github.com/go-delve/delve/cmd/dlv@latest). Delve's lldb backend drives the
guest through unigo run --gdb, as it would drive lldb-server: unigo puts an
lldb-server of its own first on Delve's PATH. Without --headless, dlv's own
terminal starts; with it, a Delve server listens at ADDR for dlv connect ADDR
(or an editor's Delve client). The guest stops at runtime.main first.
`

func cmdDlv(args []string) error {
	fs := flag.NewFlagSet("dlv", flag.ContinueOnError)
	headless := fs.String("headless", "", "serve Delve's API at `ADDR` for dlv connect, instead of dlv's terminal")
	fs.Usage = func() { fmt.Fprint(fs.Output(), dlvUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() == 0 {
		return errors.New("dlv needs an image: unigo dlv app.img")
	}
	img := fs.Arg(0)
	rest := fs.Args()[1:]
	if len(rest) > 0 && rest[0] != "--" {
		return fmt.Errorf("unexpected %q after %s: the program's arguments go after --", rest[0], img)
	}
	if !isFile(img) {
		return fmt.Errorf("image %s: no such file (unigo build makes one)", img)
	}
	dlv, err := exec.LookPath("dlv")
	if err != nil {
		return errors.New("dlv is not installed: go install github.com/go-delve/delve/cmd/dlv@latest")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "unigo-dlv-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Symlink(self, filepath.Join(dir, "lldb-server")); err != nil {
		return err
	}
	dargs := []string{"exec", "--backend=lldb"}
	if *headless != "" {
		dargs = append(dargs, "--headless", "--api-version=2", "--accept-multiclient", "-l", *headless)
	}
	dargs = append(dargs, img)
	if len(rest) > 0 {
		dargs = append(dargs, rest...)
	}
	cmd := exec.Command(dlv, dargs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return exitError(ee.ExitCode())
		}
		return err
	}
	return nil
}
