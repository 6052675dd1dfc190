//go:build !unigo_nodrivers

package kernel

import (
	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// A block volume's files are tnodes, as /tmp's are (tmpfs.go), so that the
// VFS's operations work on both: a volume's tnode caches one inode's
// attributes (written back when they differ, at each commit and when the
// tnode is evicted), its parent is an inode number, and its pages are the
// volume's blocks, found through the inode's direct and indirect pointers
// (abi/volume.go). Directory records hold inode numbers; the tnode of one
// is looked up in a hash, or loaded. Reads leave atime alone (noatime), so
// that reading never writes.

const vnHashN = 1024

var (
	vnHash [vnHashN]uint16 // 1 + the first tnode of each chain
	vnTick uint64
)

//go:nosplit
func vnHashOf(k int, ino uint32) uintptr { return uintptr(ino*2654435761+uint32(k)) % vnHashN }

// volInode returns the cache slot of the block that holds inode ino of
// volume k, and the inode's offset in it; -1 if it cannot be read.
//
//go:nosplit
func volInode(k int, ino uint32) (int, uintptr) {
	v := &vols[uint(k)%abi.MaxDisks]
	const per = volBS / abi.VolInodeSize
	if uint64(ino)/per >= v.inLen {
		volFail(linux.EIO)
		return -1, 0
	}
	return volGet(k, v.inStart+uint64(ino)/per, true), uintptr(ino%per) * abi.VolInodeSize
}

// volNode returns the tnode of inode ino of volume k, loading it: -1 for
// an inode that is free or cannot be read, or when no tnode is left.
//
//go:nosplit
func volNode(k int, ino uint32) int {
	vnTick++
	h := vnHashOf(k, ino)
	for i := int(vnHash[h]) - 1; i >= 0; i = int(tnodes[uint(i)%maxTnodes].hnext) - 1 {
		t := &tnodes[uint(i)%maxTnodes]
		if t.dino == ino && int(t.vol) == k+1 {
			t.tick = vnTick
			return i
		}
	}
	s, o := volInode(k, ino)
	if s < 0 || load32(volAddr(s)+o+abi.VolInMode) == 0 {
		volFail(linux.EIO) // a directory names a free inode
		return -1
	}
	i := tnodeFree()
	if i < 0 {
		return -1
	}
	// The inode again: finding a tnode may have evicted one, and saving it
	// used the cache.
	if s, o = volInode(k, ino); s < 0 {
		return -1
	}
	p := volAddr(s) + o
	t := &tnodes[uint(i)%maxTnodes]
	t.mode, t.nlink, t.uid, t.gid = load32(p+abi.VolInMode), load32(p+abi.VolInNlink), load32(p+abi.VolInUID), load32(p+abi.VolInGID)
	t.size, t.parent = load64(p+abi.VolInSize), load32(p+abi.VolInParent)
	t.atime, t.mtime, t.ctime = int64(load64(p+abi.VolInAtime)), int64(load64(p+abi.VolInMtime)), int64(load64(p+abi.VolInCtime))
	volHashIn(i, k, ino)
	return i
}

// volHashIn makes tnode i the one of inode ino of volume k.
//
//go:nosplit
func volHashIn(i, k int, ino uint32) {
	t := &tnodes[uint(i)%maxTnodes]
	t.vol, t.dino, t.tick = uint8(k+1), ino, vnTick
	h := vnHashOf(k, ino)
	t.hnext = vnHash[h]
	vnHash[h] = uint16(i + 1)
}

// volUnhash takes tnode i out of the hash.
//
//go:nosplit
func volUnhash(i int) {
	t := &tnodes[uint(i)%maxTnodes]
	p := &vnHash[vnHashOf(int(t.vol)-1, t.dino)]
	for *p != 0 && int(*p)-1 != i {
		p = &tnodes[uint(*p-1)%maxTnodes].hnext
	}
	*p = t.hnext
	t.hnext = 0
}

// volSave writes tnode i's attributes into its inode where they differ.
//
//go:nosplit
func volSave(i int) {
	t := &tnodes[uint(i)%maxTnodes]
	k := int(t.vol) - 1
	s, o := volInode(k, t.dino)
	if s < 0 || t.mode == 0 {
		return
	}
	p := volAddr(s) + o
	if load32(p+abi.VolInMode) == t.mode && load32(p+abi.VolInNlink) == t.nlink && load32(p+abi.VolInUID) == t.uid &&
		load32(p+abi.VolInGID) == t.gid && load64(p+abi.VolInSize) == t.size && load32(p+abi.VolInParent) == t.parent &&
		int64(load64(p+abi.VolInAtime)) == t.atime && int64(load64(p+abi.VolInMtime)) == t.mtime && int64(load64(p+abi.VolInCtime)) == t.ctime {
		return
	}
	volMark(k, s)
	store32(p+abi.VolInMode, t.mode)
	store32(p+abi.VolInNlink, t.nlink)
	store32(p+abi.VolInUID, t.uid)
	store32(p+abi.VolInGID, t.gid)
	store64(p+abi.VolInSize, t.size)
	store32(p+abi.VolInParent, t.parent)
	store64(p+abi.VolInAtime, uint64(t.atime))
	store64(p+abi.VolInMtime, uint64(t.mtime))
	store64(p+abi.VolInCtime, uint64(t.ctime))
}

// volSaveAll writes back the cached nodes of volume k.
//
//go:nosplit
func volSaveAll(k int) {
	for i := range tnodes {
		if i == ktabLen(ktabTnodes) {
			break // the used prefix (ktab.go)
		}
		if int(tnodes[i].vol) == k+1 {
			volSave(i)
		}
	}
}

// volPinned reports whether tnode i must stay: open, mapped, the working
// directory, a volume's root, or part of the resolution under way.
//
//go:nosplit
func volPinned(i int) bool {
	v := vnode(fsTmp<<24 | uint32(i))
	if tnodes[uint(i)%maxTnodes].opens != 0 || v == cwdVn || v == walks[0].v || v == walks[0].dir || v == walks[1].v || v == walks[1].dir {
		return true
	}
	for k := range vols {
		if vols[k].used && vols[k].root == uint32(i) {
			return true
		}
	}
	return false
}

// volEvict frees the least recently used tnode of a volume that nothing
// holds, its attributes saved: its index, or -1.
//
//go:nosplit
func volEvict() int {
	best := -1
	for i := range tnodes {
		if i == ktabLen(ktabTnodes) {
			break // the used prefix (ktab.go)
		}
		t := &tnodes[i]
		if t.vol != 0 && (best < 0 || t.tick < tnodes[best].tick) && !volPinned(i) {
			best = i
		}
	}
	if best >= 0 {
		volSave(best)
		volUnhash(best)
		tnodes[best] = tnode{}
	}
	return best
}

// volParent is the tnode of directory i's parent (the root's is itself).
//
//go:nosplit
func volParent(i uint32) uint32 {
	t := tnodeOf(i)
	k := int(t.vol) - 1
	if t.dino == abi.VolRootInode {
		return i
	}
	if p := volNode(k, t.parent); p >= 0 {
		return uint32(p)
	}
	return vols[uint(k)%abi.MaxDisks].root
}

// volNew makes a node of mode in directory dir's volume: a new inode,
// written at once so that the next allocation passes it; -1 when the
// volume has no inode left.
//
//go:nosplit
func volNew(dir uint32, mode uint32) int {
	k := int(tnodeOf(dir).vol) - 1
	v := &vols[uint(k)%abi.MaxDisks]
	if v.freeIno == 0 {
		return -1
	}
	i := tmpNew(mode)
	if i < 0 {
		return -1
	}
	const per = volBS / abi.VolInodeSize
	total := v.inLen * per
	for n := uint64(0); n < total; n++ {
		ino := (v.inoHint + n) % total
		if ino == 0 {
			continue
		}
		s, o := volInode(k, uint32(ino))
		if s < 0 {
			break
		}
		p := volAddr(s) + o
		if load32(p+abi.VolInMode) != 0 {
			continue
		}
		volMark(k, s)
		memclr(p, abi.VolInodeSize)
		store32(p+abi.VolInMode, mode)
		v.freeIno--
		v.inoHint = ino + 1
		volHashIn(i, k, uint32(ino))
		volSave(i)
		return i
	}
	tnodes[uint(i)%maxTnodes] = tnode{}
	return -1
}

// volFreeNode frees tnode i's inode and blocks: nothing names or holds it.
//
//go:nosplit
func volFreeNode(i uint32) {
	t := tnodeOf(i)
	k := int(t.vol) - 1
	volFreeFrom(k, t.dino, 0)
	volFreeInode(k, t.dino)
	volUnhash(int(i))
}

// volFreeInode marks inode ino of volume k free.
//
//go:nosplit
func volFreeInode(k int, ino uint32) {
	s, o := volInode(k, ino)
	if s < 0 {
		return
	}
	volMark(k, s)
	memclr(volAddr(s)+o, abi.VolInodeSize)
	vols[uint(k)%abi.MaxDisks].freeIno++
}

// volPtr returns the block number at byte off of cached block s: 0 for a
// hole, or for a number outside the data area, which only a damaged volume
// holds (EIO).
//
//go:nosplit
func volPtr(k, s int, off uintptr) uint64 {
	v := &vols[uint(k)%abi.MaxDisks]
	b := load64(volAddr(s) + off)
	if b != 0 && (b < v.data || b >= v.blocks) {
		volFail(linux.EIO)
		return 0
	}
	return b
}

// volPtrAt is volPtr, or with alloc a new block (zeroed) for a hole: 0
// then means the volume is full.
//
//go:nosplit
func volPtrAt(k, s int, off uintptr, alloc bool) uint64 {
	b := volPtr(k, s, off)
	if b != 0 || !alloc || volErr != 0 {
		return b
	}
	if b = volAllocBlock(k); b == 0 {
		return 0
	}
	n := volGet(k, b, false)
	if n < 0 {
		volFreeBlock(k, b)
		return 0
	}
	volMark(k, n)
	volMark(k, s)
	store64(volAddr(s)+off, b)
	return b
}

// volBmap returns the block that holds page idx of node t, 0 for a hole;
// with alloc, it allocates the block and the index blocks on the way (0
// then means the volume is full or volErr says what failed).
//
//go:nosplit
func volBmap(t *tnode, idx uint64, alloc bool) uint64 {
	k := int(t.vol) - 1
	s, o := volInode(k, t.dino)
	if s < 0 {
		return 0
	}
	if idx < abi.VolDirect {
		return volPtrAt(k, s, o+abi.VolInDirect+uintptr(idx)*8, alloc)
	}
	idx -= abi.VolDirect
	span := uint64(512)
	for level := 0; level < 3; level++ {
		if idx >= span {
			idx -= span
			span *= 512
			continue
		}
		b := volPtrAt(k, s, o+abi.VolInIndirect+uintptr(level)*8, alloc)
		for l := level; b != 0; l-- {
			span /= 512
			bs := volGet(k, b, true)
			if bs < 0 {
				return 0
			}
			b = volPtrAt(k, bs, uintptr(idx/span%512)*8, alloc)
			if l == 0 {
				return b
			}
		}
		return 0
	}
	return 0 // beyond what a file can reach
}

// volPage returns the cached block of page idx of node t (see tmpPage),
// in the transaction if write is set.
//
//go:nosplit
func volPage(t *tnode, idx uint64, alloc, write bool) uintptr {
	return volPageAt(t, idx, alloc, write, true)
}

// volPageOver is volPage for a page about to be written whole: a block
// not in the cache is not read first.
//
//go:nosplit
func volPageOver(t *tnode, idx uint64) uintptr { return volPageAt(t, idx, true, true, false) }

//go:nosplit
func volPageAt(t *tnode, idx uint64, alloc, write, fill bool) uintptr {
	k := int(t.vol) - 1
	b := volBmap(t, idx, alloc)
	if b == 0 {
		return 0
	}
	s := volGet(k, b, fill)
	if s < 0 {
		return 0
	}
	if write {
		volMark(k, s)
	}
	return volAddr(s)
}

// volFreeFrom frees the pages of inode ino of volume k from page first on,
// with the index blocks left empty.
//
//go:nosplit
func volFreeFrom(k int, ino uint32, first uint64) {
	for i := first; i < abi.VolDirect; i++ {
		volClearPtr(k, ino, abi.VolInDirect+uintptr(i)*8, -1, 0)
	}
	base, span := uint64(abi.VolDirect), uint64(512)
	for level := 0; level < 3; level++ {
		if first < base+span {
			f := uint64(0)
			if first > base {
				f = first - base
			}
			volClearPtr(k, ino, abi.VolInIndirect+uintptr(level)*8, level, f)
		}
		base += span
		span *= 512
	}
}

// volClearPtr frees what the pointer at byte off of inode ino points at:
// a data block (level -1) or an index block of the level, from its data
// page first on; the pointer is cleared once its block is empty.
//
//go:nosplit
func volClearPtr(k int, ino uint32, off uintptr, level int, first uint64) {
	s, o := volInode(k, ino)
	if s < 0 {
		return
	}
	b := volPtr(k, s, o+off)
	if b == 0 {
		return
	}
	empty := true
	switch level {
	case 0:
		empty = volFree0(k, b, first)
	case 1:
		empty = volFree1(k, b, first)
	case 2:
		empty = volFree2(k, b, first)
	}
	if !empty {
		return
	}
	if s, o = volInode(k, ino); s < 0 {
		return
	}
	volMark(k, s)
	store64(volAddr(s)+o+off, 0)
	volFreeBlock(k, b)
}

// volFree0, volFree1 and volFree2 free the entries of index block b of
// their level from data page first on (three functions rather than one
// recursive: trap context recurses only where the linker sees the bound),
// and report whether b is left empty. A block freed whole (first 0) is
// not changed, only its blocks given back, so that removing a big file
// puts few blocks into the transaction: the caller frees b.
//
//go:nosplit
func volFree0(k int, b, first uint64) bool {
	if first == 0 {
		for i := uint64(0); i < 512; i++ {
			if c := volEntry(k, b, i); c != 0 {
				volFreeBlock(k, c)
			}
		}
		return true
	}
	for i := first; i < 512; i++ {
		volDropEntry(k, b, i)
	}
	return volEmpty(k, b)
}

//go:nosplit
func volFree1(k int, b, first uint64) bool {
	for i := first / 512; i < 512; i++ {
		f := uint64(0)
		if i == first/512 {
			f = first % 512
		}
		if c := volEntry(k, b, i); c != 0 && volFree0(k, c, f) {
			volFreeChild(k, b, i, c, first == 0)
		}
	}
	return first == 0 || volEmpty(k, b)
}

//go:nosplit
func volFree2(k int, b, first uint64) bool {
	for i := first / (512 * 512); i < 512; i++ {
		f := uint64(0)
		if i == first/(512*512) {
			f = first % (512 * 512)
		}
		if c := volEntry(k, b, i); c != 0 && volFree1(k, c, f) {
			volFreeChild(k, b, i, c, first == 0)
		}
	}
	return first == 0 || volEmpty(k, b)
}

// volFreeChild frees block c, entry i of index block b; whole says b is
// being freed whole, so its entry need not be cleared.
//
//go:nosplit
func volFreeChild(k int, b, i, c uint64, whole bool) {
	if whole {
		volFreeBlock(k, c)
	} else {
		volDropEntry(k, b, i)
	}
}

// volEntry returns entry i of index block b (0: none).
//
//go:nosplit
func volEntry(k int, b, i uint64) uint64 {
	s := volGet(k, b, true)
	if s < 0 {
		return 0
	}
	return volPtr(k, s, uintptr(i%512)*8)
}

// volDropEntry frees the block entry i of index block b points at, and
// clears the entry.
//
//go:nosplit
func volDropEntry(k int, b, i uint64) {
	s := volGet(k, b, true)
	if s < 0 {
		return
	}
	c := volPtr(k, s, uintptr(i%512)*8)
	if c == 0 {
		return
	}
	volMark(k, s)
	store64(volAddr(s)+uintptr(i%512)*8, 0)
	volFreeBlock(k, c)
}

// volEmpty reports whether index block b holds no pointer.
//
//go:nosplit
func volEmpty(k int, b uint64) bool {
	s := volGet(k, b, true)
	if s < 0 {
		return false
	}
	p := volAddr(s)
	for i := uintptr(0); i < volBS; i += 8 {
		if load64(p+i) != 0 {
			return false
		}
	}
	return true
}
