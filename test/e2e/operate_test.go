package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRun starts unigo with args and returns it once the guest has printed
// want as its first line.
func startRun(t *testing.T, want string, args ...string) (*exec.Cmd, *bufio.Reader, *strings.Builder) {
	t.Helper()
	cmd, r, stderr := startInstance(t, args...)
	t.Cleanup(func() { cmd.Process.Kill() })
	if line, err := r.ReadString('\n'); line != want+"\n" {
		t.Fatalf("first line %q (%v), want %q; stderr:\n%s", line, err, want, stderr)
	}
	return cmd, r, stderr
}

// TestSignals sends unigo run the signals a service gets and checks that
// the Go program's handlers see them, on both monitors.
func TestSignals(t *testing.T) {
	img := image(t, "signals")
	bothVMMs(t, func(t *testing.T, vmm string) {
		t.Run("handled", func(t *testing.T) {
			cmd, out, stderr := startRun(t, "ready", "run", "--vmm", vmm, img)
			for _, c := range []struct {
				sig  syscall.Signal
				line string
			}{{syscall.SIGHUP, "got hangup"}, {syscall.SIGUSR1, "got user defined signal 1"}, {syscall.SIGUSR2, "got user defined signal 2"}, {syscall.SIGTERM, "got terminated"}} {
				t0 := time.Now()
				cmd.Process.Signal(c.sig)
				line, err := out.ReadString('\n')
				if line != c.line+"\n" {
					t.Fatalf("after %v: %q (%v), want %q; stderr:\n%s", c.sig, line, err, c.line, stderr)
				}
				if d := time.Since(t0); d > 2*time.Second {
					t.Errorf("%v took %v to reach the handler", c.sig, d)
				}
			}
			rest, _ := io.ReadAll(out)
			err := cmd.Wait()
			if string(rest) != "cleaning up\n" || cmd.ProcessState.ExitCode() != 7 {
				t.Fatalf("after SIGTERM: %q, %v; want the handler's line and status 7; stderr:\n%s", rest, err, stderr)
			}
		})
		t.Run("third SIGINT powers off", func(t *testing.T) {
			cmd, _, stderr := startRun(t, "ready", "run", "--vmm", vmm, img, "--", "ignore-int")
			for range 3 {
				cmd.Process.Signal(syscall.SIGINT)
				time.Sleep(200 * time.Millisecond)
			}
			cmd.Wait()
			if c := cmd.ProcessState.ExitCode(); c != 130 || !strings.Contains(stderr.String(), "powering the guest off") {
				t.Fatalf("exit status %d, want 130 with a note; stderr:\n%s", c, stderr)
			}
		})
	})
}

// psJSON is what the tests read of unigo ps --json.
type psJSON struct {
	Name   string   `json:"name"`
	State  string   `json:"state"`
	Status *int     `json:"status"`
	How    string   `json:"how"`
	PID    int      `json:"pid"`
	Memory uint64   `json:"memoryBytes"`
	Ports  []string `json:"ports"`
}

