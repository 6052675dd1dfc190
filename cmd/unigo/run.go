package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/machine"
	"unigo.dev/unigo/vmm/p9"
	"unigo.dev/unigo/vmm/qemu"
	"unigo.dev/unigo/vmm/tap"
	"unigo.dev/unigo/vmm/usernet"
)

type runOpts struct {
	mem   string
	env   listFlag
	debug bool
	vmm   string
	qemuM string
	ports listFlag
	net   string // "user" or "tap:NAME"
	ip    string
	gw    string
	dns   string
	files listFlag // --files, for a package built first
	vols  listFlag // -v HOSTDIR:GUESTDIR[:ro], -v FILE.img:GUESTDIR[:ro]
	wd    string   // -w: the guest's first working directory
	disks listFlag // --disk FILE[:ro]
	share bool     // --share-image: no private copy of the image's huge pages

	metrics string // --metrics ADDR: serve Prometheus metrics
	gdb     string // --gdb ADDR: wait for a debugger there
	detach  bool   // -d: run in the background as an instance
	name    string // --name: the instance's name
	// Where the guest's stdout and stderr go: unigo's own, or with them
	// an instance's console.log.
	stdout, stderr io.Writer
}

// tapName returns the device of --net tap:NAME, or "".
func (o runOpts) tapName() string { return strings.TrimPrefix(o.net, "tap:") }

// netCmdline is the guest's network configuration on a tap device: a
// static one from --ip, --gw and --dns, else none (the guest asks DHCP).
func (o runOpts) netCmdline() string {
	if o.ip == "" {
		return ""
	}
	c := "net.ip=" + o.ip
	if o.gw != "" {
		c += " net.gw=" + o.gw
	}
	if o.dns != "" {
		c += " net.dns=" + o.dns
	}
	return c
}

