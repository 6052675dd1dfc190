// Package e2e boots real images on the real monitor and checks what they print
// and return. Every test needs /dev/kvm; without it the tests skip, saying so.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	unigoBin string // the unigo command under test
	tmpDir   string
	noKVM    string // why the tests cannot boot, if they cannot
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "unigo-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	unigoBin = filepath.Join(dir, "unigo")
	build := exec.Command("go", "build", "-o", unigoBin, "unigo.dev/unigo/cmd/unigo")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as README.md installs it
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build unigo: %v\n%s", err, out)
		os.Exit(1)
	}
	// The monitor's start profiles and ROM files go into a cache folder of
	// the run's own, not the user's (each test image is a new path); Go's
	// build cache stays where it is.
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go env GOCACHE: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		noKVM = fmt.Sprintf("cannot boot images: %v", err)
		fmt.Fprintln(os.Stderr, "e2e: KVM absent, tests skip:", noKVM)
	} else {
		f.Close()
		fmt.Fprintln(os.Stderr, "e2e: KVM present: /dev/kvm")
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needKVM(t *testing.T) {
	t.Helper()
	if noKVM != "" {
		t.Skip(noKVM)
	}
}

// pagingKVM reports whether /dev/kvm is a paging-based KVM, such as PVM,
// rather than hardware virtualization: the host CPU shows neither VT-x nor
// AMD-V (prior-art §5).
func pagingKVM(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "flags") {
			f := " " + l + " "
			return !strings.Contains(f, " vmx ") && !strings.Contains(f, " svm ")
		}
	}
	t.Fatal("/proc/cpuinfo has no flags line")
	return false
}

var (
	imagesMu sync.Mutex
	images   = map[string]string{}
)

// image builds the program in testdata/name (or a path relative to the
// module root, such as examples/hello) once per test run.
func image(t *testing.T, pkg string) string {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if img, ok := images[pkg]; ok {
		return img
	}
	dir := filepath.Join("testdata", pkg)
	if strings.Contains(pkg, "/") {
		dir = filepath.Join("..", "..", pkg)
	}
	img := filepath.Join(tmpDir, strings.ReplaceAll(pkg, "/", "_")+".img")
	out, err := exec.Command(unigoBin, "build", "-o", img, "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("unigo build %s: %v\n%s", pkg, err, out)
	}
	images[pkg] = img
	return img
}

type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// run runs unigo with args and waits at most a minute.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runFor(t, time.Minute, args...)
}

// runFor runs unigo with args and waits at most limit.
func runFor(t *testing.T, limit time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, unigoBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(t0)}
	if ctx.Err() != nil {
		t.Fatalf("unigo %q did not finish in %v\nstdout:\n%s\nstderr:\n%s", args, limit, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("unigo %q: %v", args, err)
	}
	return r
}

func expect(t *testing.T, r result, code int, stdout string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) {
		t.Fatalf("exit status %d, want %d; stdout should contain %q\nstdout:\n%s\nstderr:\n%s", r.code, code, stdout, r.stdout, r.stderr)
	}
}
