package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"unigo.dev/unigo/vmm/qemu"
)

// Instances: a named run (unigo run --name, or -d) keeps its state in a
// folder of the user's state directory, as docker keeps a container's:
//
//	$XDG_STATE_HOME/unigo/           (default ~/.local/state/unigo)
//	  lock                           flock'd while names and ports are taken
//	  instances/NAME/instance.json   what was run, by which host process
//	  instances/NAME/console.log     the guest's stdout and stderr, and unigo's
//	  instances/NAME/exit.json       how it ended, written when it did
//	  instances/NAME/image.img       the image unigo run -d built from a package
//
// An instance is running while its monitor process lives; the process is
// known by its pid, its start time and the host's boot id, so a pid reused
// after the monitor died, or a host restart, is not taken for the instance.

// instanceMeta is instance.json.
type instanceMeta struct {
	Name    string    `json:"name"`
	Image   string    `json:"image"`  // as the user gave it
	Target  string    `json:"target"` // the image file booted
	Args    []string  `json:"args"`   // the guest program's arguments
	Ports   []string  `json:"ports"`  // -p, as given
	VMM     string    `json:"vmm"`
	Memory  string    `json:"memory"` // -m
	Created time.Time `json:"created"`
	PID     int       `json:"pid"`
	Start   uint64    `json:"start"`  // the process's start time, clock ticks after boot
	BootID  string    `json:"bootId"` // /proc/sys/kernel/random/boot_id
}

// instanceExit is exit.json.
type instanceExit struct {
	Status   int       `json:"status"`
	How      string    `json:"how,omitempty"` // "powered off after 10s", ...
	Finished time.Time `json:"finished"`
}

// instance is one instance's folder.
type instance struct {
	dir  string
	meta instanceMeta
}

// envInstance names the instance folder of a unigo run -d child process.
const envInstance = "UNIGO_INSTANCE"

// curInstance is the instance this unigo run runs, if any.
var curInstance *instance

func stateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "unigo"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set XDG_STATE_HOME or HOME (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "unigo"), nil
}

func instancesDir() (string, error) {
	d, err := stateDir()
	return filepath.Join(d, "instances"), err
}

// nameChar reports whether c may be in an instance's name; a name starts
// with a letter or digit. (A regexp with {0,63} cost every start of unigo
// 0.4 ms and 860 allocations to compile.)
func nameChar(c rune, first bool) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || !first && (c == '_' || c == '.' || c == '-')
}

func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i, c := range name {
		if !nameChar(c, i == 0) {
			return false
		}
	}
	return true
}

func checkName(name string) error {
	if !validName(name) {
		return fmt.Errorf("instance name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64", name)
	}
	return nil
}

// lockState takes the state directory's lock, which serializes taking
// names and ports.
func lockState() (unlock func(), err error) {
	d, err := stateDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(d, "instances"), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(d, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// register takes name (or makes one from the image's) and the ports of
// meta, failing if a live instance holds either, and creates the folder.
// The caller holds the lock.
func register(meta instanceMeta) (*instance, error) {
	all, err := listInstances()
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, in := range all {
		taken[in.meta.Name] = true
	}
	if meta.Name == "" {
		meta.Name = freeName(imageBase(meta.Image), taken)
	}
	if err := checkName(meta.Name); err != nil {
		return nil, err
	}
	want := map[string]string{}
	for _, p := range meta.Ports {
		pp, _ := qemu.ParsePort(p)
		want[fmt.Sprintf("%d/%s", pp.Host, pp.Proto)] = p
	}
	for _, in := range all {
		if in.meta.Name == meta.Name {
			return nil, fmt.Errorf("the name %q is taken by an instance (%s): unigo rm %s first, or choose another --name", meta.Name, in.state().String(), meta.Name)
		}
		if in.state().kind != stateRunning {
			continue
		}
		for _, p := range in.meta.Ports {
			pp, _ := qemu.ParsePort(p)
			if _, ok := want[fmt.Sprintf("%d/%s", pp.Host, pp.Proto)]; ok {
				return nil, fmt.Errorf("host port %d/%s is taken by instance %s: unigo stop %s, or forward another port", pp.Host, pp.Proto, in.meta.Name, in.meta.Name)
			}
		}
	}
	base, err := instancesDir()
	if err != nil {
		return nil, err
	}
	in := &instance{dir: filepath.Join(base, meta.Name), meta: meta}
	if _, err := loadInstance(in.dir); err != nil {
		// A folder without its instance.json, under the lock: what a unigo
		// run -d killed while it built the image left behind.
		os.RemoveAll(in.dir)
	}
	if err := os.Mkdir(in.dir, 0o700); err != nil {
		return nil, fmt.Errorf("instance %s: %w", meta.Name, err)
	}
	meta.Created = time.Now().UTC()
	in.meta = meta
	return in, nil
}

// imageBase is the name an instance of image gets by default.
func imageBase(image string) string {
	b := strings.TrimSuffix(filepath.Base(filepath.Clean(image)), ".img")
	b = strings.Map(func(c rune) rune {
		if nameChar(c, false) {
			return c
		}
		return '-'
	}, b)
	if !validName(b) {
		b = "unigo"
	}
	return b
}

// freeName returns base, or base-2, base-3... whichever is not taken.
func freeName(base string, taken map[string]bool) string {
	if !taken[base] {
		return base
	}
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s-%d", base, i); !taken[n] {
			return n
		}
	}
}

