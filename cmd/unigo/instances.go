package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// The commands that operate instances: ps, logs, stop, kill and rm.

const psUsage = `usage: unigo ps [--json]

Lists the instances (unigo run -d, or --name): running ones with their
uptime, host memory (PSS of the monitor's processes) and host pid, ended
ones with their exit status, and "dead" for those whose monitor is gone
without an exit status (killed, or the host restarted). unigo rm removes
ended ones.
`

// psEntry is one line of unigo ps, and its --json form.
type psEntry struct {
	Name     string     `json:"name"`
	Image    string     `json:"image"`
	State    string     `json:"state"` // running, exited, dead, or starting (during unigo run -d)
	Status   *int       `json:"status,omitempty"`
	How      string     `json:"how,omitempty"`
	Created  time.Time  `json:"created"`
	Finished *time.Time `json:"finished,omitempty"`
	Uptime   float64    `json:"uptimeSeconds,omitempty"`
	Memory   uint64     `json:"memoryBytes,omitempty"`
	Ports    []string   `json:"ports"`
	PID      int        `json:"pid,omitempty"`
	Log      string     `json:"log"`
}

func cmdPs(args []string) error {
	fs := flag.NewFlagSet("ps", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print a JSON array")
	fs.Usage = func() { fmt.Fprint(fs.Output(), psUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ps takes no arguments, got %q", fs.Arg(0))
	}
	all, err := listInstances()
	if err != nil {
		return err
	}
	ents := []psEntry{}
	for _, in := range all {
		st := in.state()
		e := psEntry{Name: in.meta.Name, Image: in.meta.Image, State: "dead", Created: in.meta.Created, Ports: in.meta.Ports, Log: in.logPath()}
		if e.Ports == nil {
			e.Ports = []string{}
		}
		switch st.kind {
		case stateRunning:
			e.State, e.PID = "running", in.meta.PID
			e.Uptime = time.Since(in.meta.Created).Seconds()
			e.Memory = treePSS(in.meta.PID)
		case stateExited:
			e.State, e.How = "exited", st.exit.How
			s, f := st.exit.Status, st.exit.Finished
			e.Status, e.Finished = &s, &f
		case stateStarting:
			e.State = "starting"
		}
		ents = append(ents, e)
	}
	if *asJSON {
		b, err := json.MarshalIndent(ents, "", "  ")
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", b)
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tIMAGE\tSTATE\tUPTIME\tMEMORY\tPORTS\tPID")
	for _, e := range ents {
		state, up, mem, pid := e.State, "-", "-", "-"
		switch {
		case e.State == "running":
			up = roundDur(time.Duration(e.Uptime * float64(time.Second)))
			mem = fmt.Sprintf("%.1f MiB", float64(e.Memory)/(1<<20))
			pid = strconv.Itoa(e.PID)
		case e.Status != nil:
			state = fmt.Sprintf("exited (%d) %s ago", *e.Status, roundDur(time.Since(*e.Finished)))
		}
		ports := "-"
		if len(e.Ports) > 0 {
			ports = strings.Join(e.Ports, ",")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Image, state, up, mem, ports, pid)
	}
	return w.Flush()
}

func roundDur(d time.Duration) string {
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// treePSS is the proportional set size of process pid and its descendants
// (QEMU is a child of unigo run), from /proc/PID/smaps_rollup (proc(5)).
func treePSS(pid int) uint64 {
	var total uint64
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				total += kb << 10
			}
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, c := range strings.Fields(string(b)) {
			if cp, err := strconv.Atoi(c); err == nil {
				total += treePSS(cp)
			}
		}
	}
	return total
}

const logsUsage = `usage: unigo logs [-f] [--tail N] NAME

Prints an instance's console: the guest's stdout and stderr, and unigo's own
messages, as kept in its log file. -f follows it while the instance runs.
`

func cmdLogs(args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow the log until the instance ends")
	tail := fs.Int("tail", -1, "print only the last `N` lines (-1: all)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), logsUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() != 1 {
		return errors.New("logs needs one instance name: unigo logs web")
	}
	in, err := findInstance(fs.Arg(0))
	if err != nil {
		return err
	}
	f, err := os.Open(in.logPath())
	if err != nil {
		return err
	}
	defer f.Close()
	if *tail >= 0 {
		if err := seekTail(f, *tail); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(os.Stdout)
	for {
		// Whether it still runs is asked before the copy: what it wrote
		// before ending is then read in this round or the next.
		k := in.state().kind
		running := *follow && (k == stateRunning || k == stateStarting)
		if _, err := io.Copy(out, f); err != nil {
			return err
		}
		out.Flush()
		if !running {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seekTail moves f to the start of its last n lines.
func seekTail(f *os.File, n int) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	end := st.Size()
	if n == 0 {
		_, err := f.Seek(end, io.SeekStart)
		return err
	}
	buf := make([]byte, 64<<10)
	lines := 0
	for pos := end; pos > 0; {
		k := min(int64(len(buf)), pos)
		pos -= k
		if _, err := f.ReadAt(buf[:k], pos); err != nil {
			return err
		}
		for i := k - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == end-1 {
				continue // the last line's own newline does not count
			}
			if lines++; lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

const stopUsage = `usage: unigo stop [-t SECONDS] NAME...

Stops instances as a Linux host stops a process: SIGTERM reaches the Go
program (signal.Notify, http.Server.Shutdown), and an instance still running
after the deadline is powered off. Prints each name once it has stopped.
`

func cmdStop(args []string) error {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	secs := fs.Int("t", 10, "`seconds` to wait after SIGTERM before powering off")
	fs.Usage = func() { fmt.Fprint(fs.Output(), stopUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() == 0 {
		return errors.New("stop needs instance names: unigo stop web")
	}
	if *secs < 0 {
		return fmt.Errorf("-t %d: want 0 or more seconds", *secs)
	}
	return eachInstance(fs.Args(), func(name string) error {
		return stopInstance(name, time.Duration(*secs)*time.Second)
	})
}

// eachInstance does op for each name, printing the name when it succeeded
// and the error otherwise, and fails if any did.
func eachInstance(names []string, op func(name string) error) error {
	var failed error
	for _, name := range names {
		if err := op(name); err != nil {
			fmt.Fprintf(os.Stderr, "unigo: %v\n", err)
			failed = exitError(exitUsage)
			continue
		}
		fmt.Println(name)
	}
	return failed
}

func stopInstance(name string, grace time.Duration) error {
	in, err := findInstance(name)
	if err != nil {
		return err
	}
	if in.state().kind != stateRunning {
		return nil // stopped already, as docker stop has it
	}
	if err := syscall.Kill(in.meta.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	if waitGone(in, grace) {
		return nil
	}
	return powerOff(in, fmt.Sprintf("powered off %v after SIGTERM", grace))
}

// waitGone waits up to d for the instance's monitor to end.
func waitGone(in *instance, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !in.alive() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// powerOff ends the instance's monitor at once, as pulling a VM's plug:
// SIGKILL (QEMU dies with it), and records the end as SIGKILL's status.
func powerOff(in *instance, how string) error {
	if err := syscall.Kill(in.meta.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("power off %s: %w", in.meta.Name, err)
	}
	if !waitGone(in, 10*time.Second) {
		return fmt.Errorf("power off %s: pid %d survived SIGKILL", in.meta.Name, in.meta.PID)
	}
	return in.finish(128+int(syscall.SIGKILL), how)
}

const killUsage = `usage: unigo kill [-s SIGNAL] NAME...

Sends a signal to instances. KILL (the default) powers them off; INT, TERM,
HUP, QUIT, USR1 and USR2 reach the Go program inside, as on Linux.
`

func cmdKill(args []string) error {
	fs := flag.NewFlagSet("kill", flag.ContinueOnError)
	sigName := fs.String("s", "KILL", "the `signal`: KILL, or INT, TERM, HUP, QUIT, USR1, USR2 (a name or number)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), killUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() == 0 {
		return errors.New("kill needs instance names: unigo kill web")
	}
	sig, err := parseSignal(*sigName)
	if err != nil {
		return err
	}
	return eachInstance(fs.Args(), func(name string) error {
		in, err := findInstance(name)
		if err != nil {
			return err
		}
		if st := in.state(); st.kind != stateRunning {
			return fmt.Errorf("%s is not running (%s)", name, st)
		}
		if sig == syscall.SIGKILL {
			return powerOff(in, "powered off by unigo kill")
		}
		return syscall.Kill(in.meta.PID, sig)
	})
}

const rmUsage = `usage: unigo rm [-f] NAME...

Removes ended instances and their logs. -f powers off running ones first.
`

func cmdRm(args []string) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	force := fs.Bool("f", false, "power off running instances, then remove them")
	fs.Usage = func() { fmt.Fprint(fs.Output(), rmUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() == 0 {
		return errors.New("rm needs instance names: unigo rm web")
	}
	return eachInstance(fs.Args(), func(name string) error {
		in, err := findInstance(name)
		if err != nil {
			return err
		}
		if in.state().kind == stateRunning {
			if !*force {
				return fmt.Errorf("%s is running: unigo stop %s first, or rm -f", name, name)
			}
			if err := powerOff(in, "powered off by unigo rm -f"); err != nil {
				return err
			}
		}
		return os.RemoveAll(in.dir)
	})
}

// flagErr turns a flag parsing error into unigo's: -h is no error.
func flagErr(err error) error {
	if err == flag.ErrHelp {
		return nil
	}
	return exitError(exitUsage)
}
