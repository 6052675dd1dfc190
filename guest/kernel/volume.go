//go:build !unigo_nodrivers

package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// Block volumes (unigo run -v FILE.img:/NAME): the format of abi/volume.go
// on a disk of blk.go, below the file system of volfs.go. Blocks pass
// through one cache shared by the volumes, least recently used clean
// blocks leave it first. A change dirties its blocks into the volume's
// transaction, which commits — journal, flush, home places — at fsync, at
// exit, when it fills, and between system calls once little room is left,
// so that an operation's changes always commit together. Trap context,
// one call at a time.

const (
	volCacheN  = 512  // cached blocks (2 MiB)
	volHashN   = 1024 // hash heads of the cache
	volTxMax   = 256  // blocks of one transaction, at most
	volTxSpare = 32   // room an operation needs: below it, the next call boundary commits
	volBS      = abi.VolBlockSize
)

type volume struct {
	used, ro bool
	root     uint32 // the root directory's tnode
	blocks   uint64
	jStart   uint64
	jLen     uint64
	bmStart  uint64
	bmLen    uint64
	inStart  uint64
	inLen    uint64
	data     uint64
	gen      uint64 // the superblock's generation
	seq      uint64 // the next transaction's sequence number
	head     uint64 // and its place in the journal
	txMax    uint64
	free     uint64 // free blocks
	freeIno  uint64 // free inodes
	hint     uint64 // where the next block allocation looks first
	inoHint  uint64
	sb       uintptr // the superblock, a frame
	txN      int
	tx       [volTxMax]uint16 // the transaction: cache slots
}

// vbuf is a cached block.
type vbuf struct {
	frame uintptr
	blk   uint64
	vol   uint8 // 1 + the volume; 0: free
	dirty bool
	next  uint16 // 1 + the next slot of the hash chain
	tick  uint32 // when last used: the least recent clean block is evicted
}

// Block reads go through a function value, as the entries from tmpfs do
// (volhooks.go).
var volReadFn = volReadBlock

// volReadBlock reads block blk of volume k into frame f.
//
//go:nosplit
func volReadBlock(k int, blk uint64, f uintptr) bool {
	return blkIO(k, false, f, volBS, blk*volBS) == volBS
}

var (
	vols      [abi.MaxDisks]volume
	vbufs     [volCacheN]vbuf
	vhash     [volHashN]uint16 // 1 + the first slot of each chain
	vbufsUsed int
	vtick     uint32
	volDirty  int         // dirty blocks over all volumes
	volErr    linux.Errno // the first I/O error since it was last taken
	volSpare  uintptr     // a frame for journal descriptors and commits
	crcTab    [256]uint32
)

//go:nosplit
func volHashOf(k int, blk uint64) uintptr {
	return uintptr((blk*0x9e3779b97f4a7c15+uint64(k))>>40) % volHashN
}

//go:nosplit
func volAddr(s int) uintptr { return vbufs[uint(s)%volCacheN].frame }

// volGet returns the cache slot of block blk of volume k: read from the
// disk if fill is set, else zeroed (a block just allocated); -1 on an
// I/O error (volErr) or when the cache cannot take it.
//
//go:nosplit
func volGet(k int, blk uint64, fill bool) int {
	vtick++
	h := volHashOf(k, blk)
	for s := int(vhash[h]) - 1; s >= 0; s = int(vbufs[uint(s)%volCacheN].next) - 1 {
		b := &vbufs[uint(s)%volCacheN]
		if b.blk == blk && int(b.vol) == k+1 {
			b.tick = vtick
			if !fill {
				memclr(b.frame, volBS) // allocated again: it starts empty
			}
			return s
		}
	}
	s := volVictim()
	if s < 0 {
		return -1
	}
	b := &vbufs[uint(s)%volCacheN]
	if fill {
		if !volReadFn(k, blk, b.frame) {
			volFail(linux.EIO)
			return -1
		}
	} else {
		memclr(b.frame, volBS)
	}
	b.blk, b.vol, b.dirty, b.tick = blk, uint8(k+1), false, vtick
	b.next = vhash[h]
	vhash[h] = uint16(s + 1)
	return s
}

// volVictim returns a slot to fill: a new one while the cache grows, else
// the least recently used clean one, taken out of its chain.
//
//go:nosplit
func volVictim() int {
	if vbufsUsed < volCacheN {
		if f := allocFrame(); f != 0 {
			s := vbufsUsed
			vbufsUsed++
			vbufs[uint(s)%volCacheN].frame = f
			return s
		}
	}
	best, tick := -1, uint32(0)
	for s := 0; s < vbufsUsed; s++ {
		b := &vbufs[uint(s)%volCacheN]
		if !b.dirty && (best < 0 || b.tick < tick) {
			best, tick = s, b.tick
		}
	}
	if best < 0 {
		return -1
	}
	b := &vbufs[uint(best)%volCacheN]
	if b.vol != 0 {
		h := volHashOf(int(b.vol)-1, b.blk)
		p := &vhash[h]
		for *p != 0 && int(*p)-1 != best {
			p = &vbufs[uint(*p-1)%volCacheN].next
		}
		*p = b.next
	}
	b.vol, b.next = 0, 0
	return best
}