// checkNet validates the network flags.
func (o *runOpts) checkNet() error {
	switch {
	case o.net == "user" || o.net == "": // unigo test leaves it empty
		if o.ip != "" || o.gw != "" || o.dns != "" {
			return errors.New("--ip, --gw and --dns go with --net tap:NAME; on the user-mode network DHCP gives the guest 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3")
		}
	case strings.HasPrefix(o.net, "tap:") && o.tapName() != "":
		if len(o.ports) > 0 {
			return errors.New("-p forwards ports of the user-mode network; on a tap device the guest's own address is reachable")
		}
		if o.ip == "" {
			if o.gw != "" || o.dns != "" {
				return errors.New("--gw and --dns go with --ip: without --ip the guest takes its address, gateway and DNS server from DHCP")
			}
			return nil
		}
		if p, err := netip.ParsePrefix(o.ip); err != nil || !p.Addr().Is4() {
			return fmt.Errorf("--ip %q: want an IPv4 address with its prefix length, such as 10.0.0.2/24", o.ip)
		}
		for _, a := range []struct{ flag, v string }{{"--gw", o.gw}, {"--dns", o.dns}} {
			if ip, err := netip.ParseAddr(a.v); a.v != "" && (err != nil || !ip.Is4()) {
				return fmt.Errorf("%s %q: want an IPv4 address", a.flag, a.v)
			}
		}
	default:
		return fmt.Errorf("--net %q: want user or tap:NAME", o.net)
	}
	return nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runFlags(o *runOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.mem, "m", "128M", "guest RAM `size` (K, M or G suffix; a plain number is MiB); on the own monitor the image's code and read-only data lie outside it, read-only")
	fs.Var(&o.env, "e", "set `KEY=VAL` in the guest's environment (repeatable); the host's is not passed")
	fs.BoolVar(&o.debug, "debug", false, "report each unimplemented system call the guest makes, once")
	fs.StringVar(&o.vmm, "vmm", "", "`monitor`: kvm (Unigo's own, the default) or qemu (QEMU, TCG);\nwithout /dev/kvm, qemu if it is installed")
	fs.StringVar(&o.qemuM, "qemu-machine", "microvm", "QEMU `machine` for --vmm qemu: microvm, q35 or pc")
	fs.StringVar(&o.net, "net", "user", "the guest's `network`: user (user-mode networking, no root) or tap:NAME (a tap device)")
	fs.StringVar(&o.ip, "ip", "", "with --net tap: the guest's static `address`, A.B.C.D/N (default: DHCP)")
	fs.StringVar(&o.gw, "gw", "", "with --net tap and --ip: the default `gateway`")
	fs.StringVar(&o.dns, "dns", "", "with --net tap and --ip: the DNS `server` (/etc/resolv.conf in the guest)")
	fs.Var(&o.files, "files", "with a package: bake host files into the image, read-only: `SRC:DST` puts the file\nor folder SRC at path DST (repeatable; as unigo build --files)")
	fs.Var(&o.vols, "v", "share the host folder `HOSTDIR:GUESTDIR`[:ro] with the guest, read-write unless :ro,\nor mount a block volume FILE.img:GUESTDIR[:ro] (unigo volume create makes one)\n(repeatable; like docker run -v; GUESTDIR is a folder of the root such as /data)")
	fs.Var(&o.disks, "disk", "give the guest the host `FILE`[:ro] as a raw block device, /dev/vda, /dev/vdb...\n(repeatable; its size must be a multiple of 512 bytes)")
	fs.StringVar(&o.wd, "w", "", "the guest's working `directory` at start (default /), such as a -v folder")
	fs.BoolVar(&o.share, "share-image", false, "own monitor: map all of the image's code and read-only data from the image file itself,\nin 4 KiB pages, rather than from the ROM file its first boot writes (unigo/rom, in\n2 MiB pages, shared by every instance too) or from a copy: a slower start (BENCHMARKS.md)")
	fs.StringVar(&o.metrics, "metrics", "", "serve the instance's metrics (vCPU time, VM exits, KVM's own vCPU counters,\nmemory touched, network and disk bytes, uptime) in Prometheus's text format at\nhttp://`ADDR`/metrics, such as 127.0.0.1:9100 (own monitor only)")
	fs.StringVar(&o.gdb, "gdb", "", "wait for a debugger (gdb's target remote) at `ADDR`, such as 127.0.0.1:1234, with the\nguest stopped at runtime.main, before package initialization (own monitor only)")
	fs.BoolVar(&o.detach, "d", false, "run in the background as an instance: print its name and return\n(unigo ps, logs, stop, kill and rm operate it)")
	fs.StringVar(&o.name, "name", "", "the instance's `name` (default: the image's); without -d the instance runs in the\nforeground and its output also goes to its log")
	fs.Var(&o.ports, "p", "forward `HOST:GUEST`[/tcp|/udp]: host port HOST on 127.0.0.1 to the guest's port GUEST\n(repeatable; like docker run -p)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: unigo run [flags] image-or-package [-- args...]

Boots an image on Unigo's KVM monitor; given a package instead, builds it
first. The guest's stdout and stderr are unigo's, and its exit status is
unigo's exit status. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
reach the Go program as on Linux; a third SIGINT powers the guest off. With
-d it runs in the background as an instance (see unigo ps, logs, stop).

A program that uses package net gets a network interface with user-mode
networking (no root needed): DHCP makes it 10.0.2.15/24, it reaches the
host's own services at 10.0.2.2 and the outside through the monitor, with
DNS at 10.0.2.3. -p forwards host ports (on 127.0.0.1) into it. On a tap
device (--net tap:NAME) it asks the LAN's DHCP server, or takes --ip, --gw
and --dns.

Files: the image's own (unigo build --files) are at /, read-only, and /tmp
is a tmpfs in guest memory. -v shares a host folder at a folder of the
root (9P; the guest cannot reach outside the folder), --disk gives a host
file as a raw disk, /dev/vda (fsync reaches the host's disk).

Start profiles: the first boot of an image file records which pages of
guest memory its start touched (to its exit, its first listen or 500 ms),
in the user cache folder (unigo/profiles, a file per image path and -m;
safe to delete); later boots have those pages backed before the guest
starts, which starts them sooner. The first boot also writes the image's
code and read-only data to unigo/rom in 2 MiB pages; later boots map that
file, shared by all instances of the image (also safe to delete). The
CPUID leaves KVM supports are kept in unigo/cpuid, a file per host boot.

`)
		fs.PrintDefaults()
	}
	return fs
}

func cmdRun(args []string) error {
	var o runOpts
	fs := runFlags(&o)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return exitError(exitUsage)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return errors.New("run needs an image or a package: unigo run hello.img")
	}
	target, guestArgs := rest[0], rest[1:]
	if len(guestArgs) > 0 {
		if guestArgs[0] != "--" {
			return fmt.Errorf("unexpected %q after %s: put flags before the image and the program's arguments after --", guestArgs[0], target)
		}
		guestArgs = guestArgs[1:]
	}
	mem, err := parseSize(o.mem)
	if err != nil {
		return err
	}
	for _, p := range o.ports {
		if _, err := qemu.ParsePort(p); err != nil {
			return err
		}
	}
	if err := o.checkNet(); err != nil {
		return err
	}
	for _, kv := range o.env {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("-e %q: want KEY=VAL", kv)
		}
	}

	if o.name != "" {
		if err := checkName(o.name); err != nil {
			return err
		}
	}
	if dir := os.Getenv(envInstance); dir != "" && o.detach {
		return runDetachedChild(dir, guestArgs, mem, o)
	}
	if o.detach {
		return startDetached(target, guestArgs, o)
	}
	if o.name != "" {
		return runNamed(target, guestArgs, mem, o)
	}
	return runTarget(target, guestArgs, mem, o)
}

// runTarget boots target, an image or a package unigo builds first.
func runTarget(target string, guestArgs []string, mem uint64, o runOpts) error {
	imgPath := target
	if len(o.files) > 0 && isFile(target) {
		return errors.New("--files goes with a package, which unigo run builds; an image has its files already (unigo build --files)")
	}
	if strings.HasSuffix(target, ".img") && !isFile(target) {
		return fmt.Errorf("image %s: no such file", target)
	}
	var tmp string
	if !isFile(target) {
		var err error
		if tmp, err = os.MkdirTemp("", "unigo-run-"); err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		imgPath = filepath.Join(tmp, defaultImageName(target))
		if err := doBuild(target, buildOpts{output: imgPath, files: o.files}); err != nil {
			return err
		}
	}
	name := strings.TrimSuffix(filepath.Base(imgPath), ".img")
	return boot(imgPath, append([]string{name}, guestArgs...), mem, o, tmp)
}

// runStderr is where unigo run writes its own messages: stderr, and an
// instance's log with it.
var runStderr io.Writer = os.Stderr

// boot runs the image at imgPath with args as its os.Args and returns an
// exitError with the guest's exit status. A temporary folder tmp holding a
// freshly built image is removed as soon as the image is in guest memory, so
// that nothing is left behind when a signal ends unigo.
func boot(imgPath string, args []string, mem uint64, o runOpts, tmp string) error {
	vols, err := parseVolumes(o.vols)
	if err != nil {
		return err
	}
	disks, err := parseDisks(o.disks)
	if err != nil {
		return err
	}
	// Block volumes are disks the kernel mounts.
	var folders []share
	for _, v := range vols {
		if v.volume {
			disks = append(disks, disk{path: v.host, readOnly: v.readOnly, mount: v.guest})
		} else {
			folders = append(folders, v)
		}
	}
	if len(disks) > abi.MaxDisks {
		return fmt.Errorf("--disk and -v FILE.img: %d disks; at most %d", len(disks), abi.MaxDisks)
	}
	vols = folders
	if len(vols)+len(disks) > 0 {
		img, err := machine.LoadImage(imgPath)
		if err != nil {
			return err
		}
		flags := img.Flags
		img.Close()
		if flags&abi.NoteFlagDrivers == 0 {
			return errors.New("-v, --disk: the program opens no files, so unigo build left the share and disk drivers out of its image")
		}
	}
	cwdWord := ""
	if o.wd != "" {
		if !strings.HasPrefix(o.wd, "/") || strings.ContainsAny(o.wd, " \t\n") {
			return fmt.Errorf("-w %q: want an absolute guest path without spaces, such as /data", o.wd)
		}
		cwdWord = abi.CwdWordPrefix + o.wd
	}
	sigs := catchSignals(func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	})
	switch o.vmm {
	case "", "kvm":
		if o.vmm == "" && qemu.Available() {
			if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
				fmt.Fprintf(os.Stderr, "unigo: /dev/kvm cannot be used (%v): running under QEMU (TCG) instead\n", errors.Unwrap(err))
				o.vmm = "qemu"
			} else {
				f.Close()
			}
		}
	case "qemu":
	default:
		return fmt.Errorf("--vmm %q: want kvm or qemu", o.vmm)
	}
	if o.vmm == "qemu" && o.gdb != "" {
		return errors.New("--gdb: the debugger stub is the own monitor's; leave out --vmm qemu (QEMU has its own: -gdb)")
	}
	if o.vmm == "qemu" && o.metrics != "" {
		return errors.New("--metrics: the counters are the own monitor's; under QEMU, use its monitor (QMP) or leave out --vmm qemu")
	}
	if o.vmm == "qemu" {
		switch o.qemuM {
		case "", "microvm", "q35", "pc":
		default:
			return fmt.Errorf("--qemu-machine %q: want microvm, q35 or pc", o.qemuM)
		}
		qc := qemu.Config{MemSize: mem, Args: args, Env: o.env, Debug: o.debug, Machine: o.qemuM, Ports: o.ports, Stdout: o.stdout, Stderr: o.stderr}
		for _, v := range vols {
			qc.Shares = append(qc.Shares, qemu.Share{Host: v.host, Guest: v.guest, ReadOnly: v.readOnly})
		}
		qc.Cmdline = cwdWord
		for _, d := range disks {
			qc.Disks = append(qc.Disks, qemu.Disk{Path: d.path, ReadOnly: d.readOnly, Mount: d.mount})
		}
		if o.tapName() != o.net {
			qc.Tap, qc.NetCmdline = o.tapName(), o.netCmdline()
		}
		vm, err := qemu.Start(imgPath, qc)
		if err != nil {
			return err
		}
		started()
		stop := sigs.forward(vm.Signal, func() {
			vm.Kill()
			if tmp != "" {
				os.RemoveAll(tmp)
			}
		})
		defer stop()
		return exitStatus(vm.Wait())
	}
	img, err := machine.LoadImage(imgPath)
	if err != nil {
		return err
	}
	defer img.Close()
	cfg := machine.Config{MemSize: mem, Args: args, Env: o.env, Debug: o.debug, Cmdline: cwdWord, Stdout: o.stdout, Stderr: o.stderr, ShareImage: o.share}
	if tmp == "" { // an image file, which boots again; not a fresh build
		cfg.Profile, cfg.ROMFile = startCache(imgPath, mem)
	}
	if dir, err := os.UserCacheDir(); err == nil {
		cfg.CPUIDCache = filepath.Join(dir, "unigo", "cpuid")
	}
	for _, v := range vols {
		srv, err := p9.New(v.host, v.readOnly)
		if err != nil {
			return fmt.Errorf("-v %s: %w", v.host, err)
		}
		defer srv.Close()
		cfg.Shares = append(cfg.Shares, machine.Share{Path: v.guest, ReadOnly: v.readOnly, Serve: srv.Handle})
	}
	for _, d := range disks {
		flag := os.O_RDWR
		if d.readOnly {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile(d.path, flag, 0)
		if err != nil {
			return fmt.Errorf("--disk: %w", err)
		}
		defer f.Close()
		// One writer at a time, and no readers beside it: two kernels
		// writing one file corrupt it. Read-only instances may share.
		lock := syscall.LOCK_EX
		if d.readOnly {
			lock = syscall.LOCK_SH
		}
		if err := syscall.Flock(int(f.Fd()), lock|syscall.LOCK_NB); err != nil {
			return fmt.Errorf("%s is in use by another instance (%v): stop it first, or copy the file", d.path, err)
		}
		cfg.Disks = append(cfg.Disks, machine.Disk{File: f, ReadOnly: d.readOnly, Mount: d.mount})
	}
	if img.Flags&abi.NoteFlagNet != 0 && o.tapName() != o.net {
		d, err := tap.Open(o.tapName())
		if err != nil {
			return err
		}
		defer d.Close()
		cfg.Net, cfg.Cmdline = d, strings.TrimSpace(o.netCmdline()+" "+cwdWord)
	} else if img.Flags&abi.NoteFlagNet != 0 {
		var fw []usernet.Forward
		for _, p := range o.ports {
			pp, _ := qemu.ParsePort(p)
			fw = append(fw, usernet.Forward{Host: pp.Host, Guest: pp.Guest, Proto: pp.Proto})
		}
		n, err := usernet.New(fw)
		if err != nil {
			return err
		}
		defer n.Close()
		cfg.Net = n // the guest asks usernet's DHCP server
	} else if len(o.ports) > 0 || (o.net != "user" && o.net != "") {
		return errors.New("-p, --net: the program does not use package net, so its image has no network stack")
	}
	var dbg *debugSession
	if o.gdb != "" {
		if dbg, err = listenGDB(o.gdb); err != nil {
			return err
		}
		defer dbg.close()
		cfg.Debugger = dbg
	}
	m, err := machine.New(img, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	if o.metrics != "" {
		imgName := filepath.Base(imgPath)
		if curInstance != nil {
			imgName = curInstance.meta.Image
		}
		stop, err := serveMetrics(o.metrics, imgName, m.Stats)
		if err != nil {
			return err
		}
		defer stop()
	}
	if tmp != "" && o.gdb == "" { // a debugger reads its symbols from the file
		os.RemoveAll(tmp) // the mapped image stays readable
	}

	started()
	if dbg != nil {
		if err := dbg.accept(imgPath, m.RequestDebugStop); err != nil {
			return err
		}
	}
	stop := sigs.forward(m.Signal, func() {})
	defer stop()
	return exitStatus(m.Run())
}

// startCache returns where the monitor keeps what makes later boots of the
// image at imgPath start sooner, in the user cache folder: the file of its
// start profile with mem bytes of RAM (machine.Config.Profile), one per
// image path and RAM size, and the prefix of its ROM file's name
// (machine.Config.ROMFile), one per image path; "" without a cache folder.
func startCache(imgPath string, mem uint64) (profile, rom string) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", ""
	}
	abs, err := filepath.Abs(imgPath)
	if err != nil {
		return "", ""
	}
	h := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, "unigo", "profiles", fmt.Sprintf("%x-%dM", h[:8], mem>>20)),
		filepath.Join(dir, "unigo", "rom", fmt.Sprintf("%x", h[:8]))
}

// exitStatus turns a monitor's result into unigo's: the guest's status, or
// the crash report and exitCrash.
func exitStatus(status int, err error) error {
	var ee *machine.ExitError
	switch {
	case errors.As(err, &ee):
		fmt.Fprint(runStderr, ee.Report)
		return exitError(exitCrash)
	case errors.Is(err, qemu.ErrNoStatus):
		fmt.Fprintln(runStderr, "unigo:", err)
		return exitError(exitCrash)
	case err != nil:
		return err
	}
	return exitError(status)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// parseSize reads a memory size such as 128M, 1G or 65536K.
func parseSize(s string) (uint64, error) {
	v, err := parseBytes(s, 1<<20)
	if err != nil || v > 1<<44 {
		return 0, fmt.Errorf("-m %q: want a size such as 128M or 1G", s)
	}
	return v, nil
}

// parseBytes reads a positive size with a K, M, G or T suffix; a plain
// number counts in units of unit.
func parseBytes(s string, unit uint64) (uint64, error) {
	mult := unit
	num := strings.TrimSpace(s)
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k', 'K':
			mult, num = 1<<10, num[:n-1]
		case 'm', 'M':
			mult, num = 1<<20, num[:n-1]
		case 'g', 'G':
			mult, num = 1<<30, num[:n-1]
		case 't', 'T':
			mult, num = 1<<40, num[:n-1]
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return v * mult, nil
}
