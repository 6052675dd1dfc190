package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDebuggee starts unigo run --gdb on a free port and returns it and
// the address, once it waits for the debugger.
func startDebuggee(t *testing.T, img string, args ...string) (*exec.Cmd, *strings.Builder, *strings.Builder, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(unigoBin, append([]string{"run", "--gdb", addr, img}, args...)...)
	stdout, stderr := new(strings.Builder), new(strings.Builder)
	cmd.Stdout = stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	r := bufio.NewReader(pr)
	line, _ := r.ReadString('\n')
	if !strings.Contains(line, "waiting for a debugger at "+addr) {
		t.Fatalf("first stderr line %q", line)
	}
	stderr.WriteString(line)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			stderr.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	return cmd, stdout, stderr, addr
}

// TestSignalBeforeGuest sends SIGTERM to unigo run while it waits for a
// debugger, before the guest runs: unigo catches the forwarded signals from
// the start of a boot, and with no guest to take it ends as the signal would
// end it, with 143.
func TestSignalBeforeGuest(t *testing.T) {
	needKVM(t)
	cmd, stdout, _, _ := startDebuggee(t, image(t, "examples/hello"))
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("SIGTERM while waiting for a debugger: %v, want exit status 143", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if stdout.Len() != 0 {
		t.Errorf("the guest ran: %q", stdout)
	}
}

// TestGDB debugs a guest with gdb in batch mode: breakpoints on main.main
// and on a function, its arguments, a global variable, the backtrace, the threads,
// a single step, a register changed so that the function returns another
// value, and the exit.
func TestGDB(t *testing.T) {
	needKVM(t)
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb is not installed (Debian: apt-get install gdb)")
	}
	img := image(t, "debugme")
	cmd, stdout, stderr, addr := startDebuggee(t, img)
	out, err := exec.Command(gdb, "-batch", "-nx",
		"-ex", "target remote "+addr,
		"-ex", "break main.main",
		"-ex", "break main.add",
		"-ex", "continue",
		"-ex", "continue",
		"-ex", "print main.counter",
		"-ex", "bt",
		"-ex", "info threads",
		"-ex", "set var $rbx = 5", // b, in the Go register ABI
		"-ex", "stepi",
		"-ex", "info registers rip",
		"-ex", "continue",
		img).CombinedOutput()
	if err != nil {
		cmd.Wait()
		t.Fatalf("gdb: %v\n%s\nunigo run's stderr:\n%s", err, out, stderr)
	}
	cmd.Wait()
	for _, want := range []string{
		`runtime.main \(\) at .*proc.go`,                 // the first stop
		`hit Breakpoint 1, main.main \(\)`,               // the breakpoints: main.main,
		`hit Breakpoint 2, main.add \(a=41, b=1`,         // main.add, with its arguments
		`\$1 = 41`,                                       // a global variable
		`#0  main.add .*\n#1  0x[0-9a-f]+ in main.main`,  // the backtrace
		`\* 1    Thread 1 .*main.add`,                    // the threads: this one,
		`\n  2    Thread 2 `,                             // and the runtime's others
		`rip +0x[0-9a-f]+ +0x[0-9a-f]+ <main.add\+[1-9]`, // one instruction further
		`exited normally`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("gdb's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("gdb:\n%s\nunigo stderr:\n%s", out, stderr)
	}
	if stdout.String() != "counter is 46\n" || cmd.ProcessState.ExitCode() != 0 { // 41+5: the register was written
		t.Fatalf("the guest printed %q, exit %d", stdout, cmd.ProcessState.ExitCode())
	}
}

// rspClient speaks GDB's remote protocol in acknowledgement mode.
type rspClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (k *rspClient) send(p string) {
	var sum byte
	for i := 0; i < len(p); i++ {
		sum += p[i]
	}
	fmt.Fprintf(k.c, "$%s#%02x", p, sum)
}

// recv returns the next packet, acknowledging it.
func (k *rspClient) recv() string {
	k.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		b, err := k.r.ReadByte()
		if err != nil {
			k.t.Fatalf("read: %v", err)
		}
		if b != '$' {
			continue // '+' acknowledgements
		}
		p, err := k.r.ReadString('#')
		if err != nil {
			k.t.Fatalf("read: %v", err)
		}
		k.r.Discard(2)
		k.c.Write([]byte("+"))
		return strings.TrimSuffix(p, "#")
	}
}

