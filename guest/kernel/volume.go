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
// transaction, which commits — journal, flush — at fsync, at exit, when it
// fills, and between system calls once little room is left, so that an
// operation's changes always commit together. A committed block reaches
// its home place later, when the cache needs its slot or the journal
// starts over (a checkpoint), so that a block changed by many commits is
// written home once; until then a crash's replay puts it there. Trap
// context, one call at a time.

const (
	volCacheN  = 1024              // cached blocks (4 MiB)
	volHashN   = 2048              // hash heads of the cache
	volTxMax   = abi.VolJMaxBlocks // blocks of one transaction, at most
	volTxSpare = 32                // room an operation needs: below it, the next call boundary commits
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
	lastMiss uint64  // the block last read from the disk: the next one starts a read-ahead
	txN      int
	tx       [volTxMax]uint16 // the transaction: cache slots
}

// vbuf is a cached block.
type vbuf struct {
	frame uintptr
	blk   uint64
	vol   uint8  // 1 + the volume; 0: free
	dirty bool   // changed, in the volume's transaction
	home  bool   // committed, but not yet written at its home place
	next  uint16 // 1 + the next slot of the hash chain
	tick  uint64 // when last used: the least recent clean block is evicted (64 bits: never wraps)
}

// Block reads, and the cache's misses, go through function values, as the
// entries from tmpfs do (volhooks.go).
var (
	volReadFn = volReadBlock
	volMissFn = volMiss
	volHomeFn = volWriteHome
)

// volReadRun reads the n blocks of volume k from blk into the block
// window (blk.go).
//
//go:nosplit
func volReadRun(k int, blk uint64, n int) bool { return blkGetWindow(k, blk*volBS, n) == 0 }

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
	vtick     uint64
	volDirty  int         // dirty blocks over all volumes
	volErr    linux.Errno // the first I/O error since it was last taken
	volSpare  uintptr     // a frame for journal descriptors (and the superblock read)
	volSpare2 uintptr     // and one for commits
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
	if s := volCached(k, blk); s >= 0 {
		b := &vbufs[uint(s)%volCacheN]
		b.tick = vtick
		if !fill {
			memclr(b.frame, volBS) // allocated again: it starts empty
		}
		return s
	}
	return volMissFn(k, blk, fill)
}

// volMiss is volGet for a block the cache lacks.
//
//go:nosplit
func volMiss(k int, blk uint64, fill bool) int {
	v := &vols[uint(k)%abi.MaxDisks]
	if fill && blk == v.lastMiss+1 {
		v.lastMiss = blk
		return volReadAhead(k, blk)
	}
	v.lastMiss = blk
	s := volVictim()
	if s < 0 {
		return -1
	}
	b := &vbufs[uint(s)%volCacheN]
	if fill {
		if !volReadBlock(k, blk, b.frame) {
			volFail(linux.EIO)
			return -1
		}
	} else {
		memclr(b.frame, volBS)
	}
	volInsert(s, k, blk)
	return s
}

// volCached returns the slot that caches block blk of volume k, or -1.
//
//go:nosplit
func volCached(k int, blk uint64) int {
	for s := int(vhash[volHashOf(k, blk)]) - 1; s >= 0; s = int(vbufs[uint(s)%volCacheN].next) - 1 {
		if b := &vbufs[uint(s)%volCacheN]; b.blk == blk && int(b.vol) == k+1 {
			return s
		}
	}
	return -1
}

// volInsert makes slot s, filled, the cached block blk of volume k.
//
//go:nosplit
func volInsert(s, k int, blk uint64) {
	b := &vbufs[uint(s)%volCacheN]
	h := volHashOf(k, blk)
	b.blk, b.vol, b.dirty, b.home, b.tick = blk, uint8(k+1), false, false, vtick
	b.next = vhash[h]
	vhash[h] = uint16(s + 1)
}

// volReadAhead reads block blk of volume k, which follows the last block
// read from the disk, with the blocks after it that the cache lacks, in
// one request: sequential reads cost one request per 64 KiB. It returns
// blk's slot, or -1.
//
//go:nosplit
func volReadAhead(k int, blk uint64) int {
	v := &vols[uint(k)%abi.MaxDisks]
	n := 1
	for n < blkWindow/volBS && blk+uint64(n) < v.blocks && volCached(k, blk+uint64(n)) < 0 {
		n++
	}
	if !volReadRun(k, blk, n) {
		volFail(linux.EIO)
		return -1
	}
	first := -1
	for i := 0; i < n; i++ {
		s := volVictim()
		if s < 0 {
			break
		}
		memmove(volAddr(s), blkWindowAddr()+uintptr(i)*volBS, volBS)
		volInsert(s, k, blk+uint64(i))
		if i == 0 {
			first = s
		}
	}
	v.lastMiss = blk + uint64(n) - 1
	return first
}

// volVictim returns a slot to fill: a new one while the cache grows, else
// the least recently used clean one, taken out of its chain. When every
// clean block still waits to be written home, the volume of the least
// recently used one writes all of its home first.
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
	best := volLRU(false)
	if best < 0 {
		if p := volLRU(true); p >= 0 {
			volHomeFn(int(vbufs[uint(p)%volCacheN].vol) - 1)
		}
		best = volLRU(false)
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

// volLRU returns the least recently used slot that is not dirty and, as
// home says, waits to be written home or not; -1 if there is none.
//
//go:nosplit
func volLRU(home bool) int {
	best, tick := -1, uint64(0)
	for s := 0; s < vbufsUsed; s++ {
		b := &vbufs[uint(s)%volCacheN]
		if !b.dirty && b.home == home && (best < 0 || b.tick < tick) {
			best, tick = s, b.tick
		}
	}
	return best
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

// volMark puts slot s, about to be changed, into volume k's transaction.
//
//go:nosplit
func volMark(k int, s int) {
	b := &vbufs[uint(s)%volCacheN]
	if b.dirty {
		return
	}
	v := &vols[uint(k)%abi.MaxDisks]
	if uint64(v.txN) >= v.txMax {
		// One call changed more than a transaction holds (the truncation
		// of a file of tens of GiB): the change fails rather than breaks
		// the journal.
		volFail(linux.EFBIG)
		return
	}
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
		i := uintptr(0)
		if n == 0 {
			i = uintptr(v.hint%per/64) * 8 // from the hint on: allocation goes forward
		}
		for ; i < volBS; i++ {
			if i%8 == 0 && i+8 <= volBS && load64(p+i) == ^uint64(0) {
				i += 7 // 64 blocks in use
				continue
			}
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
