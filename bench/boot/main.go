// Boot measures, in one run, the wall time from exec to exit of hello as a
// Unigo image on the own monitor and as a plain Linux process, the image
// sizes, one system call round trip and one timer interrupt, and prints a
// Markdown table for BENCHMARKS.md.
//
//	go run ./bench/boot [-n 20]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 20, "repetitions of each measurement")
	flag.Parse()
	dir, err := os.MkdirTemp("", "unigo-bench-")
	check(err)
	defer os.RemoveAll(dir)
	unigo := filepath.Join(dir, "unigo")
	sh("go", "build", "-o", unigo, "./cmd/unigo")
	img := filepath.Join(dir, "hello.img")
	sh(unigo, "build", "-o", img, "./examples/hello")
	native := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", native, "./examples/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	check(err, out)

	// Interleave the two so that the machine's noise hits both alike.
	var tImg, tNat []time.Duration
	for i := 0; i < *n; i++ {
		tImg = append(tImg, timeRun(unigo, "run", img))
		tNat = append(tNat, timeRun(native))
	}
	// The same image under QEMU (TCG), through the PVH entry.
	var tMicro, tQ35 []time.Duration
	for i := 0; i < *n; i++ {
		tMicro = append(tMicro, timeRun(unigo, "run", "--vmm", "qemu", img))
		tQ35 = append(tQ35, timeRun(unigo, "run", "--vmm", "qemu", "--qemu-machine", "q35", img))
	}
	mi, mn := median(tImg), median(tNat)
	si, sn := size(img), size(native)

	sysImg := filepath.Join(dir, "syscall.img")
	sh(unigo, "build", "-o", sysImg, "./bench/guest/syscall")
	gapImg := filepath.Join(dir, "gaps.img")
	sh(unigo, "build", "-o", gapImg, "./bench/guest/gaps")
	touchImg := filepath.Join(dir, "touch.img")
	sh(unigo, "build", "-o", touchImg, "./bench/guest/touch")
	touchNat := filepath.Join(dir, "touch")
	sh("go", "build", "-o", touchNat, "./bench/guest/touch")
	var sc, gp, ti, tn []string
	for i := 0; i < 5; i++ {
		sc = append(sc, field(output(unigo, "run", sysImg), "syscall_ns"))
		gp = append(gp, field(output(unigo, "run", gapImg), "median_us"))
		ti = append(ti, field(output(unigo, "run", touchImg), "first_us"))
		tn = append(tn, field(output(touchNat), "first_us"))
	}
	sort.Strings(sc)
	sort.Strings(gp)
	sort.Strings(ti)
	sort.Strings(tn)

	host, _ := os.Hostname()
	fmt.Printf("date %s, host %s, %d runs each, medians\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, *n)
	fmt.Printf("| measurement | Unigo | Linux process | ratio to the process |\n|---|---|---|---|\n")
	fmt.Printf("| hello exec→exit, own monitor (KVM) | %.1f ms | %.2f ms | %.1f× |\n", ms(mi), ms(mn), float64(mi)/float64(mn))
	fmt.Printf("| hello exec→exit, QEMU microvm (TCG, PVH) | %.1f ms | | %.1f× |\n", ms(median(tMicro)), float64(median(tMicro))/float64(mn))
	fmt.Printf("| hello exec→exit, QEMU q35 (TCG, SeaBIOS, PVH) | %.1f ms | | %.1f× |\n", ms(median(tQ35)), float64(median(tQ35))/float64(mn))
	fmt.Printf("| hello size | %d bytes | %d bytes | +%d KiB |\n", si, sn, (si-sn)/1024)
	fmt.Printf("| getppid round trip (in guest) | %s ns | | |\n", sc[len(sc)/2])
	fmt.Printf("| timer interrupt, seen as a gap in a clock loop | %s µs | | |\n", gp[len(gp)/2])
	fmt.Printf("| first touch of a demand-paged page (32 MiB mmap) | %s µs | %s µs | |\n", ti[len(ti)/2], tn[len(tn)/2])
}

func timeRun(name string, args ...string) time.Duration {
	t0 := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(t0)
	check(err, out)
	return d
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	check(err, out)
	return string(out)
}

func field(out, key string) string {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == key {
			return f[i+1]
		}
	}
	return "?"
}

func sh(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	check(err, out)
}

func size(p string) int64 {
	st, err := os.Stat(p)
	check(err)
	return st.Size()
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func check(err error, out ...[]byte) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		for _, o := range out {
			os.Stderr.Write(o)
		}
		os.Exit(1)
	}
}
