package virtio

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
)

// The block device (§5.2).
const (
	blkDeviceID  = 2
	blkFeatFlush = 1 << 9 // VIRTIO_BLK_F_FLUSH
	blkOffered   = blkFeatFlush | featVersion1

	blkIn    = 0 // VIRTIO_BLK_T_IN: read
	blkOut   = 1 // VIRTIO_BLK_T_OUT: write
	blkFlush = 4 // VIRTIO_BLK_T_FLUSH
	blkGetID = 8 // VIRTIO_BLK_T_GET_ID

	blkOK     = 0 // VIRTIO_BLK_S_OK
	blkIOErr  = 1 // VIRTIO_BLK_S_IOERR
	blkUnsupp = 2 // VIRTIO_BLK_S_UNSUPP

	sector   = 512
	blkMaxIO = 1 << 20 // bytes of one request
)

// Blk is a virtio-blk device backed by a host file. A flush is fdatasync
// on the file: once the driver sees it done, what was written before is on
// the host's disk.
type Blk struct {
	transport
	file     *os.File
	id       string // what VIRTIO_BLK_T_GET_ID answers: the disk's serial
	sectors  uint64
	readOnly bool
	raise    func()
	fail     func(error)
	Counters BlkCounters
}

// BlkCounters count a block device's requests and bytes. Safe to read while
// it runs.
type BlkCounters struct {
	Reads, ReadBytes, Writes, WriteBytes, Flushes atomic.Uint64
}

// NewBlk returns a device for file, whose size (a multiple of 512 bytes) is
// the disk's, with the serial id (at most 20 bytes).
func NewBlk(mem Memory, file *os.File, id string, readOnly bool, raise func(), fail func(error)) (*Blk, error) {
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size()%sector != 0 || st.Size() == 0 {
		return nil, fmt.Errorf("%s: %d bytes, not a whole number of 512-byte sectors", file.Name(), st.Size())
	}
	d := &Blk{file: file, id: id, sectors: uint64(st.Size()) / sector, readOnly: readOnly, raise: raise, fail: fail}
	offered := uint64(blkOffered)
	if readOnly {
		offered |= 1 << 5 // VIRTIO_BLK_F_RO
	}
	d.transport = transport{mem: mem, name: "virtio-blk", id: blkDeviceID, offered: offered,
		config: binary.LittleEndian.AppendUint64(nil, d.sectors), q: make([]queue, 1)}
	return d, nil
}

// Write takes a guest write of v at register offset off.
func (d *Blk) Write(off uint64, v uint32) {
	d.writeRequests(off, v, blkMaxIO+16, d.request, d.raise, d.fail)
}

// request carries out one request: a 16-byte header (type, reserved,
// sector), the data, and a status byte (§5.2.6). It returns the bytes
// written to the driver's buffers, or an error for a malformed chain.
func (d *Blk) request(out, in [][]byte) (uint32, error) {
	var hdr []byte
	for _, b := range out {
		hdr = append(hdr, b...)
		if len(hdr) >= 16 {
			break
		}
	}
	if len(hdr) < 16 || len(in) == 0 || len(in[len(in)-1]) == 0 {
		return 0, fmt.Errorf("a request without its header or status byte")
	}
	typ, sec := binary.LittleEndian.Uint32(hdr), binary.LittleEndian.Uint64(hdr[8:])
	last := in[len(in)-1]
	status := &last[len(last)-1]
	// The data: after the header among the readable buffers (a write), or
	// the writable ones but the status byte (a read).
	var data [][]byte
	switch typ {
	case blkOut:
		rest := 16
		for _, b := range out {
			if rest >= len(b) {
				rest -= len(b)
				continue
			}
			data = append(data, b[rest:])
			rest = 0
		}
	case blkIn, blkGetID:
		data = append(append(data, in[:len(in)-1]...), last[:len(last)-1])
	}
	total := uint64(0)
	for _, b := range data {
		total += uint64(len(b))
	}
	*status = blkOK
	written := uint32(1)
	switch typ {
	case blkIn, blkOut:
		if total%sector != 0 || sec > d.sectors || total/sector > d.sectors-sec {
			*status = blkIOErr
			break
		}
		if typ == blkOut && d.readOnly {
			*status = blkIOErr
			break
		}
		off := int64(sec * sector)
		for _, b := range data {
			var err error
			if typ == blkIn {
				_, err = d.file.ReadAt(b, off)
				written += uint32(len(b))
			} else {
				_, err = d.file.WriteAt(b, off)
			}
			if err != nil {
				*status = blkIOErr
				break
			}
			off += int64(len(b))
		}
		if *status == blkOK && typ == blkIn {
			d.Counters.Reads.Add(1)
			d.Counters.ReadBytes.Add(total)
		} else if *status == blkOK {
			d.Counters.Writes.Add(1)
			d.Counters.WriteBytes.Add(total)
		}
	case blkFlush:
		if err := syscall.Fdatasync(int(d.file.Fd())); err != nil {
			*status = blkIOErr
		}
		d.Counters.Flushes.Add(1)
	case blkGetID:
		id := []byte(d.id)
		for _, b := range data {
			n := copy(b, id)
			id = id[n:]
			written += uint32(n)
		}
	default:
		*status = blkUnsupp
	}
	return written, nil
}
