package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startInstance starts unigo with args, its stdout on a pipe and its stderr
// kept for failure messages.
func startInstance(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(unigoBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(out), stderr
}

// waitHTTP GETs url until it answers (30 s at most) and returns the body;
// the monitor's stderr goes in the failure.
func waitHTTP(t *testing.T, url string, stderr *strings.Builder) []byte {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v; stderr:\n%s", url, err, stderr.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bothVMMs runs f as a subtest on each monitor that works here.
func bothVMMs(t *testing.T, f func(t *testing.T, vmm string)) {
	for _, vmm := range []string{"kvm", "qemu"} {
		t.Run(vmm, func(t *testing.T) {
			if vmm == "kvm" {
				needKVM(t)
			} else {
				needQEMU(t)
			}
			f(t, vmm)
		})
	}
}

// TestNetPortForward serves HTTP from the httpd example with -p HOST:80 and
// fetches from it on the host, then stops it with SIGTERM.
func TestNetPortForward(t *testing.T) { bothVMMs(t, checkPortForward) }

func checkPortForward(t *testing.T, vmm string) {
	port := freePort(t)
	cmd, out, stderr := startInstance(t, "run", "--vmm", vmm, "-p", fmt.Sprintf("%d:80", port), image(t, "examples/httpd"))
	defer cmd.Process.Kill()
	if line, err := out.ReadString('\n'); err != nil || line != "listening on :80\n" {
		t.Fatalf("first line %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	body := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/from-the-host", port), stderr)
	if string(body) != "hello from unigo: /from-the-host\n" {
		t.Errorf("body %q", body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("after SIGTERM: %v, want exit status 143", err)
	}
}

// TestNetOutbound fetches 8 MiB from a server the test runs on the host's
// loopback, through the gateway address of the user-mode network: over
// IPv4, and over IPv6 from the address the guest autoconfigured.
func TestNetOutbound(t *testing.T) { bothVMMs(t, checkOutbound) }

func checkOutbound(t *testing.T, vmm string) {
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(2)).Read(data)
	// The gateway is the host's loopback: 10.0.2.2 is 127.0.0.1, and
	// fec0::2 is ::1.
	for _, c := range []struct{ host, gateway string }{{"127.0.0.1", "10.0.2.2"}, {"::1", "fec0::2"}} {
		ln, err := net.Listen("tcp", net.JoinHostPort(c.host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) })}
		go srv.Serve(ln)
		defer srv.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		r := runFor(t, 2*time.Minute, "run", "--vmm", vmm, image(t, "httpget"),
			"--", fmt.Sprintf("http://%s/data", net.JoinHostPort(c.gateway, fmt.Sprint(port))))
		expect(t, r, 0, fmt.Sprintf("200 OK %d bytes sha256 %x\n", len(data), sha256.Sum256(data)))
	}
}

// TestNetConcurrent holds connections from the host open to the httpd
// example at once, then makes a request on each: 500 on the own monitor.
// QEMU's user-mode network accepts forwarded connections one at a time (a
// listen backlog of 1), about 300 ms apart here, so there the test keeps to
// 20; TestNetManyConns holds 500 inside the guest on both.
func TestNetConcurrent(t *testing.T) { bothVMMs(t, checkConcurrent) }

func checkConcurrent(t *testing.T, vmm string) {
	conns := 500
	if vmm == "qemu" {
		conns = 20
	}
	port := freePort(t)
	cmd, out, stderr := startInstance(t, "run", "--vmm", vmm, "-m", "512M", "-p", fmt.Sprintf("%d:80", port), image(t, "examples/httpd"))
	defer cmd.Process.Kill()
	out.ReadString('\n')
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitHTTP(t, "http://"+addr+"/", stderr) // "listening" comes just before the listen
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for len(cs) < conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections open, then: %v\n%s", len(cs), err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		cs = append(cs, c)
	}
	errs := make(chan error, conns)
	for i, c := range cs {
		go func() {
			c.SetDeadline(time.Now().Add(time.Minute))
			fmt.Fprintf(c, "GET /c%d HTTP/1.1\r\nHost: unigo\r\n\r\n", i)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %v", i, err)
				return
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
			if want := fmt.Sprintf("hello from unigo: /c%d\n", i); string(body) != want {
				errs <- fmt.Errorf("connection %d: body %q, want %q", i, body, want)
				return
			}
			errs <- nil
		}()
	}
	failed := 0
	for range cs {
		if err := <-errs; err != nil {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed; stderr:\n%s", failed, conns, stderr.String())
	}
}

// TestNetEcho sends data through a forwarded port to the echo example and
// compares what comes back, both directions at once: 100 MiB on the own
// monitor, 16 MiB under QEMU's emulation. On the own monitor the
// connection goes through the socket device (virtio-vsock), past both
// TCP/IP stacks, which the metrics show.
func TestNetEcho(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		size := 100 << 20
		if vmm == "qemu" {
			checkEcho(t, 16<<20, nil, "--vmm", vmm)
			return
		}
		mport := freePort(t)
		checkEcho(t, size, func() {
			m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
			// The probe connections first, then the echo's.
			if m["unigo_network_streams_total"] < 1 || m["unigo_network_stream_receive_bytes_total"] < float64(size) ||
				m["unigo_network_stream_transmit_bytes_total"] < float64(size) {
				t.Errorf("the socket device carried %v connections, %v bytes in and %v out; want the echo's %d each way",
					m["unigo_network_streams_total"], m["unigo_network_stream_receive_bytes_total"],
					m["unigo_network_stream_transmit_bytes_total"], size)
			}
		}, "--vmm", vmm, "--metrics", fmt.Sprintf("127.0.0.1:%d", mport))
	})
}

