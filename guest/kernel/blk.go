//go:build !unigo_nodrivers

package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// The virtio-blk driver (virtio 1.2 §5.2) over virtio-mmio, on the polled
// queue of virtq.go, and the disks as raw block devices /dev/vda to
// /dev/vdd (unigo run --disk). A disk's name comes from its serial
// (abi.DiskSerial, through VIRTIO_BLK_T_GET_ID), so it does not depend on the
// order the platform lists devices in. Reads and writes go through one
// bounce buffer in sector-aligned windows; a write that covers part of a
// sector reads it first. fsync is a flush (VIRTIO_BLK_T_FLUSH): once it
// returns, the host has what was written. Writes past the end are ENOSPC,
// as on Linux.

const (
	blkTIn    = 0
	blkTOut   = 1
	blkTFlush = 4
	blkTGetID = 8

	blkFeatFlush = 1 << 9
	blkFeatRO    = 1 << 5
	blkWindow    = 64 << 10 // bytes of one request
	sectorSize   = 512
)

type blkDev struct {
	q       virtq
	sectors uint64
	ro      bool
	flush   bool // VIRTIO_BLK_F_FLUSH negotiated
}

var (
	blkDevs [abi.MaxDisks]blkDev
	// The bounce buffer: a request header (16 bytes), the status byte at
	// 16, the data window from 512.
	blkBuf uintptr
)

// blkInit finds the disks among the virtio-mmio devices.
//
//go:nosplit
func blkInit() {
	for i := 0; i < nMMIO+nPCI; i++ {
		var q virtq
		if i < nMMIO {
			d := &mmioDevs[i]
			if d.deviceID != 2 || d.version != 2 {
				continue
			}
			q.base = uintptr(d.base)
		} else if pciDevs[uint(i-nMMIO)%maxPCIDevs].virtioType() != 2 {
			continue
		}
		if blkBuf == 0 {
			// A header page, then the window: frames stay page-aligned.
			if blkBuf = allocContig(blkWindow + pageSize); blkBuf == 0 {
				return
			}
		}
		ok := false
		if q.base != 0 {
			ok = vqOpenMMIO(&q, q.base, blkFeatFlush|blkFeatRO)
		} else {
			ok = vqOpenPCI(&q, &pciDevs[uint(i-nMMIO)%maxPCIDevs], blkFeatFlush|blkFeatRO)
		}
		if !ok {
			continue
		}
		feat := q.features(0)
		// The serial names the disk: "unigo-blkN" is /dev/vd('a'+N).
		k := blkSerial(&q)
		if k < 0 || blkDevs[k%abi.MaxDisks].q.ring != 0 {
			continue
		}
		b := &blkDevs[k%abi.MaxDisks]
		b.q = q
		b.sectors = uint64(q.config32(0)) | uint64(q.config32(4))<<32
		b.ro, b.flush = feat&blkFeatRO != 0, feat&blkFeatFlush != 0
	}
}

// blkSerial asks the device its serial; the disk index it names, or -1.
//
//go:nosplit
func blkSerial(q *virtq) int {
	store32(blkBuf, blkTGetID)
	store32(blkBuf+4, 0)
	store64(blkBuf+8, 0)
	memclr(blkBuf+512, 32)
	vqDesc(q, 0, blkBuf, 16, vqDescNext, 1)
	vqDesc(q, 1, blkBuf+512, 20, vqDescWrite|vqDescNext, 2)
	vqDesc(q, 2, blkBuf+16, 1, vqDescWrite, 0)
	store8(blkBuf+16, 0xff)
	if _, ok := vqRun(q); !ok || load8(blkBuf+16) != 0 {
		return -1
	}
	const pre = "unigo-blk"
	if !memeq(blkBuf+512, uintptr(unsafe.Pointer(unsafe.StringData(pre))), uintptr(len(pre))) {
		return -1
	}
	n := int(load8(blkBuf+512+uintptr(len(pre)))) - '0'
	if n < 0 || n >= abi.MaxDisks || load8(blkBuf+512+uintptr(len(pre))+1) != 0 {
		return -1
	}
	return n
}