func ps(t *testing.T) map[string]psJSON {
	t.Helper()
	r := run(t, "ps", "--json")
	var ents []psJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ents) != nil {
		t.Fatalf("unigo ps --json: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	m := map[string]psJSON{}
	for _, e := range ents {
		m[e.Name] = e
	}
	return m
}

// TestInstances operates background instances end to end: run -d, ps,
// logs, stop (SIGTERM reaches http.Server.Shutdown while a request is in
// flight), kill, rm, refused duplicates, and an instance whose monitor died.
func TestInstances(t *testing.T) {
	needKVM(t)
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	web := image(t, "graceful")
	sig := image(t, "signals")
	port := freePort(t)
	fw := fmt.Sprintf("%d:80", port)

	r := run(t, "run", "-d", "--name", "web", "-p", fw, web)
	if r.code != 0 || r.stdout != "web\n" {
		t.Fatalf("run -d: exit %d, stdout %q, want the name\n%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { run(t, "rm", "-f", "web") })
	body := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", port), new(strings.Builder))
	if string(body) != "hello from graceful\n" {
		t.Fatalf("GET /: %q", body)
	}
	e := ps(t)["web"]
	if e.State != "running" || e.PID <= 0 || e.Memory == 0 || len(e.Ports) != 1 || e.Ports[0] != fw {
		t.Fatalf("ps: %+v", e)
	}
	if r := run(t, "ps"); !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "running") || !strings.Contains(r.stdout, fw) {
		t.Fatalf("ps:\n%s", r.stdout)
	}

	t.Run("duplicates refused", func(t *testing.T) {
		r := run(t, "run", "-d", "--name", "web", sig)
		if r.code != 125 || !strings.Contains(r.stderr, `name "web" is taken`) {
			t.Fatalf("same name: exit %d\n%s", r.code, r.stderr)
		}
		r = run(t, "run", "-d", "--name", "web2", "-p", fw, web)
		if r.code != 125 || !strings.Contains(r.stderr, fmt.Sprintf("host port %d/tcp is taken by instance web", port)) {
			t.Fatalf("same port: exit %d\n%s", r.code, r.stderr)
		}
		if _, ok := ps(t)["web2"]; ok {
			t.Fatal("a refused instance is listed")
		}
	})

	t.Run("stop delivers SIGTERM", func(t *testing.T) {
		slow := make(chan string, 1)
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/slow", port))
			if err != nil {
				slow <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slow <- string(b)
		}()
		waitLog(t, "web", "slow request began")
		r := run(t, "stop", "web")
		if r.code != 0 || r.stdout != "web\n" {
			t.Fatalf("stop: exit %d %q\n%s", r.code, r.stdout, r.stderr)
		}
		if s := <-slow; s != "slow done\n" {
			t.Errorf("the request in flight got %q, want its answer", s)
		}
		logs := run(t, "logs", "web").stdout
		if want := "serving\nslow request began\nSIGTERM: shutting down\nshut down cleanly\n"; logs != want {
			t.Errorf("logs:\n%s\nwant:\n%s", logs, want)
		}
		if r := run(t, "logs", "--tail", "1", "web"); r.stdout != "shut down cleanly\n" {
			t.Errorf("logs --tail 1: %q", r.stdout)
		}
		if e := ps(t)["web"]; e.State != "exited" || e.Status == nil || *e.Status != 0 {
			t.Fatalf("after stop, ps: %+v", e)
		}
		// The port is free again for a new instance.
		r = run(t, "run", "-d", "--name", "web2", "-p", fw, web)
		if r.code != 0 {
			t.Fatalf("run -d on the freed port: exit %d\n%s", r.code, r.stderr)
		}
		run(t, "rm", "-f", "web2")
	})

	t.Run("stop powers off after the deadline", func(t *testing.T) {
		expect(t, run(t, "run", "-d", "--name", "stubborn", sig, "--", "ignore-term"), 0, "stubborn")
		waitLog(t, "stubborn", "ready")
		r := run(t, "stop", "-t", "1", "stubborn")
		if r.code != 0 || r.elapsed < time.Second || r.elapsed > 10*time.Second {
			t.Fatalf("stop -t 1: exit %d after %v\n%s", r.code, r.elapsed, r.stderr)
		}
		if e := ps(t)["stubborn"]; e.State != "exited" || e.Status == nil || *e.Status != 137 || !strings.Contains(e.How, "powered off") {
			t.Fatalf("ps: %+v", e)
		}
	})

	t.Run("kill", func(t *testing.T) {
		expect(t, run(t, "run", "-d", "--name", "sig", sig), 0, "sig")
		waitLog(t, "sig", "ready")
		expect(t, run(t, "kill", "-s", "USR1", "sig"), 0, "sig")
		waitLog(t, "sig", "got user defined signal 1")
		if r := run(t, "kill", "-s", "STOP", "sig"); r.code != 125 || !strings.Contains(r.stderr, "do not reach the guest") {
			t.Errorf("kill -s STOP: exit %d\n%s", r.code, r.stderr)
		}
		expect(t, run(t, "kill", "sig"), 0, "sig")
		if e := ps(t)["sig"]; e.State != "exited" || e.Status == nil || *e.Status != 137 {
			t.Fatalf("after kill, ps: %+v", e)
		}
	})

	t.Run("logs -f", func(t *testing.T) {
		expect(t, run(t, "run", "-d", "--name", "follow", sig), 0, "follow")
		done := make(chan result, 1)
		go func() { done <- runFor(t, 30*time.Second, "logs", "-f", "follow") }()
		waitLog(t, "follow", "ready")
		expect(t, run(t, "kill", "-s", "TERM", "follow"), 0, "follow")
		select {
		case r := <-done:
			if r.stdout != "ready\ngot terminated\ncleaning up\n" {
				t.Fatalf("logs -f: %q", r.stdout)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("logs -f did not end with the instance")
		}
		if e := ps(t)["follow"]; e.State != "exited" || e.Status == nil || *e.Status != 7 {
			t.Fatalf("ps: %+v", e)
		}
	})

	t.Run("dead monitor", func(t *testing.T) {
		expect(t, run(t, "run", "-d", "--name", "victim", sig), 0, "victim")
		e := ps(t)["victim"]
		syscall.Kill(e.PID, syscall.SIGKILL)
		for deadline := time.Now().Add(10 * time.Second); ps(t)["victim"].State != "dead"; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("ps after SIGKILL of the monitor: %+v", ps(t)["victim"])
			}
		}
		if r := run(t, "stop", "victim"); r.code != 0 {
			t.Errorf("stop of a dead instance: exit %d\n%s", r.code, r.stderr)
		}
		// State a host crash leaves: a live pid that is another process
		// now, or the same pid in another boot, is not the instance.
		meta := filepath.Join(state, "unigo", "instances", "victim", "instance.json")
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		for _, c := range []struct {
			what string
			set  func()
		}{
			{"a reused pid", func() { m["pid"] = os.Getpid() }},
			{"another boot", func() { m["pid"], m["start"] = os.Getpid(), procStartOf(t, os.Getpid()); m["bootId"] = "another-boot" }},
		} {
			c.set()
			b, _ = json.Marshal(m)
			os.WriteFile(meta, b, 0o600)
			if e := ps(t)["victim"]; e.State != "dead" {
				t.Errorf("%s: ps says %+v", c.what, e)
			}
		}
		// And with the right start time in this boot, it reads as running:
		// the check is not always "dead".
		m["bootId"] = strings.TrimSpace(readFile(t, "/proc/sys/kernel/random/boot_id"))
		b, _ = json.Marshal(m)
		os.WriteFile(meta, b, 0o600)
		if e := ps(t)["victim"]; e.State != "running" || e.PID != os.Getpid() {
			t.Errorf("a live process with its start time: ps says %+v", e)
		}
		m["pid"] = 0
		b, _ = json.Marshal(m)
		os.WriteFile(meta, b, 0o600)
	})

	t.Run("under QEMU", func(t *testing.T) {
		needQEMU(t)
		expect(t, run(t, "run", "-d", "--vmm", "qemu", "--name", "q", sig), 0, "q")
		waitLog(t, "q", "ready")
		expect(t, run(t, "stop", "q"), 0, "q")
		if e := ps(t)["q"]; e.State != "exited" || e.Status == nil || *e.Status != 7 {
			t.Fatalf("ps: %+v", e)
		}
		if logs := run(t, "logs", "q").stdout; logs != "ready\ngot terminated\ncleaning up\n" {
			t.Fatalf("logs: %q", logs)
		}
		expect(t, run(t, "rm", "q"), 0, "q")
	})

	t.Run("rm", func(t *testing.T) {
		// A folder a killed unigo run -d left without its instance.json
		// does not hold the name.
		if err := os.Mkdir(filepath.Join(state, "unigo", "instances", "busy"), 0o700); err != nil {
			t.Fatal(err)
		}
		expect(t, run(t, "run", "-d", "--name", "busy", sig), 0, "busy")
		if r := run(t, "rm", "busy"); r.code != 125 || !strings.Contains(r.stderr, "is running") {
			t.Fatalf("rm of a running instance: exit %d\n%s", r.code, r.stderr)
		}
		for _, n := range []string{"web", "stubborn", "sig", "follow", "victim"} {
			expect(t, run(t, "rm", n), 0, n)
		}
		expect(t, run(t, "rm", "-f", "busy"), 0, "busy")
		if m := ps(t); len(m) != 0 {
			t.Fatalf("after rm, ps lists %v", m)
		}
		ents, _ := os.ReadDir(filepath.Join(state, "unigo", "instances"))
		if len(ents) != 0 {
			t.Fatalf("state left: %v", ents)
		}
	})
}

// waitLog waits until the instance's log holds line.
func waitLog(t *testing.T, name, line string) {
	t.Helper()
	var logs string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if logs = run(t, "logs", name).stdout; strings.Contains(logs, line+"\n") {
			return
		}
	}
	t.Fatalf("instance %s never logged %q; log:\n%s", name, line, logs)
}

