// Files measures file I/O (bench/guest/fileio) on this machine's file
// system as a Linux process, and in a Unigo guest: in a host folder share
// (-v) on the own monitor and under QEMU (TCG, QEMU's own 9P server), on
// a block volume (-v FILE.img) on both, and in the guest's /tmp (tmpfs). Runs are interleaved; the table holds
// medians and the ratio to the host's figure of the same run.
//
//	go run ./bench/files [-n 5]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

var metrics = []struct{ key, label string }{
	{"seq_write_MiBps", "sequential write, MiB/s"},
	{"seq_read_MiBps", "sequential read, MiB/s"},
	{"rand_read_ops", "random 4 KiB reads/s"},
	{"rand_write_ops", "random 4 KiB writes/s"},
	{"fsync_p50_us", "write+fsync p50, µs"},
	{"fsync_p99_us", "write+fsync p99, µs"},
}

func main() {
	n := flag.Int("n", 5, "repetitions of each setting")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "unigo-files-")
	check(err)
	defer os.RemoveAll(tmp)
	unigo := filepath.Join(tmp, "unigo")
	run(exec.Command("go", "build", "-o", unigo, "./cmd/unigo"))
	native := filepath.Join(tmp, "fileio")
	run(exec.Command("go", "build", "-o", native, "./bench/guest/fileio"))
	img := filepath.Join(tmp, "fileio.img")
	run(exec.Command(unigo, "build", "-o", img, "./bench/guest/fileio"))
	share := filepath.Join(tmp, "share")
	check(os.Mkdir(share, 0o755))
	vol := filepath.Join(tmp, "vol.img")
	run(exec.Command(unigo, "volume", "create", "--size", "256M", vol))

	settings := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"Linux process, host file system", func() *exec.Cmd { return exec.Command(native, share) }},
		{"Unigo, own monitor, -v share (9P)", func() *exec.Cmd {
			return exec.Command(unigo, "run", "-v", share+":/data", img, "--", "/data")
		}},
		{"Unigo, QEMU TCG, -v share (QEMU's 9P)", func() *exec.Cmd {
			return exec.Command(unigo, "run", "--vmm", "qemu", "-v", share+":/data", img, "--", "/data")
		}},
		{"Unigo, own monitor, -v volume (virtio-blk)", func() *exec.Cmd {
			return exec.Command(unigo, "run", "-v", vol+":/data", img, "--", "/data")
		}},
		{"Unigo, QEMU TCG, -v volume (QEMU's virtio-blk)", func() *exec.Cmd {
			return exec.Command(unigo, "run", "--vmm", "qemu", "-v", vol+":/data", img, "--", "/data")
		}},
		{"Unigo, own monitor, /tmp (tmpfs)", func() *exec.Cmd { return exec.Command(unigo, "run", img, "--", "/tmp") }},
	}
	results := make([]map[string][]float64, len(settings))
	for i := range results {
		results[i] = map[string][]float64{}
	}
	for rep := 0; rep < *n; rep++ {
		for i, s := range settings {
			out, err := s.cmd().Output()
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", s.name, err)
				os.Exit(1)
			}
			var m map[string]float64
			check(json.Unmarshal(out, &m))
			for k, v := range m {
				results[i][k] = append(results[i][k], v)
			}
		}
	}
	fmt.Printf("date %s, `go run ./bench/files -n %d`, medians of %d interleaved runs; (×) is the ratio to the Linux process\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), *n, *n)
	fmt.Print("| setting |")
	for _, m := range metrics {
		fmt.Printf(" %s |", m.label)
	}
	fmt.Print("\n|---|")
	for range metrics {
		fmt.Print("---|")
	}
	fmt.Println()
	for i, s := range settings {
		fmt.Printf("| %s |", s.name)
		for _, m := range metrics {
			v, base := median(results[i][m.key]), median(results[0][m.key])
			if i == 0 {
				fmt.Printf(" %.0f |", v)
			} else {
				fmt.Printf(" %.0f (%.2f×) |", v, v/base)
			}
		}
		fmt.Println()
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func run(c *exec.Cmd) {
	if out, err := c.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "%v: %v\n%s", c.Args, err, out)
		os.Exit(1)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
