package e2e

import (
	"bufio"
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHello(t *testing.T) {
	needKVM(t)
	r := run(t, "run", image(t, "examples/hello"))
	expect(t, r, 0, "hello\n")
	if r.stdout != "hello\n" || r.stderr != "" {
		t.Fatalf("stdout %q, stderr %q; want only hello", r.stdout, r.stderr)
	}
}

// TestRebuild builds over an existing image: go build leaves an up-to-date
// output alone, and the marked image must stay good.
func TestRebuild(t *testing.T) {
	needKVM(t)
	img := filepath.Join(t.TempDir(), "hello.img")
	for i := 0; i < 2; i++ {
		if out, err := exec.Command(unigoBin, "build", "-o", img, "../../examples/hello").CombinedOutput(); err != nil {
			t.Fatalf("build %d: %v\n%s", i+1, err, out)
		}
	}
	expect(t, run(t, "run", img), 0, "hello\n")
}

// TestGates builds hello with and without the system-call gates
// (build/gates.go): with them, -v says that every SYSCALL instruction went
// into one, and a build over that image (which go build may leave alone)
// keeps them; without them the image boots as well.
func TestGates(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	gated := regexp.MustCompile(`system-call gates: (\d+) of (\d+) SYSCALL instructions go through gates|system-call gates: in place already`)
	img := filepath.Join(dir, "hello.img")
	for i := range 2 {
		out, err := exec.Command(unigoBin, "build", "-v", "-o", img, "../../examples/hello").CombinedOutput()
		if err != nil {
			t.Fatalf("build %d: %v\n%s", i+1, err, out)
		}
		m := gated.FindSubmatch(out)
		if m == nil || len(m[1]) > 0 && (string(m[1]) != string(m[2]) || len(m[1]) < 2) {
			t.Fatalf("build %d -v says %q; want all of 10 or more SYSCALL instructions gated\n%s", i+1, m, out)
		}
		expect(t, run(t, "run", img), 0, "hello\n")
	}
	plain := filepath.Join(dir, "plain.img")
	out, err := exec.Command(unigoBin, "build", "-v", "--no-gates", "-o", plain, "../../examples/hello").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "system-call gates: none") {
		t.Fatalf("build --no-gates: %v\n%s", err, out)
	}
	expect(t, run(t, "run", plain), 0, "hello\n")
}

