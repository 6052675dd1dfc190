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
// namespace the test makes, fetches from it and pings it there: --net tap:NAME with
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
		if err != nil || !strings.Contains(string(out), "answer: hello from unigo: /over-tap") || !strings.Contains(string(out), "ping: echo reply") {
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
	defer ping(t, [4]byte{10, 9, 0, 2})
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

// ping sends an ICMP echo request (RFC 792) to addr from a raw socket and
// wants the reply.
func ping(t *testing.T, addr [4]byte) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err != nil {
		t.Errorf("raw ICMP socket: %v", err)
		return
	}
	defer syscall.Close(fd)
	req := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'u', 'n', 'i', 'g', 'o'}
	var sum uint32
	for i := 0; i < len(req); i += 2 {
		v := uint32(req[i]) << 8
		if i+1 < len(req) {
			v |= uint32(req[i+1])
		}
		sum += v
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	req[2], req[3] = byte(^sum>>8), byte(^sum)
	tv := syscall.Timeval{Sec: 1}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	for try := 0; try < 5; try++ {
		if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrInet4{Addr: addr}); err != nil {
			t.Errorf("send the echo request: %v", err)
			return
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				break // timed out: ask again
			}
			ihl := int(buf[0]&0xf) * 4 // the reply comes with its IP header
			if n >= ihl+8 && buf[ihl] == 0 && buf[ihl+4] == 0x12 && buf[ihl+5] == 0x34 {
				t.Logf("ping: echo reply from %v", addr)
				return
			}
		}
	}
	t.Errorf("no echo reply from %v", addr)
}
