//go:build !unigo_nodrivers

package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// A volume's journal (abi/volume.go): transactions commit — descriptor,
// blocks and commit block in the journal, then a flush — and their blocks
// reach home at a checkpoint, or earlier when the cache wants the slot
// (volume.go). The superblock records where replay starts.

// volFull reports whether volume k's transaction must commit before more
// is added: within an operation that may commit halfway (write).
//
//go:nosplit
func volFull(k int) bool {
	v := &vols[uint(k)%abi.MaxDisks]
	return uint64(v.txN)+8 > v.txMax || volDirty+2*volTxSpare > vcap
}

// volBoundary commits what is nearly full, between system calls.
//
//go:nosplit
func volBoundary() {
	volErr = 0 // an error the call that met it did not report stays with that call
	if volDirty == 0 {
		return
	}
	for k := range vols {
		v := &vols[k]
		if v.used && v.txN > 0 && (uint64(v.txN)+volTxSpare > v.txMax || volDirty+2*volTxSpare > vcap) {
			volCommitFn(k)
		}
	}
}

// volSyncAll commits every volume's transaction and empties its journal
// (exit): the next mount has nothing to replay.
//
//go:nosplit
func volSyncAll() {
	for k := range vols {
		if vols[k].used && volCommitFn(k) == 0 && vols[k].head != 0 {
			volCheckpoint(k)
		}
	}
}

// volCheckpoint writes the committed blocks home, makes them durable and
// starts the journal over (a superblock with its head at 0). Only with no
// transaction open: a block both committed and changed since would reach
// home with the uncommitted change, and no replay would undo it.
//
//go:nosplit
func volCheckpoint(k int) linux.Errno {
	if volWriteHome(k) != 0 || blkFlush(k) != 0 {
		return linux.EIO
	}
	vols[uint(k)%abi.MaxDisks].head = 0
	return volWriteSuper(k)
}

// crc32c continues the CRC-32C (Castagnoli, reflected polynomial
// 0x82f63b78) crc over the n bytes at p.
//
//go:nosplit
func crc32c(crc uint32, p, n uintptr) uint32 {
	crc = ^crc
	for i := uintptr(0); i < n; i++ {
		crc = crcTab[byte(crc)^load8(p+i)] ^ crc>>8
	}
	return ^crc
}

//go:nosplit
func crcInit() {
	for i := range crcTab {
		c := uint32(i)
		for j := 0; j < 8; j++ {
			if c&1 != 0 {
				c = c>>1 ^ 0x82f63b78
			} else {
				c >>= 1
			}
		}
		crcTab[i] = c
	}
}

// volCommit writes volume k's transaction (its nodes first): the journal
// (descriptor, blocks, commit), a flush — from here it counts — then the
// blocks at home. When the journal has no room for another transaction,
// a checkpoint flushes the home writes and starts it over.
//
//go:nosplit
func volCommit(k int) linux.Errno {
	v := &vols[uint(k)%abi.MaxDisks]
	if v.ro {
		return 0
	}
	volSaveAll(k)
	if v.txN == 0 {
		return volTakeErr()
	}
	n := v.txN
	if v.head+uint64(n)+2 > v.jLen {
		// Never: each commit leaves room for txMax blocks (volMark's cap),
		// and a checkpoint here could not put committed blocks home that
		// this transaction has changed since.
		return linux.EIO
	}
	d, c := volSpare, volSpare2
	memclr(d, volBS)
	store32(d, abi.VolJDescMagic)
	store32(d+4, uint32(n))
	store64(d+8, v.seq)
	for i := 0; i < n; i++ {
		store64(d+16+uintptr(i)*8, vbufs[v.tx[i]%volCacheN].blk)
	}
	crc := crc32c(0, d, volBS)
	for i := 0; i < n; i++ {
		crc = crc32c(crc, volAddr(int(v.tx[i])), volBS)
	}
	memclr(c, volBS)
	store32(c, abi.VolJCommitMagic)
	store32(c+4, uint32(n))
	store64(c+8, v.seq)
	store32(c+16, crc)
	// The descriptor, the blocks and the commit follow each other in the
	// journal, written in 64 KiB requests. The commit may reach the disk
	// before the blocks do; if a crash comes between, its CRC fails and
	// replay ignores the transaction, as it must: fsync has not returned.
	e := linux.Errno(0)
	for i := 0; i < n+2 && e == 0; i += 16 {
		e = volPutJournal(k, (v.jStart+v.head+uint64(i))*volBS, i, min(16, n+2-i))
	}
	if e == 0 && blkFlush(k) != 0 {
		e = linux.EIO
	}
	if e != 0 {
		// Not committed: the changes stay in the cache, dirty, for the
		// next try; the program hears of it.
		return e
	}
	// Committed: the blocks go home later (volWriteHome).
	for i := 0; i < n; i++ {
		b := &vbufs[v.tx[i]%volCacheN]
		b.dirty, b.home = false, true
	}
	volDirty -= n
	v.txN = 0
	v.seq++
	v.head += uint64(n) + 2
	if v.head+v.txMax+2 > v.jLen {
		if e := volCheckpoint(k); e != 0 {
			return e
		}
	}
	return volTakeErr()
}