// blkRequest carries out one request of type typ for sectors [sec,
// sec+n/512) with the window's first n bytes: 0 or EIO.
//
//go:nosplit
func blkRequest(b *blkDev, typ uint32, sec uint64, n uintptr) linux.Errno {
	store32(blkBuf, typ)
	store32(blkBuf+4, 0)
	store64(blkBuf+8, sec)
	store8(blkBuf+16, 0xff)
	vqDesc(&b.q, 0, blkBuf, 16, vqDescNext, 1)
	if n == 0 {
		vqDesc(&b.q, 1, blkBuf+16, 1, vqDescWrite, 0)
	} else {
		flags := uint16(vqDescNext)
		if typ == blkTIn {
			flags |= vqDescWrite
		}
		vqDesc(&b.q, 1, blkBuf+512, uint32(n), flags, 2)
		vqDesc(&b.q, 2, blkBuf+16, 1, vqDescWrite, 0)
	}
	if _, ok := vqRun(&b.q); !ok || load8(blkBuf+16) != 0 {
		return linux.EIO
	}
	return 0
}

// blkIO reads or writes n bytes of disk k at byte off from or to the
// checked address buf: the bytes moved, or an errno.
//
//go:nosplit
func blkIO(k int, write bool, buf, n uintptr, off uint64) uintptr {
	b := &blkDevs[uint(k)%abi.MaxDisks]
	size := b.sectors * sectorSize
	switch {
	case write && b.ro:
		return errno(linux.EROFS)
	case off >= size && write && n > 0:
		return errno(linux.ENOSPC)
	case off >= size:
		return 0
	}
	n = min(n, uintptr(size-off))
	done := uintptr(0)
	for done < n {
		o := off + uint64(done)
		sec := o / sectorSize
		head := uintptr(o % sectorSize)
		k := min(n-done, blkWindow-head)
		span := (head + k + sectorSize - 1) &^ (sectorSize - 1)
		if !write || head != 0 || k%sectorSize != 0 {
			if e := blkRequest(b, blkTIn, sec, span); e != 0 {
				return blkPartial(done, e)
			}
		}
		if !write {
			memmove(buf+done, blkBuf+512+head, k)
		} else {
			memmove(blkBuf+512+head, buf+done, k)
			if e := blkRequest(b, blkTOut, sec, span); e != 0 {
				return blkPartial(done, e)
			}
		}
		done += k
	}
	return done
}

//go:nosplit
func blkPartial(done uintptr, e linux.Errno) uintptr {
	if done > 0 {
		return done
	}
	return errno(e)
}

// blkFlush makes disk k's writes durable.
//
//go:nosplit
func blkFlush(k int) uintptr {
	b := &blkDevs[uint(k)%abi.MaxDisks]
	if !b.flush {
		return 0 // a device without a write cache (§5.2.6.2)
	}
	return errno(blkRequest(b, blkTFlush, 0, 0))
}

// blkPath returns the disk /dev/vdX at path names, or -1.
//
//go:nosplit
func blkPath(path uintptr) int {
	const pre = "/dev/vd"
	for i := 0; i <= len(pre); i++ {
		if !userRange(path+uintptr(i), 1) {
			return -1
		}
	}
	if !memeq(path, uintptr(unsafe.Pointer(unsafe.StringData(pre))), uintptr(len(pre))) || load8(path+uintptr(len(pre))+1) != 0 {
		return -1
	}
	k := int(load8(path+uintptr(len(pre)))) - 'a'
	if k < 0 || k >= abi.MaxDisks || blkDevs[k].q.ring == 0 {
		return -1
	}
	return k
}