// TestRunPackage builds and boots in one step, from outside the module.
func TestRunPackage(t *testing.T) {
	needKVM(t)
	abs, err := filepath.Abs("../../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, "run", abs)
	expect(t, r, 0, "hello\n")
}

func TestExitStatus(t *testing.T) {
	needKVM(t)
	checkExitStatus(t, "run")
}

// checkExitStatus checks that exit statuses up to 255 come through.
func checkExitStatus(t *testing.T, run0 ...string) {
	for _, code := range []int{0, 3, 200, 255} {
		r := run(t, append(run0, image(t, "exitcode"), "--", strconv.Itoa(code))...)
		expect(t, r, code, fmt.Sprintf("exiting with %d", code))
	}
}

func TestExitFromGoroutine(t *testing.T) {
	needKVM(t)
	expect(t, run(t, "run", image(t, "goexit")), 7, "exit from goroutine")
}

func TestPanic(t *testing.T) {
	needKVM(t)
	r := run(t, "run", image(t, "panic"))
	if r.code != 2 || !strings.Contains(r.stderr, "panic: boom from unigo") || !strings.Contains(r.stderr, "main.main()") {
		t.Fatalf("exit %d, want 2 with Go's panic message and trace on stderr:\n%s", r.code, r.stderr)
	}
}

func TestGoroutines(t *testing.T) {
	needKVM(t)
	expect(t, run(t, "run", image(t, "goroutines")), 0, "sum 1001000")
}

func TestGCChurn(t *testing.T) {
	needKVM(t)
	r := run(t, "run", "-m", "256M", image(t, "gcchurn"))
	expect(t, r, 0, "allocated ")
	m := regexp.MustCompile(`allocated (\d+) MiB in (\d+) GCs`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no allocation summary in %q", r.stdout)
	}
	if mib, _ := strconv.Atoi(m[1]); mib < 200 {
		t.Errorf("allocated %d MiB, want at least 200", mib)
	}
	if gcs, _ := strconv.Atoi(m[2]); gcs < 5 {
		t.Errorf("%d GCs, want several", gcs)
	}
}

// TestOutOfMemory wants Go's own error when the heap outgrows the guest,
// and with --debug the kernel's line saying which commit it refused.
func TestOutOfMemory(t *testing.T) {
	needKVM(t)
	checkOOM(t, run(t, "run", "-m", "64M", image(t, "oom")))
	r := run(t, "run", "--debug", "-m", "64M", image(t, "oom"))
	checkOOM(t, r)
	if !regexp.MustCompile(`unigo: mmap: \d+ KiB to commit, \d+ KiB of RAM free: ENOMEM`).MatchString(r.stderr) {
		t.Errorf("--debug: no report of the refused commit:\n%s", tail(r.stderr))
	}
}

// TestSmallMemory: hello runs in 6 MiB of guest RAM. The own monitor maps
// the image's code and read-only data outside RAM (the ROM); the kernel
// takes the free RAM below the image as frames too, backs the runtime's
// heap commits on first touch (one page a fault) once frames run short,
// and takes its threads' stacks and its tables' pages as they are needed.
func TestSmallMemory(t *testing.T) {
	needKVM(t)
	expect(t, run(t, "run", "-m", "6M", image(t, "examples/hello")), 0, "hello\n")
}

// TestLargestMemory boots hello and httpd with the most RAM there is (-m
// 3072M, up to the doorbell): the ROM and the BSS hole would push RAM past
// the doorbell, so the monitor leaves them out there.
func TestLargestMemory(t *testing.T) {
	needKVM(t)
	expect(t, run(t, "run", "-m", "3072M", image(t, "examples/hello")), 0, "hello\n")
	expect(t, run(t, "run", "-m", "3072M", image(t, "bigbss"), "--", "4"), 0, "touched 4 MiB")
}

// TestManyThreads runs 40 threads at once, each taking timer interrupts on
// its own kernel stack, which the kernel takes from RAM as a thread is made.
func TestManyThreads(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		expect(t, run(t, "run", "--vmm", vmm, "-m", "64M", image(t, "manythreads")), 0, "all 40 goroutines ran\n")
	})
}

// TestPipes moves 1 MiB through a pipe (the ring wraps), makes and closes
// pipes one after another (each slot's ring, taken at its first use, is
// reused), and opens as many as the kernel's 16 slots allow.
func TestPipes(t *testing.T) {
	needKVM(t)
	expect(t, run(t, "run", image(t, "pipes")), 0,
		"1 MiB through one pipe: true 1d7368ef6f59e0c7\npipes made and closed: 40\nopen at once: 16\n")
}

// TestBSSHole runs a program with a 24 MiB zeroed global in 24 MiB of guest
// memory: the own monitor leaves a hole in RAM where the image's largest
// zeroed objects lie, and the kernel backs the pages the program touches.
// Touching all of it leaves no memory, which the kernel reports.
func TestBSSHole(t *testing.T) {
	needKVM(t)
	img := image(t, "bigbss")
	expect(t, run(t, "run", "-m", "24M", img, "--", "4"), 0, "touched 4 MiB, sum 130560 last 0\n")
	expect(t, run(t, "run", img, "--", "24"), 0, "touched 24 MiB, sum 783360 last 0\n")
	r := run(t, "run", "-m", "24M", img, "--", "24")
	if r.code == 0 || !strings.Contains(r.stderr, "out of memory") || !strings.Contains(r.stderr, "unigo run -m") {
		t.Fatalf("touching 24 MiB in 24 MiB of memory: exit %d, want an out-of-memory report naming -m:\n%s", r.code, tail(r.stderr))
	}
}

