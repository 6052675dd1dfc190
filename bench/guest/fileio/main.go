// Command fileio measures file I/O in a directory (its argument): a 16 MiB
// file written and read sequentially in 4 KiB blocks, 2,000 random 4 KiB
// reads and writes in it, and the latency of a 4 KiB write followed by
// fsync, 200 times. It prints one JSON object of MiB/s, operations/s and
// microseconds; bench/files runs it on the host, in the guest and under QEMU.
package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"
)

const (
	size  = 16 << 20
	block = 4096
	ops   = 2000
	syncs = 200
)

func main() {
	name := filepath.Join(os.Args[1], "fileio.dat")
	buf := make([]byte, block)
	for i := range buf {
		buf[i] = byte(i)
	}
	res := map[string]float64{}
	f, err := os.Create(name)
	check(err)
	t0 := time.Now()
	for off := 0; off < size; off += block {
		_, err := f.Write(buf)
		check(err)
	}
	check(f.Sync())
	res["seq_write_MiBps"] = size / (1 << 20) / time.Since(t0).Seconds()
	f.Close()

	f, err = os.Open(name)
	check(err)
	t0 = time.Now()
	for {
		n, _ := f.Read(buf)
		if n == 0 {
			break
		}
	}
	res["seq_read_MiBps"] = size / (1 << 20) / time.Since(t0).Seconds()
	f.Close()

	f, err = os.OpenFile(name, os.O_RDWR, 0)
	check(err)
	r := rand.New(rand.NewPCG(1, 2))
	t0 = time.Now()
	for i := 0; i < ops; i++ {
		_, err := f.ReadAt(buf, int64(r.IntN(size/block))*block)
		check(err)
	}
	res["rand_read_ops"] = ops / time.Since(t0).Seconds()
	t0 = time.Now()
	for i := 0; i < ops; i++ {
		_, err := f.WriteAt(buf, int64(r.IntN(size/block))*block)
		check(err)
	}
	res["rand_write_ops"] = ops / time.Since(t0).Seconds()
	var lat []float64
	for i := 0; i < syncs; i++ {
		t := time.Now()
		_, err := f.WriteAt(buf, int64(i)*block)
		check(err)
		check(f.Sync())
		lat = append(lat, float64(time.Since(t).Microseconds()))
	}
	sort.Float64s(lat)
	res["fsync_p50_us"] = lat[len(lat)/2]
	res["fsync_p99_us"] = lat[len(lat)*99/100]
	f.Close()
	os.Remove(name)
	json.NewEncoder(os.Stdout).Encode(res)
}

func check(err error) {
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