// volPutJournal writes items [i, i+n) of volume k's transaction as the
// journal holds it — the descriptor (volSpare), the blocks, the commit
// (volSpare2) — to the disk at byte off. (Not inlined: its array would
// widen volCommit's frame.)
//
//go:nosplit
//go:noinline
func volPutJournal(k int, off uint64, i, n int) linux.Errno {
	var frames [16]uintptr
	v := &vols[uint(k)%abi.MaxDisks]
	for j := 0; j < n; j++ {
		switch it := i + j; {
		case it == 0:
			frames[j%16] = volSpare
		case it == v.txN+1:
			frames[j%16] = volSpare2
		default:
			frames[j%16] = volAddr(int(v.tx[uint(it-1)%volTxMax]))
		}
	}
	return blkPutBlocks(k, off, &frames, n)
}

// volWriteSuper writes volume k's superblock with the journal's head and
// sequence, the next generation, into the older copy, and flushes: a torn
// write leaves the other copy valid.
//
//go:nosplit
func volWriteSuper(k int) linux.Errno {
	v := &vols[uint(k)%abi.MaxDisks]
	v.gen++
	store64(v.sb+abi.VolSbGeneration, v.gen)
	store64(v.sb+abi.VolSbJournalSeq, v.seq)
	store64(v.sb+abi.VolSbJournalHead, v.head)
	store32(v.sb+abi.VolSbCRC, crc32c(0, v.sb, abi.VolSbCRC))
	if blkPutBlock(k, v.gen%2*volBS, v.sb) != 0 || blkFlush(k) != 0 {
		return linux.EIO
	}
	return 0
}

// volHomeList is where volWriteHome sorts the slots it writes.
var volHomeList [volCacheN]uint16

// volWriteHome writes volume k's committed blocks at their home places,
// in runs of consecutive blocks (not flushed: a checkpoint flushes).
//
//go:nosplit
func volWriteHome(k int) linux.Errno {
	n := 0
	for s := 0; s < vbufsUsed; s++ {
		b := &vbufs[uint(s)%volCacheN]
		if b.home && int(b.vol) == k+1 {
			// Insert in block order: mostly in order already, as blocks
			// are allocated forward.
			j := n
			for j > 0 && vbufs[volHomeList[j-1]%volCacheN].blk > b.blk {
				volHomeList[j%volCacheN] = volHomeList[j-1]
				j--
			}
			volHomeList[j%volCacheN] = uint16(s)
			n++
		}
	}
	e := linux.Errno(0)
	for i := 0; i < n; {
		j := i + 1
		for j < n && j-i < 16 && vbufs[volHomeList[j%volCacheN]%volCacheN].blk == vbufs[volHomeList[j-1]%volCacheN].blk+1 {
			j++
		}
		if volPutHome(k, i, j-i) != 0 {
			e = linux.EIO // the journal has them: the next mount writes them again
		}
		i = j
	}
	for i := 0; i < n; i++ {
		vbufs[volHomeList[i%volCacheN]%volCacheN].home = false
	}
	return e
}

// volPutHome writes the n cached blocks volHomeList[i:i+n], consecutive
// blocks of volume k, home. (Not inlined: its array would widen its
// caller's frame.)
//
//go:nosplit
//go:noinline
func volPutHome(k, i, n int) linux.Errno {
	var frames [16]uintptr
	for j := 0; j < n; j++ {
		frames[j%16] = volAddr(int(volHomeList[uint(i+j)%volCacheN]))
	}
	return blkPutBlocks(k, vbufs[volHomeList[uint(i)%volCacheN]%volCacheN].blk*volBS, &frames, n)
}

// volSuperOK reports whether the block at p is a valid superblock of a
// disk of size bytes, in the layout abi.VolLayout gives.
//
//go:nosplit
func volSuperOK(p uintptr, size uint64) bool {
	if !memeq(p, uintptr(unsafe.Pointer(unsafe.StringData(abi.VolMagic))), 8) || load32(p+abi.VolSbVersion) != abi.VolVersion ||
		load32(p+abi.VolSbBlockSize) != volBS || load32(p+abi.VolSbCRC) != crc32c(0, p, abi.VolSbCRC) {
		return false
	}
	n := load64(p + abi.VolSbBlocks)
	j, jl, b, bl, in, inl, d := abi.VolLayout(n)
	return n >= abi.VolMinBlocks && n*volBS <= size && load64(p+abi.VolSbJournalStart) == j && load64(p+abi.VolSbJournalLen) == jl &&
		load64(p+abi.VolSbBitmapStart) == b && load64(p+abi.VolSbBitmapLen) == bl && load64(p+abi.VolSbInodeStart) == in &&
		load64(p+abi.VolSbInodeLen) == inl && load64(p+abi.VolSbDataStart) == d && load64(p+abi.VolSbJournalHead) < jl &&
		n < 1<<40
}