// volMark puts slot s, about to be changed, into volume k's transaction.
//
//go:nosplit
func volMark(k int, s int) {
	b := &vbufs[uint(s)%volCacheN]
	if b.dirty {
		return
	}
	v := &vols[uint(k)%abi.MaxDisks]
	b.dirty = true
	v.tx[uint(v.txN)%volTxMax] = uint16(s)
	v.txN++
	volDirty++
}

//go:nosplit
func volFail(e linux.Errno) {
	if volErr == 0 {
		volErr = e
	}
}

// volTakeErr returns and clears the pending I/O error.
//
//go:nosplit
func volTakeErr() linux.Errno {
	e := volErr
	volErr = 0
	return e
}

// volFull reports whether volume k's transaction must commit before more
// is added: within an operation that may commit halfway (write).
//
//go:nosplit
func volFull(k int) bool {
	v := &vols[uint(k)%abi.MaxDisks]
	return uint64(v.txN)+8 > v.txMax || volDirty+2*volTxSpare > volCacheN
}

// volBoundary commits what is nearly full, between system calls.
//
//go:nosplit
func volBoundary() {
	if volDirty == 0 {
		return
	}
	for k := range vols {
		v := &vols[k]
		if v.used && v.txN > 0 && (uint64(v.txN)+volTxSpare > v.txMax || volDirty+2*volTxSpare > volCacheN) {
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

// volCheckpoint makes the blocks written home durable and starts the
// journal over (a superblock with its head at 0).
//
//go:nosplit
func volCheckpoint(k int) linux.Errno {
	if blkFlush(k) != 0 {
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
	// Home order: sorted runs write in fewer requests.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && vbufs[v.tx[j]%volCacheN].blk < vbufs[v.tx[j-1]%volCacheN].blk; j-- {
			v.tx[j], v.tx[j-1] = v.tx[j-1], v.tx[j]
		}
	}
	d := volSpare
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
	at := v.jStart + v.head
	e := blkPutBlock(k, at*volBS, d)
	for i := 0; i < n && e == 0; i += 16 {
		e = volPutSlots(k, (at+1+uint64(i))*volBS, i, min(16, n-i))
	}
	if e == 0 {
		memclr(d, volBS)
		store32(d, abi.VolJCommitMagic)
		store32(d+4, uint32(n))
		store64(d+8, v.seq)
		store32(d+16, crc)
		e = blkPutBlock(k, (at+1+uint64(n))*volBS, d)
	}
	if e == 0 && blkFlush(k) != 0 {
		e = linux.EIO
	}
	if e != 0 {
		// Not committed: the changes stay in the cache, dirty, for the
		// next try; the program hears of it.
		return e
	}
	// Committed. Home places, in runs of consecutive blocks.
	for i := 0; i < n; {
		j := i + 1
		for j < n && j-i < 16 && vbufs[v.tx[j]%volCacheN].blk == vbufs[v.tx[j-1]%volCacheN].blk+1 {
			j++
		}
		if volPutSlots(k, vbufs[v.tx[i]%volCacheN].blk*volBS, i, j-i) != 0 {
			volFail(linux.EIO) // the journal has them: the next mount writes them again
		}
		i = j
	}
	for i := 0; i < n; i++ {
		vbufs[v.tx[i]%volCacheN].dirty = false
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

// volPutSlots writes the n cached blocks of transaction entries [i, i+n)
// to the disk at byte off, one after another. (Not inlined: its array
// would widen volCommit's frame.)
//
//go:nosplit
//go:noinline
func volPutSlots(k int, off uint64, i, n int) linux.Errno {
	var frames [16]uintptr
	v := &vols[uint(k)%abi.MaxDisks]
	for j := 0; j < n; j++ {
		frames[j%16] = volAddr(int(v.tx[uint(i+j)%volTxMax]))
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

// volAllocBlock takes a free block of volume k, marked in the bitmap: its
// number, or 0 when the volume is full (or the bitmap cannot be read).
//
//go:nosplit
func volAllocBlock(k int) uint64 {
	v := &vols[uint(k)%abi.MaxDisks]
	if v.free == 0 {
		return 0
	}
	const per = volBS * 8
	for n := uint64(0); n <= v.bmLen; n++ {
		bi := (v.hint/per + n) % v.bmLen
		s := volGet(k, v.bmStart+bi, true)
		if s < 0 {
			return 0
		}
		p := volAddr(s)
		for i := uintptr(0); i < volBS; i++ {
			c := load8(p + i)
			if c == 0xff {
				continue
			}
			for bit := uint64(0); bit < 8; bit++ {
				b := bi*per + uint64(i)*8 + bit
				if c&(1<<bit) != 0 || b < v.data || b >= v.blocks {
					continue
				}
				volMark(k, s)
				store8(p+i, c|1<<bit)
				v.free--
				v.hint = b + 1
				return b
			}
		}
	}
	return 0
}

// volFreeBlock gives block b of volume k back to the bitmap.
//
//go:nosplit
func volFreeBlock(k int, b uint64) {
	v := &vols[uint(k)%abi.MaxDisks]
	if b < v.data || b >= v.blocks {
		return
	}
	const per = volBS * 8
	s := volGet(k, v.bmStart+b/per, true)
	if s < 0 {
		return
	}
	p := volAddr(s) + uintptr(b%per/8)
	if load8(p)&(1<<(b%8)) == 0 {
		return
	}
	volMark(k, s)
	store8(p, load8(p)&^(1<<(b%8)))
	v.free++
	if b < v.hint {
		v.hint = b
	}
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
