// Command bolt runs the bbolt database (go.etcd.io/bbolt, unmodified: it
// maps its file shared and read-only, writes with pwrite and syncs with
// fdatasync) on the file named by its first argument. "write" adds keys
// from the number the database holds on, one transaction each, printing
// "committed N" once transaction N is durable, without end or up to the
// count its third argument gives; "check" counts the keys and checks
// every value. It is its own module, so that Unigo's module
// does not require bbolt.
package main

import (
	"encoding/binary"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

func value(i uint64) []byte { return []byte(fmt.Sprintf("value %d %x", i, i*2654435761)) }

func main() {
	if len(os.Args) < 3 {
		fmt.Println("usage: bolt write|check FILE [COUNT]")
		os.Exit(2)
	}
	limit := uint64(1 << 62)
	if len(os.Args) > 3 {
		fmt.Sscan(os.Args[3], &limit)
	}
	db, err := bolt.Open(os.Args[2], 0o600, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	defer db.Close()
	bucket := []byte("records")
	var n uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if i := binary.BigEndian.Uint64(k); i != n || string(v) != string(value(i)) {
				return fmt.Errorf("key %d holds %q, want key %d", i, v, n)
			}
			n++
			return nil
		})
	})
	if err != nil {
		fmt.Println("check:", err)
		os.Exit(1)
	}
	fmt.Println("keys:", n)
	if os.Args[1] != "write" {
		return
	}
	for i := n; i < limit; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], i)
			return tx.Bucket(bucket).Put(k[:], value(i))
		})
		if err != nil {
			fmt.Println("update:", err)
			os.Exit(1)
		}
		fmt.Println("committed", i)
	}
}