// checkEcho runs the echo image with the run flags given and sends it size
// bytes through a forwarded port; then it calls after, if not nil, while
// the instance still runs.
func checkEcho(t *testing.T, size int, after func(), flags ...string) {
	port := freePort(t)
	args := append(append([]string{"run"}, flags...), "-p", fmt.Sprintf("%d:7", port), image(t, "echo"))
	cmd, out, stderr := startInstance(t, args...)
	defer cmd.Process.Kill()
	out.ReadString('\n')
	var c net.Conn
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			// A probe byte: the echo once the guest listens (a forward
			// waits for that up to 2 s; the probe gives up sooner and retries).
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err = c.Write([]byte("x")); err == nil {
				var b [1]byte
				if _, err = io.ReadFull(c, b[:]); err == nil {
					break
				}
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no echo: %v", err)
		}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	data := make([]byte, size)
	rand.New(rand.NewSource(3)).Read(data)
	t0 := time.Now()
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil || n != int64(size) {
		t.Fatalf("echoed %d of %d bytes: %v; stderr:\n%s", n, size, err, stderr.String())
	}
	if !bytes.Equal(h.Sum(nil), sha256Sum(data)) {
		t.Fatal("the echo differs from what was sent")
	}
	t.Logf("%d MiB each way in %v", size>>20, time.Since(t0))
	if after != nil {
		after()
	}
}

// TestNetPCI drives QEMU's virtio-net-pci, the device of machines q35 and
// pc: the driver's PCI transport with MSI-X. DHCP configures eth0 (as
// TestNetInterfaces checks), and 8 MiB go through a forwarded port and back.
func TestNetPCI(t *testing.T) {
	needQEMU(t)
	for _, m := range []string{"q35", "pc"} {
		t.Run(m, func(t *testing.T) {
			r := run(t, "run", "--vmm", "qemu", "--qemu-machine", m, image(t, "ifaces"))
			expect(t, r, 0, ifacesOutput)
			checkEcho(t, 8<<20, nil, "--vmm", "qemu", "--qemu-machine", m)
		})
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestNetSmallMemory serves 64 keep-alive connections, 50 requests each,
// from httpd in 18 MiB of guest RAM: the connections' small rings, the
// kernel's memory taken as needed and the image's read-only part outside
// RAM are what let it (it needed 50 MiB before).
func TestNetSmallMemory(t *testing.T) {
	needKVM(t)
	port := freePort(t)
	cmd, _, stderr := startInstance(t, "run", "-m", "18M", "-p", fmt.Sprintf("%d:80", port), image(t, "examples/httpd"))
	defer cmd.Process.Kill()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitHTTP(t, url, stderr)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	const conns, each = 64, 50
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			for j := range each {
				resp, err := client.Get(fmt.Sprintf("%sc%d/%d", url, i, j))
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("hello from unigo: /c%d/%d\n", i, j); err != nil || string(body) != want {
					errs <- fmt.Errorf("request %d/%d: %q, %v; want %q", i, j, body, err, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, tail(stderr.String()))
		}
	}
}

// TestNetEarlyClient connects through -p before the program listens (it
// sleeps a second first): the connection waits for the listener and gets
// the answer, where it used to be reset. A forwarded port the program
// never listens on is closed once that wait is over, not left hanging.
func TestNetEarlyClient(t *testing.T) {
	needKVM(t)
	port, unused := freePort(t), freePort(t)
	cmd, out, stderr := startInstance(t, "run", "-p", fmt.Sprintf("%d:80", port), "-p", fmt.Sprintf("%d:81", unused),
		image(t, "slowlisten"), "--", "1s")
	defer cmd.Process.Kill()
	listening := make(chan time.Time, 1)
	go func() {
		if line, _ := out.ReadString('\n'); line == "listening\n" {
			listening <- time.Now()
		}
		close(listening)
	}()
	dial := func(p int) (net.Conn, time.Time) {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				return c, time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("dial the forwarded port %d: %v; stderr:\n%s", p, err, stderr.String())
			}
		}
	}
	c, at := dial(port)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if string(b) != "ready\n" || err != nil {
		t.Fatalf("the early client read %q, %v; want ready; stderr:\n%s", b, err, stderr.String())
	}
	l, ok := <-listening
	if !ok {
		t.Fatalf("the program did not say it listens; stderr:\n%s", stderr.String())
	}
	if !at.Before(l) {
		t.Fatalf("the client connected %v after the program listened: the test did not test the wait", at.Sub(l))
	}
	u, _ := dial(unused)
	defer u.Close()
	u.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := u.Read(make([]byte, 1)); n > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a port nothing listens on: read %d bytes, %v; want the close", n, err)
	}
}
