// Command bench is Unigo's benchmark harness. In one run it builds the
// example programs and measures them side by side in every setting this
// machine has: a native Linux process, an OCI container (runc, or crun), gVisor
// (runsc), a Linux VM (Debian's cloud kernel under QEMU TCG), Unigo under QEMU
// and Unigo on its own monitor. It measures
//
//   - boot: hello, exec to its first line and to its exit; httpd, exec to
//     its first answered request;
//   - size: the image beside the plain static binary and the Linux VM's
//     kernel and initramfs;
//   - memory: the smallest -m with which hello runs and httpd serves under
//     load, and the host memory an httpd instance costs (PSS of its process
//     tree, a VM's touched guest memory included);
//   - throughput: wrk -t2 -c64 against httpd, requests/s, p50 and p99;
//   - density: how many idle httpd instances run at once, each answering;
//     the host CPU 100 idle instances use; the launch rate.
//
// It prints Markdown tables for BENCHMARKS.md and writes PNG plots and the
// raw figures (JSON) to -out. Settings are interleaved, so that the
// machine's noise hits all alike; figures are medians.
//
//	go run ./bench [-n 10] [-only boot,size,memory,throughput,density] [-out bench/results]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

var (
	reps     = flag.Int("n", 10, "repetitions of each boot and throughput measurement")
	only     = flag.String("only", "boot,size,memory,throughput,density", "sections to run, comma-separated")
	wrkDur   = flag.Duration("d", 5*time.Second, "wrk duration of each throughput run")
	outDir   = flag.String("out", "bench/results", "where the plots (PNG) and figures (JSON) go")
	dens     = flag.Int("density", 1000, "density: the most idle httpd instances to start")
	idleN    = flag.Int("idle", 100, "density: instances whose host CPU is measured while idle")
	idleFor  = flag.Duration("idle-for", 60*time.Second, "density: how long the idle instances' CPU is measured")
	reserve  = flag.Int("reserve", 2048, "density: MiB of host memory left available; no instance starts below it")
	replot   = flag.String("replot", "", "only draw the plots and print the tables again, from a results.json of an earlier run")
	keep     = flag.Bool("keep", false, "keep the built programs, images and initramfs (their folder is printed)")
	settings = flag.String("settings", "", "only the settings whose short names are listed (native,runc,gVisor,Linux VM,Unigo QEMU,Unigo KVM)")
)

