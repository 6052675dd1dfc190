// Package qemu runs a Unigo image under QEMU instead of Unigo's own monitor.
// QEMU boots it through the PVH entry (-kernel); the kernel then reads its
// arguments from the command line, writes stdout to COM1 and stderr to COM2,
// and reports its exit status and crashes on the control channel (COM3,
// abi.CtlPort) and through isa-debug-exit.
package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/machine"
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
	Extra   []string // more QEMU arguments, before -kernel (tests add devices)
	Ports   []string // HOST:GUEST[/tcp] forwards into the guest
	Net     bool     // give the guest a network interface (user-mode networking)
	Tap     string   // with Net: the tap device instead of user-mode networking
	// NetCmdline is the guest's network configuration on Tap (net.ip=...).
	NetCmdline string
	Shares     []Share // host folders, each behind a virtio 9P device
	Cmdline    string  // more kernel command-line words (cwd=)
	Disks      []Disk  // host files, each behind a virtio-blk device
}

// Disk is one host file the guest sees as a block device (unigo run --disk).
type Disk struct {
	Path     string
	ReadOnly bool
	Mount    string // a block volume's guest path, which the kernel mounts; "" for a raw disk
}

// Share is one host folder the guest mounts (unigo run -v).
type Share struct {
	Host, Guest string
	ReadOnly    bool
}

// Port is one -p forward.
type Port struct {
	Host, Guest int
	Proto       string // "tcp"
}

