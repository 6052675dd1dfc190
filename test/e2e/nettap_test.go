package e2e

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNetTap gives the guest a static address on a tap device in a network
// namespace the test makes, and fetches from it there: --net tap:NAME with
// --ip and --gw, on both monitors. The fetch runs in this test binary,
// started again inside the namespace (TestNetTapInside).
func TestNetTap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace and a tap device")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian: util-linux, iproute2)", tool)
		}
	}
	img := image(t, "examples/httpd")
	bothVMMs(t, func(t *testing.T, vmm string) {
		cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^TestNetTapInside$", "-test.v")
		cmd.Env = append(os.Environ(), "UNIGO_TAP_TEST="+vmm, "UNIGO_TAP_IMG="+img, "UNIGO_BIN="+unigoBin)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "answer: hello from unigo: /over-tap") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}

// TestNetTapInside is TestNetTap's half inside the namespace.
func TestNetTapInside(t *testing.T) {
	vmm := os.Getenv("UNIGO_TAP_TEST")
	if vmm == "" {
		t.Skip("run by TestNetTap inside a network namespace")
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"tuntap", "add", "tap0", "mode", "tap"},
		{"addr", "add", "10.9.0.1/24", "dev", "tap0"},
		{"link", "set", "tap0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command(os.Getenv("UNIGO_BIN"), "run", "--vmm", vmm, "--net", "tap:tap0", "--ip", "10.9.0.2/24", "--gw", "10.9.0.1",
		os.Getenv("UNIGO_TAP_IMG"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Errorf("after SIGTERM: %v, want exit status 143; stderr:\n%s", err, stderr.String())
		}
	}()
	c := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get("http://10.9.0.2/over-tap")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("answer: %s", strings.TrimSpace(string(b)))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from 10.9.0.2: %v; stderr:\n%s", err, stderr.String())
		}
	}
}