func main() {
	flag.Parse()
	if *replot != "" {
		b, err := os.ReadFile(*replot)
		check(err)
		var r results
		check(json.Unmarshal(b, &r))
		r.markdown(os.Stdout)
		check(r.plots(filepath.Dir(*replot)))
		return
	}
	if _, err := os.Stat("cmd/unigo"); err != nil {
		fail("run from the root of the Unigo repository: go run ./bench")
	}
	if _, err := exec.LookPath("wrk"); err != nil && (on("throughput") || on("memory")) {
		fail("wrk is not installed (Debian: apt-get install wrk)")
	}
	dir, err := os.MkdirTemp("", "unigo-bench-")
	check(err)
	if *keep {
		progress("the programs are in %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	cache, err := os.UserCacheDir()
	check(err)
	p := build(dir, filepath.Join(cache, "unigo-bench"))
	ss := p.settings()
	if *settings != "" {
		keep := strings.Split(*settings, ",")
		ss = slices.DeleteFunc(ss, func(s setting) bool { return !slices.Contains(keep, s.short) })
	}
	host, _ := os.Hostname()
	r := &results{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Host: host, N: *reps, Wrk: wrkDur.String()}
	for _, s := range ss {
		r.Settings = append(r.Settings, &settingResult{Name: s.name, Short: s.short, Unigo: s.unigo})
	}
	if on("boot") {
		bootHello(ss, r)
	}
	if on("boot") || on("throughput") {
		serve(ss, r)
	}
	if on("size") {
		r.Sizes = sizes(p)
	}
	if on("memory") {
		r.MinMem = minMemory(p, ss)
	}
	if on("density") {
		r.Density = density(p)
	}
	check(os.MkdirAll(*outDir, 0o755))
	b, err := json.MarshalIndent(r, "", "  ")
	check(err)
	check(os.WriteFile(filepath.Join(*outDir, "results.json"), b, 0o644))
	r.markdown(os.Stdout)
	check(r.plots(*outDir))
}

func on(section string) bool { return slices.Contains(strings.Split(*only, ","), section) }

// bootHello runs hello n times in each setting, settings interleaved.
func bootHello(ss []setting, r *results) {
	for i := 0; i < *reps; i++ {
		for j, s := range ss {
			first, exit, err := helloRun(s.hello(0), 2*time.Minute)
			if err != nil {
				warn("hello, %s: %v", s.name, err)
				continue
			}
			r.Settings[j].HelloFirst = append(r.Settings[j].HelloFirst, ms(first))
			r.Settings[j].HelloExit = append(r.Settings[j].HelloExit, ms(exit))
		}
		progress("boot: hello round %d of %d", i+1, *reps)
	}
}

// serve starts httpd n times in each setting, settings interleaved: exec to
// the first answer, its host memory when idle after 100 requests, and
// wrk's figures and the memory after the load.
func serve(ss []setting, r *results) {
	for i := 0; i < *reps; i++ {
		for j, s := range ss {
			port := freePort()
			in, err := startHttpd(s.httpd(port, 0), port, 2*time.Minute)
			if err != nil {
				warn("httpd, %s: %v", s.name, err)
				continue
			}
			sr := r.Settings[j]
			sr.HttpdFirst = append(sr.HttpdFirst, ms(in.first))
			if err := in.get(100); err != nil {
				warn("httpd, %s: %v", s.name, err)
			}
			sr.IdleMiB = append(sr.IdleMiB, float64(pssKiB(in.cmd.Process.Pid))/1024)
			if on("throughput") {
				w, err := wrk(in.url, *wrkDur)
				if err != nil || w.errors {
					warn("httpd, %s: wrk: %v (errors in its report: %v)", s.name, err, w.errors)
				}
				sr.RPS = append(sr.RPS, w.rps)
				sr.P50 = append(sr.P50, w.p50)
				sr.P99 = append(sr.P99, w.p99)
				sr.LoadMiB = append(sr.LoadMiB, float64(pssKiB(in.cmd.Process.Pid))/1024)
			}
			in.stop()
		}
		progress("httpd: round %d of %d", i+1, *reps)
	}
}

// sizes lists the bytes each setting boots.
func sizes(p *programs) []sizeRow {
	var rows []sizeRow
	for _, prog := range []struct{ name, bin, img, initrd string }{
		{"hello", p.helloBin, p.helloImg, p.helloInitrd},
		{"httpd", p.httpdBin, p.httpdImg, p.httpdInitrd},
	} {
		row := sizeRow{Program: prog.name, Binary: size(prog.bin), Image: size(prog.img)}
		// The same image without its symbol table and DWARF, as a user
		// shipping it may build it (unigo build -ldflags=-s -w).
		stripped := prog.img + ".stripped"
		sh(p.unigo, "build", "-ldflags=-s -w", "-o", stripped, "./examples/"+prog.name)
		row.Stripped = size(stripped)
		if p.vm != nil {
			row.Kernel, row.Initramfs = size(p.vm.kernel), size(prog.initrd)
		}
		rows = append(rows, row)
	}
	return rows
}

func size(path string) int64 {
	st, err := os.Stat(path)
	check(err)
	return st.Size()
}

func check(err error, out ...[]byte) {
	if err != nil {
		for _, o := range out {
			os.Stderr.Write(o)
		}
		fail(err.Error())
	}
}

func warn(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}