// ParsePort reads HOST:GUEST[/tcp].
func ParsePort(s string) (Port, error) {
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	h, g, ok := strings.Cut(spec, ":")
	hp, err1 := strconv.Atoi(h)
	gp, err2 := strconv.Atoi(g)
	switch {
	case !ok || err1 != nil || err2 != nil || hp < 1 || hp > 65535 || gp < 1 || gp > 65535:
		return Port{}, fmt.Errorf("-p %q: want HOST:GUEST with port numbers, such as 8080:80", s)
	case proto != "tcp" && proto != "udp":
		return Port{}, fmt.Errorf("-p %q: the protocol is tcp or udp", s)
	}
	return Port{hp, gp, proto}, nil
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

// pipes are QEMU's ends of its UARTs' channels: the pipe COM2 (stderr)
// writes to, and a socket for COM3, the control channel, whose other end
// reads the kernel's reports and sends it signals.
type pipes struct{ stderr, ctl *os.File }

// Command returns the QEMU command that boots img, with COM2 (stderr) and
// COM3 (the control channel) writing to the files in p, or without them.
func Command(img string, cfg Config, p *pipes) *exec.Cmd {
	machine := cfg.Machine
	if machine == "" || machine == "microvm" {
		machine = "microvm,pit=on,rtc=on"
		if cfg.Net || len(cfg.Shares) > 0 || len(cfg.Disks) > 0 {
			// Without ACPI, microvm names its virtio-mmio devices on the
			// command line, where the kernel finds them.
			machine += ",acpi=off"
		}
	}
	args := []string{
		"-M", machine, "-accel", "tcg", "-cpu", "max",
		"-m", fmt.Sprintf("%dM", cfg.MemSize>>20),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=4",
	}
	// COM2, stderr, writes to a pipe (descriptor 3): a file chardev on
	// /dev/stderr would reopen and truncate a file unigo's stderr goes to.
	// COM3, the control channel, is a connected socket (descriptor 4).
	if p != nil {
		args = append(args,
			"-chardev", "file,id=unigo-stderr,path=/proc/self/fd/3",
			"-device", "isa-serial,chardev=unigo-stderr,iobase=0x2f8,irq=3",
			"-chardev", "socket,id=unigo-ctl,fd=4",
			"-device", fmt.Sprintf("isa-serial,chardev=unigo-ctl,iobase=%#x,irq=4", abi.CtlPort))
	}
	cmdline := Cmdline(cfg.Args, cfg.Env, cfg.Debug)
	if cfg.Net {
		netdev := "user,id=unigo-net,net=10.0.2.0/24" // IPv6: fec0::/64, as the own monitor's
		for _, p := range cfg.Ports {
			pp, _ := ParsePort(p) // checked by the caller
			netdev += fmt.Sprintf(",hostfwd=%s:127.0.0.1:%d-:%d", pp.Proto, pp.Host, pp.Guest)
		}
		// QEMU's user-mode network has the addresses the own monitor's
		// copies, and its DHCP server gives them.
		netCmdline := ""
		if cfg.Tap != "" {
			netdev = "tap,id=unigo-net,ifname=" + cfg.Tap + ",script=no,downscript=no"
			netCmdline = cfg.NetCmdline
		}
		args = append(args, "-netdev", netdev)
		if strings.HasPrefix(machine, "microvm") {
			args = append(args, "-global", "virtio-mmio.force-legacy=false", "-device", "virtio-net-device,netdev=unigo-net")
		} else {
			args = append(args, "-device", "virtio-net-pci,netdev=unigo-net") // q35, pc: PCI with MSI-X
		}
		cmdline += " " + netCmdline
	}
	for i, sh := range cfg.Shares {
		// QEMU's own 9P server (security_model=none: files get the guest's
		// modes and QEMU's owner, as the own monitor's server does).
		fsdev := fmt.Sprintf("local,id=unigo-fs%d,path=%s,security_model=none", i, strings.ReplaceAll(sh.Host, ",", ",,"))
		if sh.ReadOnly {
			fsdev += ",readonly=on"
		}
		args = append(args, "-fsdev", fsdev)
		args = append(args, virtioDevice(machine, "virtio-9p", fmt.Sprintf("fsdev=unigo-fs%d,mount_tag=%s", i, abi.ShareTag(i)))...)
		cmdline += " " + abi.MountWord(abi.ShareTag(i), sh.Guest, sh.ReadOnly)
	}
	for i, d := range cfg.Disks {
		// cache=writeback (QEMU's default) passes the guest's flushes on
		// as fdatasync, as the own monitor's device does.
		drive := fmt.Sprintf("file=%s,format=raw,if=none,id=unigo-blk%d", strings.ReplaceAll(d.Path, ",", ",,"), i)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive)
		args = append(args, virtioDevice(machine, "virtio-blk", fmt.Sprintf("drive=unigo-blk%d,serial=%s", i, abi.DiskSerial(i)))...)
		if d.Mount != "" {
			cmdline += " " + abi.MountWord(abi.DiskSerial(i), d.Mount, d.ReadOnly)
		}
	}
	cmdline += " " + cfg.Cmdline
	args = append(args, cfg.Extra...)
	args = append(args, "-kernel", img, "-append", strings.TrimSpace(cmdline))
	cmd := exec.Command(Binary, args...)
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if p != nil {
		cmd.ExtraFiles = []*os.File{p.stderr, p.ctl}
	}
	// A process group of its own: a terminal's Ctrl-C reaches unigo, which
	// stops QEMU; and QEMU dies with unigo. Stdin stays /dev/null, so QEMU
	// never touches the terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// ErrNoStatus is returned when QEMU stopped without the guest reporting an
// exit status: a triple fault (with -no-reboot) or a kernel that hung up.
var ErrNoStatus = errors.New("the guest stopped without an exit status (a triple fault?)")

// VM is a running QEMU.
type VM struct {
	img *machine.Image
	cmd *exec.Cmd
	ctl chan ctlResult
	// ctlConn is unigo's end of the control channel.
	ctlConn *os.File
	sigMu   sync.Mutex
	ended   bool
	// copied is done when the guest's stderr is all written out.
	copied sync.WaitGroup
}

// ctlResult is what the control channel said by the time it closed.
type ctlResult struct {
	status int // -1: none
	report string
}

// Start validates img as the own monitor does, then boots it under QEMU.
func Start(img string, cfg Config) (*VM, error) {
	if !Available() {
		return nil, fmt.Errorf("%s is not installed: install QEMU (Debian: apt-get install qemu-system-x86)", Binary)
	}
	im, err := machine.LoadImage(img)
	if err != nil {
		return nil, err
	}
	if len(cfg.Ports) > 0 && im.Flags&abi.NoteFlagNet == 0 {
		im.Close()
		return nil, errors.New("-p: the program does not use package net, so its image has no network stack")
	}
	// QEMU's RAM is one range: the whole image, zeroed data included, has to
	// fit below its end, with room for the kernel's frames.
	var end uint64
	for _, s := range im.Segments {
		end = max(end, s.Addr+s.MemSize)
	}
	if need := (end + 2*abi.LargePageSize) &^ (abi.LargePageSize - 1); cfg.MemSize < need {
		im.Close()
		return nil, fmt.Errorf("the image takes guest memory up to %d MiB, which QEMU must hold (its zeroed data is demand-paged only on the own monitor): use -m %dM or more", end>>20, need>>20)
	}
	cfg.Net = im.Flags&abi.NoteFlagNet != 0
	var p pipes
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		im.Close()
		return nil, err
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		stderrR.Close()
		stderrW.Close()
		im.Close()
		return nil, fmt.Errorf("control channel: %w", err)
	}
	ctlConn := os.NewFile(uintptr(fds[0]), "qemu-ctl")
	p.stderr, p.ctl = stderrW, os.NewFile(uintptr(fds[1]), "qemu-ctl-guest")
	stderr := cfg.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	vm := &VM{img: im, cmd: Command(img, cfg, &p), ctl: make(chan ctlResult, 1), ctlConn: ctlConn}
	err = vm.cmd.Start()
	p.stderr.Close() // QEMU holds its ends: EOF when it exits
	p.ctl.Close()
	if err != nil {
		stderrR.Close()
		ctlConn.Close()
		im.Close()
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	vm.copied.Add(1)
	go func() {
		defer vm.copied.Done()
		io.Copy(stderr, stderrR)
		stderrR.Close()
	}()
	go func() { vm.ctl <- readCtl(ctlConn, im, stderr) }()
	return vm, nil
}

// Kill stops QEMU.
func (vm *VM) Kill() { vm.cmd.Process.Kill() }

// Signal sends sig to the guest process: its number goes down the control
// channel (abi.CtlPort), where the kernel reads it at its next tick. Safe to
// call from any goroutine.
func (vm *VM) Signal(sig syscall.Signal) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("signal %d: want 1-64", int(sig))
	}
	vm.sigMu.Lock()
	defer vm.sigMu.Unlock()
	if vm.ended {
		return errors.New("the guest has stopped")
	}
	_, err := vm.ctlConn.Write([]byte{byte(sig)})
	return err
}

