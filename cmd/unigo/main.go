// Command unigo builds Go programs into unikernel images and runs them on
// Unigo's KVM monitor.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"unigo.dev/unigo/abi"
)

const usage = `unigo builds ordinary Go programs into unikernel images and runs them.

Usage:
  unigo build [-o image] [-v] [-tags t] [-ldflags f] [-trimpath] [package]
  unigo run [-d] [--name NAME] [-m size] [-e KEY=VAL]... [-p HOST:GUEST]...
            [-v HOSTDIR|FILE.img:/NAME[:ro]]... [--disk FILE[:ro]]... [-w DIR] [--debug]
            [--metrics ADDR] [--gdb ADDR] [--vmm kvm|qemu] image-or-package [-- args...]
  unigo ps [--json]
  unigo logs [-f] [--tail N] NAME
  unigo stop [-t SECONDS] NAME...
  unigo kill [-s SIGNAL] NAME...
  unigo rm [-f] NAME...
  unigo dlv [--headless ADDR] image [-- args...]
  unigo test [-m size] [package] [-test.run=Regexp -test.v ...]
  unigo volume create|ls|cp|fsck ...
  unigo inspect [--json] image
  unigo version
  unigo help [command]

Exit status of 'unigo run': the guest program's own exit status; 125 when
unigo itself fails (bad flags, no /dev/kvm, not an image); 134 when the guest
crashes below Go (a CPU fault or an unexpected VM exit; a report is printed).
SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to unigo run reach
the guest program, whose handlers decide; without one it ends with the
signal's status (130 for SIGINT, 143 for SIGTERM). A third SIGINT powers the
guest off.

unigo run -d and --name make an instance, kept under $XDG_STATE_HOME/unigo
(default ~/.local/state/unigo), which ps, logs, stop, kill and rm operate.
`

// Exit codes of unigo itself.
const (
	exitUsage = 125
	exitCrash = 134
)

func main() {
	if filepath.Base(os.Args[0]) == "lldb-server" {
		if err := lldbServer(os.Args[1:]); err != nil {
			var ee exitError
			if errors.As(err, &ee) {
				os.Exit(int(ee))
			}
			fmt.Fprintf(os.Stderr, "unigo: %v\n", err)
			os.Exit(exitUsage)
		}
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(exitUsage)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "build":
		err = cmdBuild(args)
	case "run":
		err = cmdRun(args)
	case "test":
		err = cmdTest(args)
	case "volume":
		err = cmdVolume(args)
	case "inspect":
		err = cmdInspect(args)
	case "ps":
		err = cmdPs(args)
	case "logs":
		err = cmdLogs(args)
	case "stop":
		err = cmdStop(args)
	case "kill":
		err = cmdKill(args)
	case "rm":
		err = cmdRm(args)
	case "dlv":
		err = cmdDlv(args)
	case "version":
		fmt.Printf("unigo %s (image ABI %d)\n", version(), abi.Version)
		if withCgo() {
			fmt.Println("built with cgo, which only makes it start later: CGO_ENABLED=0 go install ./cmd/unigo")
		}
	case "help", "-h", "-help", "--help":
		help(args)
	default:
		fmt.Fprintf(os.Stderr, "unigo: unknown command %q; run 'unigo help'\n", cmd)
		os.Exit(exitUsage)
	}
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintf(os.Stderr, "unigo: %v\n", err)
		os.Exit(exitUsage)
	}
}

// exitError makes unigo exit with this status, having printed what it had to.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func help(args []string) {
	if len(args) > 0 {
		switch args[0] {
		case "build":
			buildFlags(new(buildOpts)).Usage()
			return
		case "run":
			runFlags(new(runOpts)).Usage()
			return
		case "test":
			testFlags(new(testOpts)).Usage()
			return
		case "volume":
			fmt.Print(volumeUsage)
			return
		case "inspect":
			fmt.Print(inspectUsage)
			return
		case "ps", "logs", "stop", "kill", "rm", "dlv":
			map[string]func([]string) error{"ps": cmdPs, "logs": cmdLogs, "stop": cmdStop, "kill": cmdKill, "rm": cmdRm, "dlv": cmdDlv}[args[0]]([]string{"-h"})
			return
		}
	}
	fmt.Print(usage)
}

// withCgo reports whether this unigo was built with cgo, which links it to
// the C library (package net's resolver) for nothing unigo needs: loading
// that and starting the runtime's threads through it take 1-4 ms of every
// unigo run (BENCHMARKS.md).
func withCgo() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
