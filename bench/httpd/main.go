// Httpd measures the httpd example serving HTTP: requests per second and
// latency with wrk (keep-alive, 2 threads, 64 connections, a small response),
// as a plain Linux process, in an OCI container (runc, or crun, if one is
// installed and this runs as root; the container shares the host's network,
// as the process does; crun 1.8 refuses this machine's hybrid cgroup
// layout, runc runs it), and as a Unigo image on the own monitor and under QEMU
// (TCG) through -p, and the time from exec to the first answered request.
// Runs are interleaved; the table holds medians.
//
//	go run ./bench/httpd [-n 5] [-d 5s]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
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

type result struct {
	rps          float64
	p50, p99     float64 // ms
	firstAnswer  float64 // ms from exec
	errorsSocket string
}

func main() {
	n := flag.Int("n", 5, "repetitions of each setting")
	dur := flag.Duration("d", 5*time.Second, "wrk duration of each run")
	flag.Parse()
	if _, err := exec.LookPath("wrk"); err != nil {
		fail("wrk is not installed (Debian: apt-get install wrk)")
	}
	dir, err := os.MkdirTemp("", "unigo-bench-httpd-")
	check(err)
	defer os.RemoveAll(dir)
	unigo := filepath.Join(dir, "unigo")
	sh("go", "build", "-o", unigo, "./cmd/unigo")
	img := filepath.Join(dir, "httpd.img")
	sh(unigo, "build", "-o", img, "./examples/httpd")
	native := filepath.Join(dir, "httpd")
	sh("go", "build", "-o", native, "./examples/httpd")

	type setting struct {
		name string
		cmd  func(port int) *exec.Cmd
	}
	settings := []setting{
		{"native process", func(port int) *exec.Cmd {
			c := exec.Command(native)
			c.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
			return c
		}},
		{"Unigo, own monitor (KVM)", func(port int) *exec.Cmd {
			return exec.Command(unigo, "run", "-p", fmt.Sprintf("%d:80", port), img)
		}},
		{"Unigo, QEMU microvm (TCG)", func(port int) *exec.Cmd {
			return exec.Command(unigo, "run", "--vmm", "qemu", "-p", fmt.Sprintf("%d:80", port), img)
		}},
	}
	if rt := containerRuntime(); rt != "" && os.Geteuid() == 0 {
		settings = append(settings[:2], settings[1:]...)
		settings[1] = setting{rt + " container", containerSetting(rt, dir)}
	} else {
		fmt.Fprintln(os.Stderr, "bench/httpd: no container setting (needs runc or crun, Debian: apt-get install runc, and root)")
	}
	res := make([][]result, len(settings))
	for i := 0; i < *n; i++ {
		for j, s := range settings {
			res[j] = append(res[j], measure(s.cmd, *dur))
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("date %s, host %s, %d runs each of wrk -t2 -c64 -d%v, medians\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, *n, *dur)
	fmt.Println("| setting | exec → first answer | requests/s | p50 | p99 | ratio of requests/s to the process |")
	fmt.Println("|---|---|---|---|---|---|")
	base := med(res[0], func(r result) float64 { return r.rps })
	for j, s := range settings {
		rps := med(res[j], func(r result) float64 { return r.rps })
		fmt.Printf("| %s | %.1f ms | %.0f | %.2f ms | %.2f ms | %.2f |\n", s.name,
			med(res[j], func(r result) float64 { return r.firstAnswer }), rps,
			med(res[j], func(r result) float64 { return r.p50 }), med(res[j], func(r result) float64 { return r.p99 }), rps/base)
	}
}

// containerRuntime returns the OCI runtime to use: runc, else crun, else "".
func containerRuntime() string {
	for _, rt := range []string{"runc", "crun"} {
		if _, err := exec.LookPath(rt); err == nil {
			return rt
		}
	}
	return ""
}

// containerSetting makes an OCI bundle in dir holding a static build of the
// httpd example, and returns how to run it with runtime rt on a port: in
// its own namespaces but the host's network.
func containerSetting(rt, dir string) func(port int) *exec.Cmd {
	bundle := filepath.Join(dir, "bundle")
	check(os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755))
	build := exec.Command("go", "build", "-o", filepath.Join(bundle, "rootfs", "httpd"), "./examples/httpd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	check(err, out)
	spec := exec.Command(rt, "spec")
	spec.Dir = bundle
	out, err = spec.CombinedOutput()
	check(err, out)
	n := 0
	return func(port int) *exec.Cmd {
		b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
		check(err)
		var cfg map[string]any
		check(json.Unmarshal(b, &cfg))
		proc := cfg["process"].(map[string]any)
		proc["args"] = []string{"/httpd"}
		proc["terminal"] = false
		proc["env"] = append(proc["env"].([]any), "PORT="+strconv.Itoa(port))
		linux := cfg["linux"].(map[string]any)
		var ns []any
		for _, x := range linux["namespaces"].([]any) {
			if x.(map[string]any)["type"] != "network" {
				ns = append(ns, x)
			}
		}
		linux["namespaces"] = ns
		b, err = json.Marshal(cfg)
		check(err)
		check(os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644))
		n++
		return exec.Command(rt, "run", "--bundle", bundle, fmt.Sprintf("unigo-bench-%d-%d", os.Getpid(), n))
	}
}

func measure(mk func(port int) *exec.Cmd, dur time.Duration) result {
	port := freePort()
	t0 := time.Now()
	cmd := mk(port)
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	check(cmd.Start())
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var first time.Duration
	for c := (&http.Client{Timeout: time.Second}); ; {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			first = time.Since(t0)
			break
		}
		if time.Since(t0) > time.Minute {
			fail("no answer from " + url)
		}
		time.Sleep(time.Millisecond)
	}
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+dur.String(), "--latency", url).CombinedOutput()
	check(err, out)
	r := result{firstAnswer: float64(first.Microseconds()) / 1000}
	if m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	r.p50 = latency(out, "50%")
	r.p99 = latency(out, "99%")
	if strings.Contains(string(out), "Socket errors") {
		fmt.Fprintf(os.Stderr, "wrk reported socket errors:\n%s", out)
	}
	return r
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

func med(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func sh(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	check(err, out)
}

func check(err error, out ...[]byte) {
	if err != nil {
		for _, o := range out {
			os.Stderr.Write(o)
		}
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench/httpd:", msg)
	os.Exit(1)
}