// Wait waits for QEMU to exit and returns the guest's exit status, or a
// *machine.ExitError with the report of a guest that stopped abnormally.
func (vm *VM) Wait() (int, error) {
	err := vm.cmd.Wait()
	res := <-vm.ctl
	vm.sigMu.Lock()
	vm.ended = true
	vm.ctlConn.Close()
	vm.sigMu.Unlock()
	vm.copied.Wait()
	vm.img.Close()
	if res.report != "" {
		return 0, &machine.ExitError{Report: res.report}
	}
	if res.status >= 0 {
		return res.status, nil
	}
	// The kernel reports its exit on the control channel before
	// isa-debug-exit: without a report, a status 1 is QEMU's own failure.
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return 0, fmt.Errorf("%s failed (exit status 1): its message is above", Binary)
	}
	return Status(err)
}

// Run boots img and returns the guest's exit status.
func Run(img string, cfg Config) (int, error) {
	vm, err := Start(img, cfg)
	if err != nil {
		return 0, err
	}
	return vm.Wait()
}

// readCtl reads the control channel's lines (abi.CtlPort) until QEMU exits:
// the --debug lines go to stderr as they come, the status and the report of
// a crash are returned.
func readCtl(r io.Reader, img *machine.Image, stderr io.Writer) ctlResult {
	res := ctlResult{status: -1}
	var fault string
	reported := map[uint64]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, abi.CtlMaxLine), abi.CtlMaxLine)
	for sc.Scan() {
		word, rest, _ := strings.Cut(sc.Text(), " ")
		switch word {
		case abi.CtlExit:
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 && n <= 255 {
				res.status = n
			}
		case abi.CtlUnimpl:
			if n, err := strconv.ParseUint(rest, 10, 64); err == nil && !reported[n] {
				reported[n] = true
				fmt.Fprintln(stderr, machine.UnimplementedMessage(n))
			}
		case abi.CtlFatal:
			res.report = "unigo: guest stopped: kernel: " + rest + "\n"
		case abi.CtlFault:
			fault = rest
		case abi.CtlBacktr:
			f := hexWords(fault)
			if len(f) < 1 {
				res.report = "unigo: guest stopped: CPU exception in kernel code (unreadable report)\n"
				break
			}
			res.report = img.FaultReport(f[1:], f[0], hexWords(rest))
		}
	}
	io.Copy(io.Discard, r)
	return res
}

func hexWords(s string) []uint64 {
	var v []uint64
	for _, f := range strings.Fields(s) {
		n, err := strconv.ParseUint(f, 16, 64)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
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

// virtioDevice returns the arguments that add virtio device kind
// ("virtio-9p") with props: on microvm's virtio-mmio in modern mode, else
// on PCI (q35, pc).
func virtioDevice(machine, kind, props string) []string {
	if strings.HasPrefix(machine, "microvm") {
		return []string{"-global", "virtio-mmio.force-legacy=false", "-device", kind + "-device," + props}
	}
	return []string{"-device", kind + "-pci," + props}
}