// scrape GETs a Prometheus text exposition and parses it strictly: every
// sample's family has its HELP and TYPE first, a family's samples are
// together, and every value is a number. It returns the samples by
// name{labels}.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	body, _ := io.ReadAll(resp.Body)
	samples := map[string]float64{}
	typed := map[string]string{}
	helped := map[string]bool{}
	done := map[string]bool{} // families whose samples have ended
	last := ""
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" {
			switch f[1] {
			case "HELP":
				helped[f[2]] = true
			case "TYPE":
				if len(f) != 4 || (f[3] != "counter" && f[3] != "gauge") {
					t.Fatalf("bad TYPE line %q", line)
				}
				typed[f[2]] = f[3]
			}
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		key, val := line[:sp], line[sp+1:]
		name := key
		if i := strings.IndexByte(key, '{'); i >= 0 {
			name = key[:i]
			if !strings.HasSuffix(key, "}") {
				t.Fatalf("bad labels in %q", line)
			}
		}
		if !helped[name] || typed[name] == "" {
			t.Fatalf("sample %q before its HELP and TYPE", line)
		}
		if name != last {
			if done[name] {
				t.Fatalf("family %s's samples are not together", name)
			}
			done[last] = true
			last = name
		}
		var v float64
		if _, err := fmt.Sscan(val, &v); err != nil {
			t.Fatalf("value of %q: %v", line, err)
		}
		if strings.HasSuffix(name, "_total") && typed[name] != "counter" {
			t.Errorf("%s is a %s, named as a counter", name, typed[name])
		}
		samples[key] = v
	}
	return samples
}