// checkOOM wants Go's own fatal error, which has one of two wordings by where
// the allocation failed (heap growth or runtime metadata), and exit 2.
func checkOOM(t *testing.T, r result) {
	t.Helper()
	oom := regexp.MustCompile(`fatal error: runtime: (out of memory|cannot allocate memory)`)
	if r.code != 2 || !oom.MatchString(r.stderr) {
		t.Fatalf("exit %d, want 2 with Go's out-of-memory error:\n%s", r.code, tail(r.stderr))
	}
}

func TestClock(t *testing.T) {
	needKVM(t)
	checkClock(t, run(t, "run", image(t, "clock")))
}

// checkClock checks the clock program's output: each time.Sleep(50ms) took
// 50-60 ms, and the wall clock it printed last agrees with the host's.
func checkClock(t *testing.T, r result) {
	t.Helper()
	host := time.Now()
	expect(t, r, 0, "now ")
	for _, m := range regexp.MustCompile(`slept (\d+) us`).FindAllStringSubmatch(r.stdout, -1) {
		us, _ := strconv.Atoi(m[1])
		if us < 50000 || us > 60000 {
			t.Errorf("time.Sleep(50ms) took %d us, want 50-60 ms", us)
		}
	}
	m := regexp.MustCompile(`now (\d+)`).FindStringSubmatch(r.stdout)
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	// The guest printed its time just before exiting; host is taken after.
	if d := host.Sub(time.Unix(0, ns)); d < -time.Second || d > time.Second+r.elapsed {
		t.Errorf("guest wall clock is %v off the host's", d)
	}
}

func TestRandom(t *testing.T) {
	needKVM(t)
	img := image(t, "random")
	a, b := run(t, "run", img), run(t, "run", img)
	expect(t, a, 0, "distinct 256")
	expect(t, b, 0, "distinct 256")
	if a.stdout == b.stdout {
		t.Fatalf("two boots read the same random bytes: %s", a.stdout)
	}
}

func TestArgsEnv(t *testing.T) {
	needKVM(t)
	r := run(t, "run", "-e", "FOO=bar baz", image(t, "argsenv"), "--", "arg1", "two words", "")
	expect(t, r, 0, `args ["arg1" "two words" ""]`)
	expect(t, r, 0, `FOO="bar baz" BAR=""`)
}

func TestPreemption(t *testing.T) {
	needKVM(t)
	checkPreemption(t, run(t, "run", image(t, "preempt")))
}

// checkPreemption checks the preempt program's output. With one CPU, Go
// itself preempts the spinner every 10 ms (sysmon), so a tick takes 10-20 ms:
// 400 ms on Linux with GOMAXPROCS=1 on this machine.
func checkPreemption(t *testing.T, r result) {
	t.Helper()
	expect(t, r, 0, "20 ticks in")
	m := regexp.MustCompile(`20 ticks in (\d+) ms`).FindStringSubmatch(r.stdout)
	if ms, _ := strconv.Atoi(m[1]); ms < 190 || ms > 1500 {
		t.Fatalf("20 ticks of 10 ms took %d ms, want 200-1500 ms", ms)
	}
}

