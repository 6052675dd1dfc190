//go:build !unigo_nodrivers

package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// Mounting a block volume: the newer valid superblock, the journal's
// committed transactions written home (replay), the free blocks counted,
// the inodes removed while open (orphans) freed, and a new superblock
// naming the mount point. A read-only mount writes nothing: its replay
// holds the blocks in the cache, and orphans wait. A volume's mount word
// names its disk by serial (abi.DiskSerial) where a share's names a 9P
// tag.

// volMountAll mounts the volumes named on the command line.
//
//go:nosplit
func volMountAll() {
	for w := range shareWords {
		k := volDiskOf(w)
		if k < 0 {
			continue
		}
		if !volMount(k, w) {
			warn("unigo: a block volume (-v FILE.img) could not be mounted: check it with unigo volume fsck\n")
		}
	}
}

// volDiskOf returns the disk mount word w names, or -1 for a share's.
//
//go:nosplit
func volDiskOf(w int) int {
	sw := &shareWords[uint(w)%abi.MaxShares]
	const pre = "unigo-blk"
	if sw.tlen != uintptr(len(pre))+1 || !memeq(uintptr(unsafe.Pointer(&sw.tag[0])), uintptr(unsafe.Pointer(unsafe.StringData(pre))), uintptr(len(pre))) {
		return -1
	}
	k := int(sw.tag[len(pre)]) - '0'
	if k < 0 || k >= abi.MaxDisks {
		return -1
	}
	return k
}

// volMount mounts disk k's volume as mount word w says.
//
//go:nosplit
func volMount(k, w int) bool {
	v := &vols[uint(k)%abi.MaxDisks]
	sw := &shareWords[uint(w)%abi.MaxShares]
	if blkDevs[uint(k)%abi.MaxDisks].q.ring == 0 || v.used {
		return false
	}
	if volSpare == 0 {
		crcInit()
		volCacheInit()
		volSpare, volSpare2 = allocFrame(), allocFrame()
	}
	if v.sb == 0 {
		v.sb = allocFrame()
	}
	if volSpare == 0 || volSpare2 == 0 || v.sb == 0 || !volReadSuper(k) {
		return false
	}
	sb := v.sb
	v.blocks, v.jStart, v.jLen = load64(sb+abi.VolSbBlocks), load64(sb+abi.VolSbJournalStart), load64(sb+abi.VolSbJournalLen)
	v.bmStart, v.bmLen = load64(sb+abi.VolSbBitmapStart), load64(sb+abi.VolSbBitmapLen)
	v.inStart, v.inLen, v.data = load64(sb+abi.VolSbInodeStart), load64(sb+abi.VolSbInodeLen), load64(sb+abi.VolSbDataStart)
	v.gen, v.seq, v.head = load64(sb+abi.VolSbGeneration), load64(sb+abi.VolSbJournalSeq), load64(sb+abi.VolSbJournalHead)
	// A transaction fits the journal twice and the cache with room left.
	v.txMax = min(volTxMax, v.jLen/2-2, uint64(max(vcap/2, 3*volTxSpare)))
	v.ro = sw.ro || blkDevs[uint(k)%abi.MaxDisks].ro
	if volReplay(k) < 0 {
		if v.ro {
			warn("unigo: a read-only block volume holds more committed changes not yet in place than memory does: mount it read-write once\n")
		}
		return false
	}
	v.used = true
	if !volScan(k) {
		v.used = false
		return false
	}
	root := volNode(k, abi.VolRootInode)
	if root < 0 || !tmpIsDir(uint32(root)) {
		v.used = false
		return false
	}
	v.root = uint32(root)
	if !v.ro {
		// The mount point, for unigo volume ls and cp; the journal starts over.
		lm := sb + abi.VolSbLastMount
		memclr(lm, 256)
		store8(lm, '/')
		memmove(lm+1, uintptr(unsafe.Pointer(&sw.name[0])), sw.nlen)
		v.head = 0
		if volWriteSuper(k) != 0 || volCommitFn(k) != 0 {
			v.used = false
			return false
		}
	}
	m := &mounts[1+uint(w)%abi.MaxShares]
	m.used, m.ro, m.nlen, m.root = true, v.ro, sw.nlen, vnode(fsTmp<<24|uint32(root))
	m.name = sw.name
	return true
}

// volReadSuper reads disk k's superblocks into vols[k].sb: the valid one
// with the higher generation.
//
//go:nosplit
func volReadSuper(k int) bool {
	v := &vols[uint(k)%abi.MaxDisks]
	size := uint64(blkSize(k))
	ok0 := volReadFn(k, 0, v.sb) && volSuperOK(v.sb, size)
	ok1 := volReadFn(k, 1, volSpare) && volSuperOK(volSpare, size)
	if ok1 && (!ok0 || load64(volSpare+abi.VolSbGeneration) > load64(v.sb+abi.VolSbGeneration)) {
		memmove(v.sb, volSpare, volBS)
		return true
	}
	return ok0
}

// volReplay writes home the journal's committed transactions from its
// head on (a read-only volume keeps their blocks in the cache instead):
// how many there were, or -1 on an I/O error or, read-only, when they are
// more than half the cache. Replay is idempotent: a crash during it
// replays again.
//
//go:nosplit
func volReplay(k int) int {
	tmp := allocFrame()
	if tmp == 0 {
		return -1
	}
	n := volReplayWith(k, tmp)
	freeFrame(tmp)
	return n
}

