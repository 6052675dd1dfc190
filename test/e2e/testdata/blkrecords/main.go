// Command blkrecords writes numbered 512-byte records to the raw disk
// /dev/vda, one after the other, with fsync after each, and prints
// "synced N" once record N is durable; at the disk's end it prints the
// error the next write got. With the argument "check" it counts the valid
// records from the start instead.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// Record returns record i: its number, a pattern, and a CRC-32 of both.
func Record(i uint64) []byte {
	r := make([]byte, 512)
	binary.LittleEndian.PutUint64(r, i)
	for j := 8; j < 508; j++ {
		r[j] = byte(i*31 + uint64(j))
	}
	binary.LittleEndian.PutUint32(r[508:], crc32.ChecksumIEEE(r[:508]))
	return r
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		f, err := os.Open("/dev/vda")
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		n := uint64(0)
		buf := make([]byte, 512)
		for {
			if _, err := f.ReadAt(buf, int64(n*512)); err != nil || !bytes.Equal(buf, Record(n)) {
				break
			}
			n++
		}
		fmt.Println("valid records:", n)
		return
	}
	f, err := os.OpenFile("/dev/vda", os.O_RDWR, 0)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := uint64(0); ; i++ {
		if _, err := f.WriteAt(Record(i), int64(i*512)); err != nil {
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