func TestBadImages(t *testing.T) {
	needKVM(t)
	good, err := os.ReadFile(image(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self, err := os.Executable() // a plain Linux ELF
	if err != nil {
		t.Fatal(err)
	}
	badPhoff := append([]byte(nil), good...)
	copy(badPhoff[32:40], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}) // e_phoff far outside the file
	badMachine := append([]byte(nil), good...)
	badMachine[18] = 0xb7 // e_machine = EM_AARCH64
	for _, c := range []struct {
		name, path, want string
		args             []string
	}{
		{"plain Linux ELF", self, "no Unigo note", nil},
		{"not ELF", write("text.img", []byte("hello, world\n")), "not a valid ELF", nil},
		{"truncated", write("trunc.img", good[:len(good)/2]), "truncated image", nil},
		{"program headers outside the file", write("phoff.img", badPhoff), "run past the end", nil},
		{"other machine", write("arm.img", badMachine), "want an x86-64 ELF64 executable", nil},
		{"segment outside memory", image(t, "examples/hello"), "does not fit in 4 MiB of guest memory", []string{"-m", "4M"}},
		{"missing", filepath.Join(t.TempDir(), "none.img"), "no such file", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, append(append([]string{"run"}, c.args...), c.path)...)
			if r.code != 125 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, want 125 with %q on stderr; stderr:\n%s", r.code, c.want, r.stderr)
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

func TestUnigoTest(t *testing.T) {
	needKVM(t)
	checkUnigoTest(t)
}

// checkUnigoTest runs the unittest package's tests with unigo test and
// extra flags.
func checkUnigoTest(t *testing.T, flags ...string) {
	test := func(args ...string) []string { return append(append([]string{"test"}, flags...), args...) }
	r := run(t, test("./testdata/unittest", "-test.v")...)
	for _, want := range []string{"--- PASS: TestAdd", "--- SKIP: TestSkipped", "--- PASS: TestEnv", "--- PASS: ExampleAdd", "\nPASS\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if r.code != 0 {
		t.Errorf("exit %d, want 0", r.code)
	}
	if t.Failed() {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}

	r = run(t, test("-e", "UNIGO_FAIL=1", "./testdata/unittest", "-test.run=TestEnv")...)
	if r.code != 1 || !strings.Contains(r.stdout, "--- FAIL: TestEnv") || !strings.Contains(r.stdout, "failing on request") {
		t.Fatalf("exit %d, want 1 with TestEnv failing:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestUnigoTestStd runs a standard library package's own tests inside Unigo.
func TestUnigoTestStd(t *testing.T) {
	needKVM(t)
	r := run(t, "test", "strings", "-test.run=^(TestIndex|TestSplit|ExampleFields)$", "-test.v")
	for _, want := range []string{"--- PASS: TestIndex", "--- PASS: TestSplit", "--- PASS: ExampleFields"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if r.code != 0 || t.Failed() {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestNilDereference(t *testing.T) {
	needKVM(t)
	r := run(t, "run", image(t, "nilderef"))
	for _, want := range []string{"panic: runtime error: invalid memory address or nil pointer dereference", "[signal SIGSEGV: segmentation violation", "main.get("} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if r.code != 2 || t.Failed() {
		t.Fatalf("exit %d, want 2 as on Linux; stderr:\n%s", r.code, r.stderr)
	}
}

// helloWithSymbol returns the bytes of the hello image and the address of
// its symbol sym.
func helloWithSymbol(t *testing.T, sym string) ([]byte, uint64) {
	t.Helper()
	raw, err := os.ReadFile(image(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == sym {
			return raw, s.Value
		}
	}
	t.Fatalf("no %s in the image", sym)
	return nil, 0
}

// TestCrashReport boots an image whose entry point is runtime.abort, an
// INT3 before any handler exists: a triple fault, which the monitor reports
// with registers and a symbolized program counter.
func TestCrashReport(t *testing.T) {
	needKVM(t)
	raw, abort := helloWithSymbol(t, "runtime.abort.abi0")
	binary.LittleEndian.PutUint64(raw[24:], abort) // e_entry
	p := filepath.Join(t.TempDir(), "abort.img")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "run", p)
	for _, want := range []string{"unigo: guest stopped:", "rip 0x", "runtime.abort", "backtrace:", "cr3 0x3000"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("crash report lacks %q", want)
		}
	}
	if r.code != 134 || t.Failed() {
		t.Fatalf("exit %d, want 134; stderr:\n%s", r.code, r.stderr)
	}
}

// TestStrippedImage builds hello without a symbol table and DWARF
// (-ldflags=-s -w, as users shipping small images do): unigo build finds
// the PVH entry in Go's own function table, the image boots, and a crash
// report still names the function, from .gopclntab.
func TestStrippedImage(t *testing.T) {
	needKVM(t)
	img := filepath.Join(t.TempDir(), "hello.img")
	if out, err := exec.Command(unigoBin, "build", "-ldflags=-s -w", "-o", img, "../../examples/hello").CombinedOutput(); err != nil {
		t.Fatalf("unigo build -ldflags=-s -w: %v\n%s", err, out)
	}
	expect(t, run(t, "run", img), 0, "hello\n")
	if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		expect(t, run(t, "run", "--vmm", "qemu", img), 0, "hello\n") // the PVH note
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
		t.Fatalf("the stripped image has a symbol table (err %v)", err)
	}
	pcln, err := f.Section(".gopclntab").Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(pcln, f.Section(".text").Addr))
	if err != nil {
		t.Fatal(err)
	}
	abort := tab.LookupFunc("runtime.abort")
	if abort == nil {
		t.Fatal("no runtime.abort in .gopclntab")
	}
	binary.LittleEndian.PutUint64(raw[24:], abort.Entry) // e_entry
	p := filepath.Join(t.TempDir(), "abort.img")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "run", p)
	if r.code != 134 || !strings.Contains(r.stderr, "rip 0x") || !strings.Contains(r.stderr, "runtime.abort+0x") {
		t.Fatalf("exit %d, want 134 and a report naming runtime.abort; stderr:\n%s", r.code, r.stderr)
	}
}

func TestUnimplementedSyscall(t *testing.T) {
	needKVM(t)
	checkUnimplemented(t, "run")
}

// checkUnimplemented checks that an unimplemented system call fails with
// ENOSYS, reported once with --debug and not at all without.
func checkUnimplemented(t *testing.T, run0 ...string) {
	img := image(t, "unimpl")
	r := run(t, append(run0, img)...)
	expect(t, r, 0, "acct: function not implemented")
	if r.stderr != "" {
		t.Errorf("without --debug stderr should be empty, got %q", r.stderr)
	}
	r = run(t, append(run0, "--debug", img)...)
	expect(t, r, 0, "acct: function not implemented")
	if n := strings.Count(r.stderr, "unimplemented system call acct (163)"); n != 1 {
		t.Errorf("--debug reported acct %d times, want once:\n%s", n, r.stderr)
	}
}

// TestStopSignals checks that SIGINT and SIGTERM to unigo run, forwarded to
// a program without handlers, end it as on Linux: Go's default handler
// re-raises the signal, and the status is the shell's for it.
func TestStopSignals(t *testing.T) {
	needKVM(t)
	checkStopSignals(t, "run")
}

func checkStopSignals(t *testing.T, run0 ...string) {
	img := image(t, "sleeper")
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		cmd := exec.Command(unigoBin, append(run0, img)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "sleeping\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		t0 := time.Now()
		cmd.Process.Signal(c.sig)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code {
			t.Errorf("%v: %v, want exit status %d", c.sig, err, c.code)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("%v: took %v to stop", c.sig, d)
		}
	}
}

// TestNoKVM hides /dev/kvm in a private mount namespace and checks the
// one-line error of the own monitor, asked for explicitly (without --vmm,
// unigo falls back to QEMU where it is installed).
func TestNoKVM(t *testing.T) {
	needKVM(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	img := image(t, "examples/hello")
	cmd := exec.Command("unshare", "-m", "sh", "-c", `mount -t tmpfs none /dev && exec "$0" run --vmm kvm "$1"`, unigoBin, img)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("unigo run without /dev/kvm: %v\n%s", err, out)
	}
	if ee.ExitCode() != 125 || !strings.Contains(string(out), "/dev/kvm does not exist") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("exit %d, want 125 and one line naming /dev/kvm:\n%s", ee.ExitCode(), out)
	}
}

// TestDemandPaging maps more memory than the guest has and uses a little of
// it, as the Go runtime does with its arena index.
func TestDemandPaging(t *testing.T) {
	needKVM(t)
	r := run(t, "run", "-m", "64M", image(t, "lazymap"))
	// 0+1+...+255 = 32640; then four zero bytes from an untouched page.
	expect(t, r, 0, "sum 32640\n\x00\x00\x00\x00\nwrote 4 <nil>\nunmapped\n")
}

// TestExternalModule builds and boots a program of another module, from its
// own folder, with an installed unigo: the kernel comes from the unigo
// binary, and the program's folder is left as it was.
func TestExternalModule(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/app\n\ngo 1.26\n",
		"main.go": `package main

import (
	"fmt"
	"net"
	"os"
)

var version = "unset"

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the network component comes along too
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	ln.Close()
	fmt.Println("external", version, os.Args[1:])
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "app.img")
	build := exec.Command(unigoBin, "build", "-o", img, "-trimpath", "-ldflags", "-X main.version=1.2.3", ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("unigo build in %s: %v\n%s", dir, err, out)
	}
	expect(t, run(t, "run", img, "--", "x"), 0, "external 1.2.3 [x]\n")

	cmd := exec.Command(unigoBin, "run", ".", "--", "y")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "external unset [y]\n" {
		t.Fatalf("unigo run . in %s: %v\n%s", dir, err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("the program's folder now holds %d files, want its %d", len(entries), len(files))
	}
	for name, body := range files {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != body {
			t.Errorf("%s changed", name)
		}
	}
}

// TestBadPointers passes ridiculous pointers to system calls: each gets
// EFAULT (14), as on Linux, and the guest goes on.
func TestBadPointers(t *testing.T) {
	needKVM(t)
	r := run(t, "run", image(t, "badptr"))
	expect(t, r, 0, "survived")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("want 5 result lines and survived:\n%s", r.stdout)
	}
	for i, l := range lines[:5] {
		for _, f := range strings.Fields(strings.Trim(l, "[]")) {
			if i == 0 && f == "rt_sigaction=0" {
				continue // a NULL old action is no pointer at all
			}
			if !strings.HasSuffix(f, "=14") {
				t.Errorf("%s, want EFAULT (14)", f)
			}
		}
	}
}

// TestInspect describes images without booting them: the build info, the
// ABI, the components unigo build chose, the memory and the parts.
func TestInspect(t *testing.T) {
	type inspection struct {
		ABI        uint32
		Path       string
		GoVersion  string
		Components []string
		Memory     struct{ Start, End, Zeroed, DemandFrom uint64 }
		Sections   map[string]uint64
		Parts      map[string]uint64
		NetDeps    []string
	}
	get := func(img string) inspection {
		out, err := exec.Command(unigoBin, "inspect", "--json", img).Output()
		if err != nil {
			t.Fatalf("unigo inspect --json %s: %v", img, err)
		}
		var in inspection
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("unigo inspect --json: %v\n%s", err, out)
		}
		return in
	}
	hello, httpd := get(image(t, "examples/hello")), get(image(t, "examples/httpd"))
	if hello.ABI != 1 || hello.Path != "unigo.dev/unigo/examples/hello" || hello.GoVersion != runtime.Version() {
		t.Errorf("hello: ABI %d, path %q, Go %q; want 1, unigo.dev/unigo/examples/hello, %s", hello.ABI, hello.Path, hello.GoVersion, runtime.Version())
	}
	if len(hello.Components) != 1 || len(httpd.Components) != 3 || !strings.HasPrefix(httpd.Components[1], "network") {
		t.Errorf("components: hello %q, httpd %q; want the kernel alone, and the kernel, the network and the file drivers", hello.Components, httpd.Components)
	}
	if hello.Parts["Unigo kernel"] == 0 || hello.Parts["network stack (gVisor)"] != 0 || httpd.Parts["network stack (gVisor)"] == 0 {
		t.Errorf("parts: hello %v, httpd %v", hello.Parts, httpd.Parts)
	}
	// gVisor's own modules are the network component's, not the program's.
	if !slices.Contains(httpd.NetDeps, "gvisor.dev/gvisor") || !slices.Contains(httpd.NetDeps, "github.com/google/btree") || len(hello.NetDeps) != 0 {
		t.Errorf("network component's modules: httpd %q, hello %q", httpd.NetDeps, hello.NetDeps)
	}
	// httpd ends with Go's 32 MiB FIPS buffer: the own monitor backs it on first touch
	// (from the first 2 MiB boundary in it).
	if httpd.Memory.DemandFrom == 0 || httpd.Memory.End-httpd.Memory.DemandFrom < 30<<20 || hello.Sections["text"] == 0 {
		t.Errorf("memory: httpd %+v, hello's sections %v", httpd.Memory, hello.Sections)
	}
	raw, err := os.ReadFile(image(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "inspect", plain)
	if r.code != 125 || !strings.Contains(r.stderr, "truncated image") {
		t.Errorf("inspect of a truncated image: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, "inspect", "/bin/true"); r.code != 125 || !strings.Contains(r.stderr, "not a Unigo image") {
		t.Errorf("inspect of /bin/true: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestReadOnlyImage writes to a string constant: the own monitor maps the
// image's code and read-only data read-only (a read-only memory slot, and
// read-only pages in the guest's page tables), so the write is a SIGSEGV
// that Go reports as a fault and exit 2, as on Linux.
func TestReadOnlyImage(t *testing.T) {
	needKVM(t)
	r := run(t, "run", image(t, "writero"))
	if r.code != 2 || !strings.Contains(r.stderr, "unexpected fault address") || !strings.Contains(r.stderr, "signal SIGSEGV") || strings.Contains(r.stdout, "wrote:") {
		t.Fatalf("exit %d, want 2 with Go's fault report:\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, tail(r.stderr))
	}
}

// TestStartProfile boots an image with a cache folder of its own: the first
// boot records the pages it touched and writes the image's ROM file, the
// next back those pages before they start and map the ROM file, and a
// damaged profile is recorded anew, with the program's output the same
// each time.
func TestStartProfile(t *testing.T) {
	needKVM(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	img := image(t, "examples/hello")
	boot := func(want string) {
		t.Helper()
		r := run(t, "run", "--debug", img)
		expect(t, r, 0, "hello\n")
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("stderr should say %q:\n%s", want, r.stderr)
		}
	}
	boot("recorded (<nil>)")
	// The first boot also wrote the image's ROM file, which the next maps
	// (or left it empty where the host has no 2 MiB folios for it).
	roms, err := filepath.Glob(filepath.Join(cache, "unigo", "rom", "*"))
	if err != nil || len(roms) != 1 {
		t.Fatalf("ROM files %v, %v; want one", roms, err)
	}
	romMapped := "ROM file " + roms[0] + ": mapped"
	if fi, err := os.Stat(roms[0]); err != nil || fi.Size() == 0 {
		t.Logf("the host keeps the ROM file in 4 KiB pages (%v): boots copy the ROM", err)
		romMapped = "hello"
	}
	files, err := filepath.Glob(filepath.Join(cache, "unigo", "profiles", "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("profiles %v, %v; want one", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	// 128 MiB of RAM: a 40-byte header and a bit per 4 KiB page.
	if len(b) != 40+128<<20/4096/8 {
		t.Fatalf("profile of %d bytes", len(b))
	}
	set := 0
	for _, v := range b[40:] {
		for ; v != 0; v &= v - 1 {
			set++
		}
	}
	if set < 50 || set > 2000 {
		t.Fatalf("profile of %d pages; hello touches a few hundred", set)
	}
	boot(fmt.Sprintf("%d pages backed before the boot (<nil>)", set))
	boot(romMapped)
	if err := os.WriteFile(files[0], b[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	boot("recording it again")
	boot("pages backed before the boot (<nil>)")
}
