// Package records makes the numbered records the crash tests write
// (blkrecords, volrecords) and check.
package records

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// Size is a record's length in bytes.
const Size = 512

// Record returns record i: its number, a pattern, and a CRC-32 of both.
func Record(i uint64) []byte {
	r := make([]byte, Size)
	binary.LittleEndian.PutUint64(r, i)
	for j := 8; j < Size-4; j++ {
		r[j] = byte(i*31 + uint64(j))
	}
	binary.LittleEndian.PutUint32(r[Size-4:], crc32.ChecksumIEEE(r[:Size-4]))
	return r
}

// Valid counts the records r holds from its start, up to the first that
// is missing or wrong.
func Valid(r io.ReaderAt) uint64 {
	buf := make([]byte, Size)
	n := uint64(0)
	for {
		if _, err := r.ReadAt(buf, int64(n*Size)); err != nil || !bytes.Equal(buf, Record(n)) {
			return n
		}
		n++
	}
}
