// Command volrecords appends numbered 512-byte records to /data/log on a
// block volume, and after each one replaces /data/cur (written to
// cur.tmp, then renamed over it), makes /data/d/N and removes an older
// one, then fsyncs the file and the folder and prints "synced N". At the
// start it counts the valid records the log already holds, cuts off what
// follows them, and goes on from there. It also writes each record to a
// file it removed while open, which a kill leaves for the next mount to
// free. With the argument "check" it only counts the log's valid records.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"unigo.dev/unigo/test/e2e/testdata/records"
)

func check(what string, err error) {
	if err != nil {
		fmt.Printf("%s: %v\n", what, err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		f, err := os.Open("/data/log")
		check("open", err)
		fmt.Println("valid records:", records.Valid(f))
		return
	}
	check("mkdir", os.MkdirAll("/data/d", 0o755))
	f, err := os.OpenFile("/data/log", os.O_RDWR|os.O_CREATE, 0o644)
	check("open", err)
	n := records.Valid(f)
	check("truncate", f.Truncate(int64(n*512)))
	fmt.Println("resumed at", n)
	dir, err := os.Open("/data")
	check("open /data", err)
	orphan, err := os.Create("/data/orphan")
	check("create orphan", err)
	check("remove orphan", os.Remove("/data/orphan"))
	for i := n; ; i++ {
		_, err := f.WriteAt(records.Record(i), int64(i*512))
		check("write", err)
		_, err = orphan.Write(records.Record(i))
		check("write orphan", err)
		check("write cur.tmp", os.WriteFile("/data/cur.tmp", []byte(strconv.FormatUint(i, 10)), 0o644))
		check("rename", os.Rename("/data/cur.tmp", "/data/cur"))
		check("create", os.WriteFile(fmt.Sprintf("/data/d/%d", i), bytes.Repeat([]byte{byte(i)}, int(i%9000)), 0o644))
		if i >= 3 {
			os.Remove(fmt.Sprintf("/data/d/%d", i-3))
		}
		check("fsync", f.Sync())
		check("fsync /data", dir.Sync())
		fmt.Println("synced", i)
	}
}