// openBlk opens the disk at path, or says it is none.
//
//go:nosplit
func openBlk(path, flags uintptr) (uintptr, bool) {
	k := blkPath(path)
	if k < 0 {
		return 0, false
	}
	if flags&linux.O_ACCMODE != linux.O_RDONLY && blkDevs[k%abi.MaxDisks].ro {
		return errno(linux.EROFS), true
	}
	if flags&linux.O_DIRECTORY != 0 {
		return errno(linux.ENOTDIR), true
	}
	fd := allocFD(fdBlk)
	if fd < 0 {
		return errno(linux.EMFILE), true
	}
	fdt[fd].cloexec = flags&linux.O_CLOEXEC != 0
	fl := fdFile(fd)
	fl.flags = uint32(flags & (linux.O_ACCMODE | linux.O_NONBLOCK | linux.O_APPEND))
	fl.pipe = uint8(k)
	return uintptr(fd), true
}

// blkStat describes disk k in statBuf: a block device, major 254 (Linux's
// virtblk), minor 16 per disk. (Not inlined: its composite literal would
// widen the frames of statPath's deep resolutions.)
//
//go:nosplit
//go:noinline
func blkStat(k int) {
	statBuf = linux.Stat{Ino: uint64(300 + k), Nlink: 1, Blksize: 4096, Mode: linux.S_IFBLK | 0o660, Rdev: 254<<8 | uint64(k*16)}
}

// blkSize is disk k's size in bytes.
//
//go:nosplit
func blkSize(k int) int64 { return int64(blkDevs[uint(k)%abi.MaxDisks].sectors * sectorSize) }

// blkRead and blkWrite are read(2) and write(2) on the disk open as fl.
//
//go:nosplit
func blkRead(fl *file, buf, n uintptr, off uint64) uintptr {
	if fl.flags&linux.O_ACCMODE == linux.O_WRONLY {
		return errno(linux.EBADF)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	return blkIO(int(fl.pipe), false, buf, n, off)
}

//go:nosplit
func blkWrite(fl *file, buf, n uintptr, off uint64) uintptr {
	if fl.flags&linux.O_ACCMODE == linux.O_RDONLY {
		return errno(linux.EBADF)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	return blkIO(int(fl.pipe), true, buf, n, off)
}

// blkPutBlocks writes the n (at most 16) 4 KiB frames to disk k at byte
// off, one after another, in one request: 0 or EIO.
//
//go:nosplit
func blkPutBlocks(k int, off uint64, frames *[16]uintptr, n int) linux.Errno {
	n = min(n, blkWindow/pageSize)
	for i := 0; i < n; i++ {
		memmove(blkBuf+512+uintptr(i)*pageSize, frames[i%16], pageSize)
	}
	return blkPutWindow(k, off, n)
}

// blkPutBlock writes the 4 KiB frame f to disk k at byte off.
//
//go:nosplit
func blkPutBlock(k int, off uint64, f uintptr) linux.Errno {
	memmove(blkBuf+512, f, pageSize)
	return blkPutWindow(k, off, 1)
}

// blkPutWindow writes the window's first n 4 KiB blocks to disk k at
// byte off.
//
//go:nosplit
func blkPutWindow(k int, off uint64, n int) linux.Errno {
	b := &blkDevs[uint(k)%abi.MaxDisks]
	if b.ro || off%sectorSize != 0 || off+uint64(n)*pageSize > b.sectors*sectorSize {
		return linux.EIO
	}
	return blkRequest(b, blkTOut, off/sectorSize, uintptr(n)*pageSize)
}

// blkGetWindow reads n 4 KiB blocks of disk k from byte off into the
// window (blkWindowAddr).
//
//go:nosplit
func blkGetWindow(k int, off uint64, n int) linux.Errno {
	b := &blkDevs[uint(k)%abi.MaxDisks]
	n = min(n, blkWindow/pageSize)
	if off%sectorSize != 0 || off+uint64(n)*pageSize > b.sectors*sectorSize {
		return linux.EIO
	}
	return blkRequest(b, blkTIn, off/sectorSize, uintptr(n)*pageSize)
}

// blkWindowAddr is where the block window's data starts.
//
//go:nosplit
func blkWindowAddr() uintptr { return blkBuf + 512 }