func (k *rspClient) ask(p string) string { k.send(p); return k.recv() }

// TestGDBInterrupt drives the stub with the raw protocol: the debugger's
// Ctrl-C stops a running guest, memory reads and writes, a breakpoint
// outside mapped memory is refused, and after detaching the guest runs on.
func TestGDBInterrupt(t *testing.T) {
	needKVM(t)
	cmd, stdout, stderr, addr := startDebuggee(t, image(t, "signals"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := &rspClient{t: t, c: c, r: bufio.NewReader(c)}
	if r := k.ask("qSupported:swbreak+"); !strings.Contains(r, "swbreak+") {
		t.Fatalf("qSupported: %q", r)
	}
	if r := k.ask("?"); !strings.HasPrefix(r, "T05thread:1;") {
		t.Fatalf("first stop: %q", r)
	}
	k.send("c")
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stdout.String(), "ready"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the guest never got ready; stderr:\n%s", stderr)
		}
	}
	c.Write([]byte{0x03})
	if r := k.recv(); !strings.HasPrefix(r, "T02thread:") {
		t.Fatalf("after Ctrl-C: %q", r)
	}
	g := k.ask("g")
	if len(g) != 2*164 {
		t.Fatalf("g: %d hex digits, want %d", len(g), 2*164)
	}
	if r := k.ask("m0,8"); r != "E14" {
		t.Errorf("reading page 0: %q, want E14", r)
	}
	if r := k.ask("Z0,8,1"); r != "E14" {
		t.Errorf("a breakpoint in page 0: %q, want E14", r)
	}
	threads := k.ask("qfThreadInfo")
	if ids := strings.Split(strings.TrimPrefix(threads, "m"), ","); threads[0] != 'm' || len(ids) < 2 || !strings.Contains(","+threads[1:]+",", ",1,") || k.ask("qsThreadInfo") != "l" {
		t.Errorf("threads: %q", threads)
	}
	if r := k.ask("D"); r != "OK" {
		t.Fatalf("detach: %q", r)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 7 || !strings.Contains(stdout.String(), "got terminated") {
		t.Fatalf("after detaching, SIGTERM: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
}

// TestDelve debugs a guest with Delve: unigo dlv --headless serves Delve's
// API, and dlv connect sets a breakpoint, reads the arguments and a global,
// the backtrace and the goroutines, and continues to the exit.
func TestDelve(t *testing.T) {
	needKVM(t)
	dlv, err := exec.LookPath("dlv")
	if err != nil {
		t.Skip("dlv is not installed (go install github.com/go-delve/delve/cmd/dlv@v1.27.2)")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := exec.Command(unigoBin, "dlv", "--headless", addr, image(t, "debugme"))
	srvOut := new(strings.Builder)
	srv.Stdout, srv.Stderr = srvOut, srvOut
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // dlv and the guest go with it
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-srv.Process.Pid, syscall.SIGKILL); srv.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Delve server at %s:\n%s", addr, srvOut)
		}
	}
	client := exec.Command(dlv, "connect", addr)
	client.Stdin = strings.NewReader("break main.add\ncontinue\nprint a\nprint b\nprint main.counter\nbt\ngoroutines\ncontinue\nexit\n")
	raw, _ := client.CombinedOutput()
	out := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(string(raw), "") // dlv's colours
	for _, want := range []string{
		`Breakpoint 1 set at 0x[0-9a-f]+ for main.add\(\)`,
		`\(dlv\) 41\n\(dlv\) 1\n\(dlv\) 41\n`, // a, b and main.counter
		`0  0x[0-9a-f]+ in main.add\n.*\n1  0x[0-9a-f]+ in main.main\n.*\n2  0x[0-9a-f]+ in runtime.main`,
		`\* Goroutine 1 - User: .*main.go:10 main.add`,
		`Goroutine \d+ - User: .*runtime.gopark`,
		`exited with status 0`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("dlv connect's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("dlv connect:\n%s\nunigo dlv:\n%s", out, srvOut)
	}
	if !strings.Contains(srvOut.String(), "counter is 42") {
		t.Errorf("the guest's output did not reach unigo dlv:\n%s", srvOut)
	}
}
