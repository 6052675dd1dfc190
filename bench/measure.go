package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// helloRun times hello: exec to the first line holding "hello" on stdout,
// and exec to exit. A run that does not print it is an error.
func helloRun(c *exec.Cmd, limit time.Duration) (first, exit time.Duration, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, err
	}
	c.Stdout, c.Stderr = w, w
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return 0, 0, err
	}
	w.Close()
	kill := time.AfterFunc(limit, func() { c.Process.Kill() })
	defer kill.Stop()
	sc := bufio.NewScanner(r)
	var out bytes.Buffer
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if first == 0 && strings.Contains(sc.Text(), "hello") {
			first = time.Since(t0)
		}
	}
	err = c.Wait()
	exit = time.Since(t0)
	r.Close()
	if err == nil && first == 0 {
		err = fmt.Errorf("no hello in the output")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %v\n%s", c.Args, err, out.Bytes())
	}
	return first, exit, nil
}

// An instance is a running httpd.
type instance struct {
	cmd   *exec.Cmd
	url   string
	first time.Duration // exec to the first answered request
	out   *bytes.Buffer
	done  chan error // Wait's result
}

// startHttpd starts c and waits until it answers on port, for at most limit.
func startHttpd(c *exec.Cmd, port int, limit time.Duration) (*instance, error) {
	in := &instance{cmd: c, url: fmt.Sprintf("http://127.0.0.1:%d/", port), out: new(bytes.Buffer), done: make(chan error, 1)}
	c.Stdout, c.Stderr = in.out, in.out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return nil, err
	}
	go func() { in.done <- c.Wait() }()
	cl := &http.Client{Timeout: time.Second}
	for {
		if resp, err := cl.Get(in.url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				in.first = time.Since(t0)
				return in, nil
			}
		}
		select {
		case err := <-in.done:
			return nil, fmt.Errorf("%v exited before answering: %v\n%s", c.Args, err, in.out.Bytes())
		default:
		}
		if time.Since(t0) > limit {
			in.stop()
			return nil, fmt.Errorf("%v: no answer from %s within %v\n%s", c.Args, in.url, limit, in.out.Bytes())
		}
		time.Sleep(time.Millisecond)
	}
}

// get makes n requests one after another, each of which must be answered.
func (in *instance) get(n int) error {
	cl := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		resp, err := cl.Get(in.url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", in.url, resp.Status)
		}
	}
	return nil
}

// stop ends the instance's whole process group (a runtime's helpers too).
func (in *instance) stop() {
	pid := in.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(2 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-in.done
	}
	// Helpers left in the group (a container runtime's) go too.
	syscall.Kill(-pid, syscall.SIGKILL)
	cleanup(in.cmd)
}

// alive reports whether the instance's process is still running.
func (in *instance) alive() bool {
	select {
	case err := <-in.done:
		in.done <- err
		return false
	default:
		return true
	}
}

// wrkResult is what wrk reports of one run.
type wrkResult struct {
	rps, p50, p99 float64 // p50, p99 in ms
	requests      int
	errors        bool
}

// wrk loads url with wrk -t2 -c64 (keep-alive) for d.
func wrk(url string, d time.Duration) (wrkResult, error) {
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+d.String(), "--latency", url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	var r wrkResult
	if m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := regexp.MustCompile(`(\d+) requests in`).FindSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(string(m[1]))
	}
	r.p50 = latency(out, "50%")
	r.p99 = latency(out, "99%")
	r.errors = bytes.Contains(out, []byte("Socket errors")) || bytes.Contains(out, []byte("Non-2xx"))
	return r, nil
}

// latency reads a percentile line of wrk --latency ("  99%   12.34ms") in ms.
func latency(out []byte, pct string) float64 {
	m := regexp.MustCompile(`\s` + regexp.QuoteMeta(pct) + `\s+([\d.]+)(us|ms|s)`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	switch string(m[2]) {
	case "us":
		v /= 1000
	case "s":
		v *= 1000
	}
	return v
}

// tree returns pid and all its descendants.
func tree(pid int) []int {
	parent := map[int][]int{}
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		parent[pp] = append(parent[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parent[out[i]]...)
	}
	return out
}

// pssKiB is the proportional set size of pid's process tree: the host memory
// it costs, a VM's guest memory that was touched included, with the pages it
// shares with others (a binary's text, say) divided among them.
func pssKiB(pid int) int {
	return sumTree(pid, "smaps_rollup", func(b []byte) int { return procField(b, "Pss:") })
}

// cpuTicks is the user and system time of pid's process tree, in clock
// ticks (USER_HZ, 100 per second on Linux).
func cpuTicks(pid int) int {
	return sumTree(pid, "stat", func(b []byte) int {
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return u + s
	})
}

// sumTree adds up what value makes of /proc/PID/file for each process of
// pid's tree; processes gone meanwhile count nothing.
func sumTree(pid int, file string, value func([]byte) int) int {
	total := 0
	for _, p := range tree(pid) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p, file)); err == nil {
			total += value(b)
		}
	}
	return total
}

// memAvailableKiB is the host's MemAvailable (proc(5)).
func memAvailableKiB() int {
	b, _ := os.ReadFile("/proc/meminfo")
	return procField(b, "MemAvailable:")
}

// procField reads the number after key in a "Key:  N kB" file of /proc.
func procField(b []byte, key string) int {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sh(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	check(err, out)
}
