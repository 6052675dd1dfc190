package virtio

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// setupBlk brings a block device on a real 64 KiB file up as a driver
// would, with a queue of 8 entries.
func setupBlk(t *testing.T, mem ram, readOnly bool) (*Blk, *os.File, *error) {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Truncate(64 << 10)
	var failed error
	d, err := NewBlk(mem, f, "unigo-blk0", readOnly, func() {}, func(err error) { failed = err })
	if err != nil {
		t.Fatal(err)
	}
	d.Write(regStatus, 1|2)
	d.Write(regDriverFeatSel, 1)
	d.Write(regDriverFeatures, 1)
	d.Write(regStatus, 1|2|8)
	d.Write(regQueueNum, 8)
	d.Write(regQueueDescLo, descAt)
	d.Write(regQueueDriverLo, driverAt)
	d.Write(regQueueDeviceLo, deviceAt)
	d.Write(regQueueReady, 1)
	d.Write(regStatus, 1|2|4|8)
	return d, f, &failed
}

// blkRequest queues a request of type typ at sector sec with n data
// bytes at bufAt+0x100 (none for n 0) and returns its status byte.
func blkRequest(d *Blk, mem ram, typ uint32, sec uint64, n uint32) byte {
	hdr := mem[bufAt:]
	binary.LittleEndian.PutUint32(hdr, typ)
	binary.LittleEndian.PutUint64(hdr[8:], sec)
	status := uint64(bufAt + 0x80)
	mem[status] = 0xff
	putDesc(mem, 0, 0, bufAt, 16, descNext, 1)
	if n > 0 {
		flags := uint16(descNext)
		if typ == blkIn {
			flags |= descWrite
		}
		putDesc(mem, 0, 1, bufAt+0x100, n, flags, 2)
		putDesc(mem, 0, 2, status, 1, descWrite, 0)
	} else {
		putDesc(mem, 0, 1, status, 1, descWrite, 0)
	}
	offer(mem, 0, 0)
	d.Write(regQueueNotify, 0)
	return mem[status]
}

func TestBlkReadWriteFlush(t *testing.T) {
	mem := make(ram, 0x40000)
	d, f, failed := setupBlk(t, mem, false)
	if got := d.Read(regConfig, 4); got != 128 {
		t.Fatalf("capacity %d sectors, want 128", got)
	}
	data := bytes.Repeat([]byte("unigo!!!"), 128) // 1 KiB
	copy(mem[bufAt+0x100:], data)
	if s := blkRequest(d, mem, blkOut, 3, 1024); s != blkOK {
		t.Fatalf("write: status %d (%v)", s, *failed)
	}
	got := make([]byte, 1024)
	f.ReadAt(got, 3*512)
	if !bytes.Equal(got, data) {
		t.Fatalf("the file holds %q", got[:16])
	}
	clear(mem[bufAt+0x100 : bufAt+0x100+1024])
	if s := blkRequest(d, mem, blkIn, 3, 1024); s != blkOK || !bytes.Equal(mem[bufAt+0x100:bufAt+0x100+1024], data) {
		t.Fatalf("read: status %d, %q", s, mem[bufAt+0x100:bufAt+0x110])
	}
	if s := blkRequest(d, mem, blkFlush, 0, 0); s != blkOK {
		t.Fatalf("flush: status %d", s)
	}
	if s := blkRequest(d, mem, blkOut, 127, 1024); s != blkIOErr {
		t.Errorf("a write past the end: status %d, want IOERR", s)
	}
	if s := blkRequest(d, mem, blkIn, 1<<62, 512); s != blkIOErr {
		t.Errorf("a read far past the end: status %d, want IOERR", s)
	}
	if s := blkRequest(d, mem, 99, 0, 512); s != blkUnsupp {
		t.Errorf("an unknown request: status %d, want UNSUPP", s)
	}
	if *failed != nil {
		t.Fatal(*failed)
	}
	// A data buffer outside guest memory stops the device.
	putDesc(mem, 0, 1, uint64(len(mem))-10, 512, descNext, 2)
	offer(mem, 0, 0)
	d.Write(regQueueNotify, 0)
	if *failed == nil {
		t.Error("a buffer outside memory did not stop the device")
	}
}

func TestBlkReadOnly(t *testing.T) {
	mem := make(ram, 0x40000)
	d, _, _ := setupBlk(t, mem, true)
	if s := blkRequest(d, mem, blkOut, 0, 512); s != blkIOErr {
		t.Errorf("a write to a read-only disk: status %d", s)
	}
	if s := blkRequest(d, mem, blkIn, 0, 512); s != blkOK {
		t.Errorf("a read of a read-only disk: status %d", s)
	}
}
