// Command blkrecords writes numbered 512-byte records to the raw disk
// /dev/vda, one after the other, with fsync after each, and prints
// "synced N" once record N is durable; at the disk's end it prints the
// error the next write got. With the argument "check" it counts the valid
// records from the start instead.
package main

import (
	"fmt"
	"os"

	"unigo.dev/unigo/test/e2e/testdata/records"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		f, err := os.Open("/dev/vda")
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		n := records.Valid(f)
		fmt.Println("valid records:", n)
		return
	}
	f, err := os.OpenFile("/dev/vda", os.O_RDWR, 0)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := uint64(0); ; i++ {
		if _, err := f.WriteAt(records.Record(i), int64(i*512)); err != nil {
			fmt.Println("full:", err.(*os.PathError).Err)
			return
		}
		if err := f.Sync(); err != nil {
			fmt.Println("fsync:", err)
			os.Exit(1)
		}
		fmt.Println("synced", i)
	}
}
