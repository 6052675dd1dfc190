// Package qemu runs a Unigo image under QEMU instead of Unigo's own monitor.
// QEMU boots it through the PVH entry (-kernel); the kernel then reads its
// arguments from the command line, writes stdout to COM1 and stderr to COM2,
// and reports its exit status through isa-debug-exit.
package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Binary is the QEMU system emulator used.
const Binary = "qemu-system-x86_64"

// Config says how to run an image.
type Config struct {
	MemSize uint64 // bytes
	Args    []string
	Env     []string
	Debug   bool
	Machine string // "microvm" (default), "q35" or "pc"
	Stdout  io.Writer
	Stderr  io.Writer
}

// Available reports whether QEMU is installed.
func Available() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// Cmdline encodes args, environment and flags as the kernel's PVH command
// line: space-separated words "a:ARG" and "e:KEY=VAL", percent-encoded, and
// "debug".
func Cmdline(args, env []string, debug bool) string {
	var words []string
	for _, a := range args {
		words = append(words, "a:"+escape(a))
	}
	for _, e := range env {
		words = append(words, "e:"+escape(e))
	}
	if debug {
		words = append(words, "debug")
	}
	return strings.Join(words, " ")
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '%' && c != '"' && c != '\'' && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// Command returns the QEMU command that boots img.
func Command(img string, cfg Config) *exec.Cmd {
	machine := cfg.Machine
	if machine == "" || machine == "microvm" {
		machine = "microvm,pit=on,rtc=on"
	}
	args := []string{
		"-M", machine, "-accel", "tcg", "-cpu", "max",
		"-m", fmt.Sprintf("%dM", cfg.MemSize>>20),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-chardev", "file,id=unigo-stderr,path=/dev/stderr",
		"-device", "isa-serial,chardev=unigo-stderr,iobase=0x2f8,irq=3",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=4",
		"-kernel", img,
		"-append", Cmdline(cfg.Args, cfg.Env, cfg.Debug),
	}
	cmd := exec.Command(Binary, args...)
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	return cmd
}

// ErrNoStatus is returned when QEMU stopped without the guest reporting an
// exit status: a triple fault (with -no-reboot) or a kernel that hung up.
var ErrNoStatus = errors.New("the guest stopped without an exit status (a triple fault?)")

// Run boots img and returns the guest's exit status.
func Run(img string, cfg Config) (int, error) {
	if !Available() {
		return 0, fmt.Errorf("%s is not installed: install QEMU (Debian: apt-get install qemu-system-x86)", Binary)
	}
	err := Command(img, cfg).Run()
	return Status(err)
}

// Status maps QEMU's exit to the guest's: isa-debug-exit makes QEMU exit with
// code*2+1.
func Status(err error) (int, error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, ErrNoStatus
	case errors.As(err, &ee):
		c := ee.ExitCode()
		if c > 0 && c%2 == 1 {
			return c >> 1, nil
		}
		return 0, fmt.Errorf("%s failed (exit status %d)", Binary, c)
	}
	return 0, fmt.Errorf("run %s: %w", Binary, err)
}