// volReplayWith is volReplay with the frame tmp to read blocks into.
//
//go:nosplit
func volReplayWith(k int, tmp uintptr) int {
	v := &vols[uint(k)%abi.MaxDisks]
	d := volSpare
	done := 0
	for {
		at := v.jStart + v.head
		if !volReadFn(k, at, d) {
			return -1
		}
		n := uint64(load32(d + 4))
		if load32(d) != abi.VolJDescMagic || load64(d+8) != v.seq || n == 0 || n > abi.VolJMaxBlocks || v.head+n+2 > v.jLen {
			break
		}
		crc := crc32c(0, d, volBS)
		for i := uint64(0); i < n; i++ {
			if !volReadFn(k, at+1+i, tmp) {
				return -1
			}
			crc = crc32c(crc, tmp, volBS)
		}
		if !volReadFn(k, at+1+n, tmp) {
			return -1
		}
		if load32(tmp) != abi.VolJCommitMagic || load64(tmp+8) != v.seq || uint64(load32(tmp+4)) != n || load32(tmp+16) != crc {
			break // torn: it never committed
		}
		for i := uint64(0); i < n; i++ {
			home := load64(d + 16 + uintptr(i)*8)
			if home < v.bmStart || home >= v.blocks {
				return -1 // no transaction writes the superblocks or the journal
			}
			if !volReadFn(k, at+1+i, tmp) {
				return -1
			}
			if v.ro {
				// Nothing may be written: the block stays in the cache,
				// held there (dirty, but in no transaction) over the disk's.
				if volDirty >= vcap/2 {
					return -1 // more than the cache can hold
				}
				s := volGet(k, home, false)
				if s < 0 {
					return -1
				}
				memmove(volAddr(s), tmp, volBS)
				if b := &vbufs[uint(s)%volCacheN]; !b.dirty {
					b.dirty = true
					volDirty++
				}
				continue
			}
			if blkPutBlock(k, home*volBS, tmp) != 0 {
				return -1
			}
		}
		done++
		v.seq++
		v.head += n + 2
	}
	if done > 0 && !v.ro && blkFlush(k) != 0 {
		return -1
	}
	return done
}

// volScan counts volume k's free blocks and inodes, and frees the inodes
// that were removed while open when the volume last ran (nlink 0).
//
//go:nosplit
func volScan(k int) bool {
	v := &vols[uint(k)%abi.MaxDisks]
	v.free, v.freeIno = 0, 0
	const per = volBS * 8
	for bi := uint64(0); bi < v.bmLen; bi++ {
		s := volGet(k, v.bmStart+bi, true)
		if s < 0 {
			return false
		}
		p := volAddr(s)
		for i := uint64(0); i < volBS && bi*per+i*8 < v.blocks; i++ {
			c := load8(p + uintptr(i))
			for bit := uint64(0); bit < 8; bit++ {
				if b := bi*per + i*8 + bit; b >= v.data && b < v.blocks && c&(1<<bit) == 0 {
					v.free++
				}
			}
		}
	}
	const ipb = volBS / abi.VolInodeSize
	for bi := uint64(0); bi < v.inLen; bi++ {
		s := volGet(k, v.inStart+bi, true)
		if s < 0 {
			return false
		}
		for j := uint64(0); j < ipb; j++ {
			ino := bi*ipb + j
			p := volAddr(s) + uintptr(j)*abi.VolInodeSize
			switch {
			case ino == 0:
			case load32(p+abi.VolInMode) == 0:
				v.freeIno++
			case load32(p+abi.VolInNlink) == 0 && !v.ro:
				volFreeFromFn(k, uint32(ino), 0)
				volFreeInode(k, uint32(ino))
				if s = volGet(k, v.inStart+bi, true); s < 0 {
					return false
				}
			}
		}
	}
	return true
}

// volStatfs describes volume k in b (statfs(2)'s words).
//
//go:nosplit
func volStatfs(k int, b *[15]uint64) {
	v := &vols[uint(k)%abi.MaxDisks]
	b[0] = 0x554e4956 // "UNIV"
	b[2], b[3], b[4] = v.blocks, v.free, v.free
	b[5], b[6] = v.inLen*(volBS/abi.VolInodeSize)-1, v.freeIno
	b[10] = 0x0400 | 0x0002 | 0x0004 // ST_RELATIME, ST_NOSUID, ST_NODEV
	if v.ro {
		b[10] |= 0x0001
	}
}

// volOf returns the volume of tnode i, or -1 for /tmp's.
//
//go:nosplit
func volOf(i uint32) int { return int(tnodeOf(i).vol) - 1 }

// volReadOnly reports whether tnode i lies on a read-only volume.
//
//go:nosplit
func volReadOnly(i uint32) bool {
	k := volOf(i)
	return k >= 0 && vols[uint(k)%abi.MaxDisks].ro
}

// volSync commits tnode i's volume (fsync).
//
//go:nosplit
func volSync(i uint32) linux.Errno {
	if k := volOf(i); k >= 0 {
		return volCommitFn(k)
	}
	return 0
}

// volDevReadOnly reports whether volume k is mounted read-only.
//
//go:nosplit
func volDevReadOnly(k int) bool { return vols[uint(k)%abi.MaxDisks].ro }