// TestMetrics scrapes unigo run --metrics of a server under requests and of
// a program using a disk, and checks the counters against what they did.
func TestMetrics(t *testing.T) {
	needKVM(t)
	t.Run("network", func(t *testing.T) {
		port, mport := freePort(t), freePort(t)
		cmd, _, stderr := startRun(t, "serving", "run", "--metrics", fmt.Sprintf("127.0.0.1:%d", mport), "-p", fmt.Sprintf("%d:80", port), image(t, "graceful"))
		url := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
		waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", port), stderr)
		before := scrape(t, url)
		const n = 20
		for range n {
			waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", port), stderr)
		}
		after := scrape(t, url)
		for _, k := range []string{"unigo_uptime_seconds", "unigo_vcpu_seconds_total", `unigo_vm_exits_total{reason="mmio"}`,
			`unigo_hypercalls_total{call="halt"}`, "unigo_guest_memory_touched_bytes"} {
			if after[k] <= 0 {
				t.Errorf("%s = %v, want more than 0", k, after[k])
			}
		}
		// The devices' set-up writes to their selectors and queue addresses
		// go to KVM's coalesced MMIO ring, not one exit each: the two
		// devices and the first answer took ~110 MMIO exits without, ~60
		// with.
		if k := `unigo_vm_exits_total{reason="mmio"}`; before[k] > 90 {
			t.Errorf("%s = %v at the first answer, want at most 90: the coalesced MMIO zones are not used", k, before[k])
		}
		if after["unigo_guest_memory_touched_bytes"] > after["unigo_guest_memory_bytes"] || after["unigo_guest_memory_bytes"] != 128<<20 {
			t.Errorf("memory touched %v of %v", after["unigo_guest_memory_touched_bytes"], after["unigo_guest_memory_bytes"])
		}
		// Each request is at least a read and a write by the server and a
		// receive and a send by the network component.
		for _, k := range []string{`unigo_guest_syscalls_total{call="read"}`, `unigo_guest_syscalls_total{call="write"}`,
			`unigo_guest_syscalls_total{call="unigo_net"}`} {
			if d := after[k] - before[k]; d < n {
				t.Errorf("%s grew by %v over %d requests, want at least %d", k, d, n, n)
			}
		}
		// The system-call gates (build/gates.go): on a paging-based KVM
		// every system call after the first enters the kernel by a jump;
		// with hardware virtualization each gate executes its SYSCALL.
		var calls float64
		for k, v := range after {
			if strings.HasPrefix(k, "unigo_guest_syscalls_total{") {
				calls += v - before[k]
			}
		}
		gated := after["unigo_guest_syscall_gates_total"] - before["unigo_guest_syscall_gates_total"]
		if paging := pagingKVM(t); paging && gated < calls*0.99 || !paging && gated != 0 {
			t.Errorf("%v of %v system calls over %d requests came through a gate's jump (paging-based KVM: %v)", gated, calls, n, paging)
		}
		// The monitor's own small HTTP responder: other paths and methods.
		for _, c := range []struct {
			method, path string
			want         int
		}{{"GET", "/", 404}, {"POST", "/metrics", 405}, {"HEAD", "/metrics", 200}} {
			req, _ := http.NewRequest(c.method, fmt.Sprintf("http://127.0.0.1:%d%s", mport, c.path), nil)
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != c.want {
				t.Errorf("%s %s: %v %v, want status %d", c.method, c.path, resp, err, c.want)
			} else {
				resp.Body.Close()
			}
		}
		t.Run("kvm", func(t *testing.T) {
			exits, pf := `unigo_kvm_vcpu_events_total{event="exits"}`, `unigo_kvm_vcpu_events_total{event="pf_taken"}`
			if _, ok := after[exits]; !ok {
				t.Skip("this KVM has no binary statistics (KVM_CAP_BINARY_STATS_FD, Linux 5.14)")
			}
			// Every request exits at least once (the device's notification),
			// and the guest's first touches of its pages were KVM's faults.
			if d := after[exits] - before[exits]; d < n || after[pf] <= 0 {
				t.Errorf("KVM counted %v exits over %d requests and %v page faults in all", d, n, after[pf])
			}
		})
		if after["unigo_uptime_seconds"] <= before["unigo_uptime_seconds"] {
			t.Errorf("uptime went from %v to %v", before["unigo_uptime_seconds"], after["unigo_uptime_seconds"])
		}
		// Each request (on one kept-alive connection through -p, so through
		// the socket device, not as frames) is at least fifty bytes each
		// way.
		for _, k := range []string{"unigo_network_stream_receive_bytes_total", "unigo_network_stream_transmit_bytes_total"} {
			if d := after[k] - before[k]; d < n*50 {
				t.Errorf("%s grew by %v over %d requests", k, d, n)
			}
		}
		if d := after["unigo_network_streams_total"]; d < 1 {
			t.Errorf("%v forwarded connections carried by the socket device", d)
		}
		if after[`unigo_info{image="graceful.img",instance="",version="devel",abi="1"}`] != 1 {
			t.Errorf("unigo_info missing: %v", after)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	t.Run("disk", func(t *testing.T) {
		disk := filepath.Join(t.TempDir(), "disk")
		const size = 1 << 20
		if err := os.WriteFile(disk, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		mport := freePort(t)
		cmd, _, _ := startRun(t, fmt.Sprintf("read %d wrote %d", size, 64<<10), "run", "--metrics", fmt.Sprintf("127.0.0.1:%d", mport), "--disk", disk, image(t, "diskio"))
		m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
		if v := m[`unigo_disk_read_bytes_total{disk="vda"}`]; v < size {
			t.Errorf("read bytes %v, want at least the disk's %d", v, size)
		}
		if v := m[`unigo_disk_written_bytes_total{disk="vda"}`]; v < 64<<10 {
			t.Errorf("written bytes %v, want at least 64 KiB", v)
		}
		if m[`unigo_disk_flushes_total{disk="vda"}`] < 1 || m[`unigo_disk_reads_total{disk="vda"}`] < 1 || m[`unigo_disk_writes_total{disk="vda"}`] < 1 {
			t.Errorf("requests: %v", m)
		}
		if _, ok := m["unigo_network_receive_bytes_total"]; ok {
			t.Error("network counters for a guest without a network device")
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	t.Run("refused", func(t *testing.T) {
		ln := freePort(t)
		hold, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ln))
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close()
		r := run(t, "run", "--metrics", fmt.Sprintf("127.0.0.1:%d", ln), image(t, "signals"))
		if r.code != 125 || !strings.Contains(r.stderr, "--metrics") || !strings.Contains(r.stderr, "address already in use") {
			t.Errorf("a taken address: exit %d\n%s", r.code, r.stderr)
		}
		r = run(t, "run", "--vmm", "qemu", "--metrics", "127.0.0.1:0", image(t, "signals"))
		if r.code != 125 || !strings.Contains(r.stderr, "own monitor") {
			t.Errorf("under QEMU: exit %d\n%s", r.code, r.stderr)
		}
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// procStartOf is field 22 of /proc/PID/stat, the process's start time.
func procStartOf(t *testing.T, pid int) uint64 {
	t.Helper()
	s := readFile(t, fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestHugeROM boots httpd, whose read-only image fills 2 MiB pages, three
// ways: with those pages copied into the instance's huge pages (its first
// boot, which writes the image's ROM file), mapped from the ROM file (the
// boots after it), and shared from the image file (--share-image). All
// must serve; the first two must spare KVM most of the first-touch faults
// of the image's pages, which KVM counts.
func TestHugeROM(t *testing.T) {
	needKVM(t)
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil || !strings.Contains(string(b), "[always]") && !strings.Contains(string(b), "[madvise]") {
		t.Skipf("the host gives no transparent huge pages (%q, %v)", b, err)
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	faults := map[string]float64{}
	for _, mode := range []string{"copy", "romfile", "share"} {
		port, mport := freePort(t), freePort(t)
		args := []string{"run", "--metrics", fmt.Sprintf("127.0.0.1:%d", mport), "-p", fmt.Sprintf("%d:80", port)}
		if mode == "share" {
			args = append(args, "--share-image")
		}
		cmd, _, stderr := startInstance(t, append(args, image(t, "examples/httpd"))...)
		body := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/rom", port), stderr)
		if string(body) != "hello from unigo: /rom\n" {
			t.Errorf("%s: answer %q", mode, body)
		}
		m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
		cmd.Process.Kill()
		cmd.Wait()
		v, ok := m[`unigo_kvm_vcpu_events_total{event="pf_taken"}`]
		if !ok {
			t.Skip("this KVM has no binary statistics (KVM_CAP_BINARY_STATS_FD, Linux 5.14)")
		}
		faults[mode] = v
		if mode == "copy" {
			roms, _ := filepath.Glob(filepath.Join(cache, "unigo", "rom", "*"))
			if len(roms) != 1 {
				t.Fatalf("the first boot left ROM files %v; want one", roms)
			}
			if fi, err := os.Stat(roms[0]); err != nil || fi.Size() == 0 {
				t.Skipf("the host keeps the ROM file in 4 KiB pages (%v): later boots copy too", err)
			}
		}
	}
	// httpd's start touches ~1,300 of the image's 4 KiB pages, most of them
	// in the 2 MiB pages that are copied.
	t.Logf("KVM's page faults at the first answer: %v", faults)
	for _, mode := range []string{"copy", "romfile"} {
		if faults[mode] > faults["share"]-500 {
			t.Errorf("KVM took %v page faults with the image's huge pages from the %s, %v with them shared from the image: want at least 500 fewer", faults[mode], mode, faults["share"])
		}
	}
}
