//go:build !unigo_nodrivers

package kernel

import (
	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// Block volumes (unigo run -v FILE.img:/NAME): the format of abi/volume.go
// on a disk of blk.go, below the file system of volfs.go; the journal is
// voljournal.go's, the mount volmount.go's. Blocks pass through one cache
// shared by the volumes, least recently used clean blocks leave it first. A change dirties its blocks into the volume's
// transaction, which commits — journal, flush — at fsync, at exit, when it
// fills, and between system calls once little room is left, so that an
// operation's changes always commit together. A committed block reaches
// its home place later, when the cache needs its slot or the journal
// starts over (a checkpoint), so that a block changed by many commits is
// written home once; until then a crash's replay puts it there. Trap
// context, one call at a time.

const (
	volCacheN  = 1024              // cached blocks (4 MiB), at most
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
	vcap      int // the blocks the cache may hold: volCacheN, less in a small guest (volCacheInit)
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

// volCacheInit sizes the cache: at most an eighth of the free memory, so
// that a small guest keeps room for its program.
//
//go:nosplit
func volCacheInit() {
	if vcap == 0 {
		vcap = int(min(volCacheN, (physEnd-physNext)/pageSize/8))
	}
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
	if vbufsUsed < vcap {
		if f := allocFrame(); f != 0 {
			s := vbufsUsed
			vbufsUsed++
			vbufs[uint(s)%volCacheN].frame = f
			return s
		}
		vcap = vbufsUsed // memory ran out: the cache stays this size
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