// setProcess records pid as the instance's monitor process.
func (in *instance) setProcess(pid int) error {
	in.meta.PID = pid
	in.meta.Start, _ = procStart(pid)
	in.meta.BootID = bootID()
	return in.save()
}

func (in *instance) save() error {
	b, err := json.MarshalIndent(in.meta, "", "\t")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(in.dir, "instance.json"), append(b, '\n'))
}

func (in *instance) logPath() string { return filepath.Join(in.dir, "console.log") }

// finish records how the instance ended, unless that is known already.
func (in *instance) finish(status int, how string) error {
	p := filepath.Join(in.dir, "exit.json")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	b, _ := json.Marshal(instanceExit{Status: status, How: how, Finished: time.Now().UTC()})
	return writeAtomic(p, append(b, '\n'))
}

func writeAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// finishInstance records the running instance's end, if there is one.
func finishInstance(status int, how string) {
	if curInstance != nil {
		if err := curInstance.finish(status, how); err != nil {
			fmt.Fprintf(os.Stderr, "unigo: instance %s: %v\n", curInstance.meta.Name, err)
		}
	}
}

// readyFD is where a unigo run -d child says that the guest has started.
const readyFD = 3

// started tells a waiting unigo run -d that the guest is booting: its
// devices and ports are set up.
func started() {
	if startedHook != nil {
		startedHook()
	}
	if os.Getenv(envInstance) == "" {
		return
	}
	f := os.NewFile(readyFD, "ready")
	f.Write([]byte("ok\n"))
	f.Close()
}

func loadInstance(dir string) (*instance, error) {
	b, err := os.ReadFile(filepath.Join(dir, "instance.json"))
	if err != nil {
		return nil, err
	}
	in := &instance{dir: dir}
	if err := json.Unmarshal(b, &in.meta); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "instance.json"), err)
	}
	return in, nil
}

// findInstance returns the instance called name.
func findInstance(name string) (*instance, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	base, err := instancesDir()
	if err != nil {
		return nil, err
	}
	in, err := loadInstance(filepath.Join(base, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no instance %q: unigo ps lists them", name)
	}
	return in, err
}

// listInstances returns every instance, by name. A folder without
// instance.json (one being created, or left by a crash) is skipped.
func listInstances() ([]*instance, error) {
	base, err := instancesDir()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var all []*instance
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		in, err := loadInstance(filepath.Join(base, e.Name()))
		if err != nil {
			continue
		}
		all = append(all, in)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].meta.Name < all[j].meta.Name })
	return all, nil
}

type stateKind int

const (
	stateRunning  stateKind = iota
	stateExited             // exit.json says how
	stateDead               // the monitor is gone without saying: killed, or the host restarted
	stateStarting           // unigo run -d has not started its monitor yet
)

type instanceState struct {
	kind stateKind
	exit instanceExit
}

func (s instanceState) String() string {
	switch s.kind {
	case stateRunning:
		return "running"
	case stateExited:
		return fmt.Sprintf("exited (%d)", s.exit.Status)
	case stateStarting:
		return "starting"
	}
	return "dead"
}

// state tells whether the instance's monitor still runs.
func (in *instance) state() instanceState {
	if b, err := os.ReadFile(filepath.Join(in.dir, "exit.json")); err == nil {
		var e instanceExit
		if json.Unmarshal(b, &e) == nil {
			return instanceState{kind: stateExited, exit: e}
		}
	}
	if in.alive() {
		return instanceState{kind: stateRunning}
	}
	if in.meta.PID == 0 && time.Since(in.meta.Created) < readyTimeout {
		return instanceState{kind: stateStarting}
	}
	return instanceState{kind: stateDead}
}

// alive reports whether the recorded monitor process is still the one that
// runs the instance.
func (in *instance) alive() bool {
	m := in.meta
	if m.PID <= 0 || m.BootID != bootID() {
		return false
	}
	st, err := procStart(m.PID)
	return err == nil && st == m.Start
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return string(bytes.TrimSpace(b))
}

// procStart returns the start time of process pid, in clock ticks after
// boot: field 22 of /proc/PID/stat (proc(5)). A zombie counts as gone.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
