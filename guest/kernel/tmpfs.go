package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// tmpfs: the memory file system mounted at /tmp. Nodes are a static table;
// a node's bytes live in 4 KiB frames found through a radix tree of index
// pages (512 entries each, as the x86 page tables), so that a byte's frame is
// depth lookups away and holes cost nothing. A directory's bytes are its
// entries: records that never cross a page, freed in place (ino 0) and
// reused by a later entry that fits, so that a getdents64 position, a byte
// offset, stays valid while the directory changes. As on Linux, the size is
// limited (half of RAM) and fsync has nothing to do. The nodes of block
// volumes are tnodes too, whose pages are the volume's blocks (volfs.go):
// where the two differ, a node's vol says which it is.

const (
	maxTnodes = 4096
	tmpDepth  = 4 // levels at most: 2^36 pages

	// A directory record: ino (node+1, 0 for a free record) at 0, reclen at
	// 4, name length at 6, DT_ type at 7, the name from 8, 8-byte aligned.
	recHdr = 8

	dtDir = 4
	dtReg = 8
	dtLnk = 10
)

type tnode struct {
	mode   uint32 // type and permission bits; 0: a free node
	nlink  uint32
	uid    uint32
	gid    uint32
	parent uint32 // a directory's parent (the root's is itself)
	opens  uint16 // open descriptions and shared mappings: a node with nlink 0 lives until none is left
	lockSh uint16 // flock(2) shared holders
	lockEx bool   // flock(2): held exclusively
	depth  uint8  // index levels above the data pages
	vol    uint8  // 1 + the block volume whose inode dino this caches; 0 for /tmp's
	hnext  uint16 // a volume node's next in its hash chain
	dino   uint32
	tick   uint64 // when a volume node was last looked up: the least recent is evicted
	root   uintptr
	size   uint64
	atime  int64
	mtime  int64
	ctime  int64
}

var (
	tnodes   *[maxTnodes]tnode // a kernel table (ktab.go)
	tmpPages uintptr           // frames in use, index pages included
	tmpLimit uintptr           // frames allowed: ENOSPC beyond
)

// tmpInit makes the root directory and sets the size limit: half of the
// RAM left after the kernel, as Linux's default for tmpfs.
//
//go:nosplit
func tmpInit() {
	tmpLimit = (physEnd - physNext) / pageSize / 2
	now := walltime()
	if ktabGrow(ktabTnodes, unsafe.Sizeof(tnode{}), maxTnodes) != 0 {
		fatal("no memory for the tmpfs root")
	}
	tnodes[0] = tnode{mode: linux.S_IFDIR | 0o1777, nlink: 2, atime: now, mtime: now, ctime: now}
	mounts[0] = mountPt{used: true, nlen: 3, name: [32]byte{'t', 'm', 'p'}, root: tmpRootVn}
}

//go:nosplit
func tnodeOf(i uint32) *tnode { return &tnodes[i%maxTnodes] }

//go:nosplit
func tmpIsDir(i uint32) bool { return tnodeOf(i).mode&linux.S_IFMT == linux.S_IFDIR }

//go:nosplit
func tmpAllocPage() uintptr {
	if tmpPages >= tmpLimit {
		return 0
	}
	p := allocFrame()
	if p != 0 {
		tmpPages++
	}
	return p
}

//go:nosplit
func tmpFreePage(p uintptr) {
	freeFrame(p)
	tmpPages--
}

// tmpSlot returns the address of the word that holds the frame of page idx
// of node n, or 0 where there is none (the tree is missing that part, or with
// alloc, a frame could not be had). With alloc it grows the tree to reach idx.
//
//go:nosplit
func tmpSlot(n *tnode, idx uint64, alloc bool) uintptr {
	for idx>>(9*uint64(n.depth)) != 0 {
		if !alloc || n.depth == tmpDepth {
			return 0
		}
		if n.root != 0 {
			p := tmpAllocPage()
			if p == 0 {
				return 0
			}
			store64(p, uint64(n.root))
			n.root = p
		}
		n.depth++
	}
	slot := uintptr(unsafe.Pointer(&n.root))
	for d := uint64(n.depth); d > 0; d-- {
		t := uintptr(load64(slot))
		if t == 0 {
			if !alloc {
				return 0
			}
			if t = tmpAllocPage(); t == 0 {
				return 0
			}
			store64(slot, uint64(t))
		}
		slot = t + uintptr(idx>>(9*(d-1))&511)*8
	}
	return slot
}

// tmpPage returns the frame of page idx of node n, allocating it (and its
// index pages) if alloc is set; 0 for a hole, or when no frame is left.
//
//go:nosplit
func tmpPage(n *tnode, idx uint64, alloc bool) uintptr {
	if n.vol != 0 {
		return volPageFn(n, idx, alloc, alloc)
	}
	return tmpMemPage(n, idx, alloc)
}

// tmpMemPage is tmpPage for a node of /tmp, whose pages are frames (the
// one shared mappings map, filemap.go).
//
//go:nosplit
func tmpMemPage(n *tnode, idx uint64, alloc bool) uintptr {
	slot := tmpSlot(n, idx, alloc)
	if slot == 0 {
		return 0
	}
	p := uintptr(load64(slot))
	if p == 0 && alloc {
		if p = tmpAllocPage(); p != 0 {
			store64(slot, uint64(p))
		}
	}
	return p
}

// tmpPageW is tmpPage for a change to an existing page (no allocation).
//
//go:nosplit
func tmpPageW(n *tnode, idx uint64) uintptr {
	if n.vol != 0 {
		return volPageFn(n, idx, false, true)
	}
	return tmpPage(n, idx, false)
}

// tmpFreeAll frees every page of n: the data and the index.
//
//go:nosplit
func tmpFreeAll(n *tnode) {
	if n.vol != 0 {
		volFreeFromFn(int(n.vol)-1, n.dino, 0)
		return
	}
	if n.root != 0 && n.depth == 0 {
		tmpFreePage(n.root)
	} else if n.root != 0 {
		// A walk of the tree with an explicit stack: trap context may not
		// recurse without a bound the linker can see.
		var page, pos [8]uintptr
		top := 0
		page[0] = n.root
		for top >= 0 {
			t := uint(top) % 8
			if pos[t] == 512 {
				tmpFreePage(page[t])
				top--
				continue
			}
			c := uintptr(load64(page[t] + pos[t]*8))
			pos[t]++
			switch {
			case c == 0:
			case int(n.depth)-top == 1: // entries of the last level are data pages
				tmpFreePage(c)
			default:
				top++
				page[(t+1)%8], pos[(t+1)%8] = c, 0
			}
		}
	}
	n.root, n.depth = 0, 0
}

// tmpTruncate sets n's size, freeing the pages past it (unless the file is
// mapped, where they are zeroed and kept: a mapping may still point at
// them) and zeroing the tail of the last one, so that a later extension
// reads zeros.
//
//go:nosplit
func tmpTruncate(n *tnode, size uint64) linux.Errno {
	if size>>(12+9*tmpDepth) != 0 {
		return linux.EFBIG
	}
	old := n.size
	n.size = size
	if size >= old {
		return 0
	}
	if off := size % pageSize; off != 0 {
		if p := tmpPageW(n, size/pageSize); p != 0 {
			memclr(p+uintptr(off), uintptr(pageSize-off))
		}
	}
	if n.vol != 0 {
		volFreeFromFn(int(n.vol)-1, n.dino, (size+pageSize-1)/pageSize)
		return volTakeErr()
	}
	if size == 0 && n.opens == 0 {
		tmpFreeAll(n)
		return 0
	}
	for idx := (size + pageSize - 1) / pageSize; idx < (old+pageSize-1)/pageSize; idx++ {
		slot := tmpSlot(n, idx, false)
		if slot == 0 || load64(slot) == 0 {
			continue
		}
		p := uintptr(load64(slot))
		if n.opens != 0 { // perhaps mapped: keep the frame
			memclr(p, pageSize)
			continue
		}
		store64(slot, 0)
		tmpFreePage(p)
	}
	return 0
}

// tmpRead copies up to len bytes of node i from off to the kernel or
// checked user address buf; holes read as zeros.
//
//go:nosplit
func tmpRead(i uint32, buf, n uintptr, off uint64) uintptr {
	t := tnodeOf(i)
	if off >= t.size {
		return 0
	}
	n = min(n, uintptr(t.size-off))
	for done := uintptr(0); done < n; {
		o := off + uint64(done)
		k := min(n-done, uintptr(pageSize-o%pageSize))
		if p := tmpPage(t, o/pageSize, false); p != 0 {
			memmove(buf+done, p+uintptr(o%pageSize), k)
		} else {
			memclr(buf+done, k)
		}
		done += k
	}
	if t.vol != 0 {
		if e := volTakeErr(); e != 0 {
			return errno(e)
		}
		return n // noatime: a read writes nothing
	}
	t.atime = walltime()
	return n
}

// tmpWrite copies len bytes from buf into node i at off, growing it: the
// bytes written, or ENOSPC when none could be.
//
//go:nosplit
func tmpWrite(i uint32, buf, n uintptr, off uint64) uintptr {
	t := tnodeOf(i)
	if (off+uint64(n))>>(12+9*tmpDepth) != 0 || off+uint64(n) < off {
		return errno(linux.EFBIG)
	}
	done := uintptr(0)
	for done < n {
		if t.vol != 0 && volFull(int(t.vol)-1) {
			volCommitFn(int(t.vol) - 1) // a write need not commit whole: this much has
		}
		o := off + uint64(done)
		k := min(n-done, uintptr(pageSize-o%pageSize))
		var p uintptr
		if t.vol != 0 && k == pageSize {
			p = volPageOverFn(t, o/pageSize) // written whole: not read first
		} else {
			p = tmpPage(t, o/pageSize, true)
		}
		if p == 0 {
			break
		}
		memmove(p+uintptr(o%pageSize), buf+done, k)
		done += k
		if end := off + uint64(done); end > t.size {
			t.size = end
		}
	}
	if e := volTakeErr(); e != 0 && done == 0 {
		return errno(e)
	}
	if t.vol != 0 && fmapCopies != 0 {
		fmapUpdate(vnode(fsTmp<<24|i), off, buf, done)
	}
	if done == 0 && n > 0 {
		return errno(linux.ENOSPC)
	}
	t.mtime = walltime()
	t.ctime = t.mtime
	return done
}

// tmpNew takes a free node with mode, or returns -1 (ENOSPC: Linux's
// answer when tmpfs runs out of inodes).
//
//go:nosplit
func tmpNew(mode uint32) int {
	i := tnodeFree()
	if i >= 0 {
		now := walltime()
		tnodes[i] = tnode{mode: mode, nlink: 1, atime: now, mtime: now, ctime: now}
	}
	return i
}

// tnodeFree returns a free tnode: one never used, or a volume's node
// nothing holds, evicted; -1 if there is none.
//
//go:nosplit
func tnodeFree() int {
	for i := 1; i < ktabLen(ktabTnodes); i++ {
		if tnodes[i].mode == 0 && tnodes[i].vol == 0 {
			return i
		}
	}
	if i := ktabGrow(ktabTnodes, unsafe.Sizeof(tnode{}), maxTnodes); i >= 0 {
		return i
	}
	return volEvictFn()
}

// tmpNewIn makes a node of mode for directory dir's file system.
//
//go:nosplit
func tmpNewIn(dir uint32, mode uint32) int {
	if tnodeOf(dir).vol != 0 {
		return volNewFn(dir, mode)
	}
	return tmpNew(mode)
}

// tmpRelease frees node i if nothing names or holds it any more (a
// descriptor, a mapping, or being the working directory).
//
//go:nosplit
func tmpRelease(i uint32) {
	t := tnodeOf(i)
	if t.nlink == 0 && t.opens == 0 && i != 0 && vnode(fsTmp<<24|i) != cwdVn {
		if t.vol != 0 {
			volFreeNodeFn(i)
		} else {
			tmpFreeAll(t)
		}
		*t = tnode{}
	}
}

// tmpFind returns the byte offset of the record named by the n bytes at
// name in directory dir, or -1.
//
//go:nosplit
func tmpFind(dir uint32, name, n uintptr) int64 {
	t := tnodeOf(dir)
	for off := uint64(0); off < t.size; {
		r := tmpRec(t, off)
		if r == 0 {
			return -1
		}
		rl := uint64(load16u(r + 4))
		if rl < recHdr {
			return -1 // a broken directory: end the scan
		}
		if load32(r) != 0 && uintptr(load8(r+6)) == n && memeq(r+recHdr, name, n) {
			return int64(off)
		}
		off += rl
	}
	return -1
}

// tmpRec returns the address of the record at byte off of directory t.
//
//go:nosplit
func tmpRec(t *tnode, off uint64) uintptr {
	p := tmpPage(t, off/pageSize, false)
	if p == 0 {
		return 0
	}
	return p + uintptr(off%pageSize)
}

// tmpChild returns the node named in directory dir, or -1.
//
//go:nosplit
func tmpChild(dir uint32, name, n uintptr) int {
	off := tmpFind(dir, name, n)
	if off < 0 {
		return -1
	}
	return recNode(dir, load32(tmpRec(tnodeOf(dir), uint64(off))))
}

// recNode returns the node a record of directory dir holding ino names.
//
//go:nosplit
func recNode(dir uint32, ino uint32) int {
	if k := int(tnodeOf(dir).vol) - 1; k >= 0 {
		return volNodeFn(k, ino)
	}
	return int(ino) - 1
}

// tmpRecW is tmpRec for a change to the record.
//
//go:nosplit
func tmpRecW(t *tnode, off uint64) uintptr {
	p := tmpPageW(t, off/pageSize)
	if p == 0 {
		return 0
	}
	return p + uintptr(off%pageSize)
}

// tmpParent returns directory i's parent: the tnode, which for a volume's
// may have to be loaded.
//
//go:nosplit
func tmpParent(i uint32) uint32 {
	if tnodeOf(i).vol != 0 {
		return volParentFn(i)
	}
	return tnodeOf(i).parent
}

// tmpSetParent makes dir directory i's parent.
//
//go:nosplit
func tmpSetParent(i, dir uint32) {
	if tnodeOf(i).vol != 0 {
		tnodeOf(i).parent = tnodeOf(dir).dino
		return
	}
	tnodeOf(i).parent = dir
}

//go:nosplit
func dtype(mode uint32) uint8 {
	switch mode & linux.S_IFMT {
	case linux.S_IFDIR:
		return dtDir
	case linux.S_IFLNK:
		return dtLnk
	}
	return dtReg
}

// tmpAddEntry adds the name to directory dir for node child: into the first
// free record it fits, else at the end. It fails with ENOSPC only.
//
//go:nosplit
func tmpAddEntry(dir uint32, name, n uintptr, child uint32) linux.Errno {
	t := tnodeOf(dir)
	need := (recHdr + uint64(n) + 7) &^ 7
	off := uint64(0)
	for off < t.size {
		r := tmpRec(t, off)
		rl := uint64(load16u(r + 4))
		if rl < recHdr {
			return linux.EIO
		}
		if load32(r) == 0 && rl >= need {
			break
		}
		off += rl
	}
	if off >= t.size { // append, starting a page where this one has no room
		off = t.size
		if room := pageSize - off%pageSize; room < need {
			p := tmpPage(t, off/pageSize, true)
			if p == 0 || tmpPage(t, off/pageSize+1, true) == 0 {
				return linux.ENOSPC
			}
			r := p + uintptr(off%pageSize)
			store32(r, 0)
			store8(r+4, uint8(room))
			store8(r+5, uint8(room>>8))
			off += room
		}
		p := tmpPage(t, off/pageSize, true)
		if p == 0 {
			return linux.ENOSPC
		}
		r := p + uintptr(off%pageSize)
		store8(r+4, uint8(need))
		store8(r+5, uint8(need>>8))
		t.size = off + need
	}
	r := tmpRecW(t, off)
	if r == 0 {
		return linux.EIO
	}
	store32(r, uint32(tmpIno(child)))
	store8(r+6, uint8(n))
	store8(r+7, dtype(tnodeOf(child).mode))
	memmove(r+recHdr, name, n)
	t.mtime = walltime()
	t.ctime = t.mtime
	return 0
}

// tmpDropEntry frees the record at off of directory dir.
//
//go:nosplit
func tmpDropEntry(dir uint32, off int64) {
	t := tnodeOf(dir)
	if r := tmpRecW(t, uint64(off)); r != 0 {
		store32(r, 0)
	}
	t.mtime = walltime()
	t.ctime = t.mtime
}

// tmpEmpty reports whether directory dir has no entries.
//
//go:nosplit
func tmpEmpty(dir uint32) bool {
	t := tnodeOf(dir)
	for off := uint64(0); off < t.size; {
		r := tmpRec(t, off)
		if r == 0 || load16u(r+4) < recHdr {
			return true
		}
		if load32(r) != 0 {
			return false
		}
		off += uint64(load16u(r + 4))
	}
	return true
}

// tmpGetdents writes directory dir's entries from position *pos: ".", "..",
// then each record, at position 2 + its byte offset.
//
//go:nosplit
func tmpGetdents(dir uint32, self, parent uint64, pos *uint64, buf, n uintptr) uintptr {
	t := tnodeOf(dir)
	done := uintptr(0)
	for {
		var name, nlen uintptr
		var ino uint64
		typ := uint8(dtDir)
		next := *pos + 1
		switch p := *pos; {
		case p == 0:
			ino, name, nlen = self, dots(), 1
		case p == 1:
			ino, name, nlen = parent, dots(), 2
		default:
			off := p - 2
			if off >= t.size {
				return done
			}
			r := tmpRec(t, off)
			rl := uint64(load16u(r + 4))
			if rl < recHdr {
				return done
			}
			next = p + rl
			if load32(r) == 0 {
				*pos = next
				continue
			}
			ino, name, nlen, typ = uint64(load32(r)), r+recHdr, uintptr(load8(r+6)), load8(r+7) // the record holds tmpIno
		}
		k, ok := putDirent(buf+done, n-done, ino, next, typ, name, nlen)
		if !ok {
			if done == 0 {
				return errno(linux.EINVAL)
			}
			return done
		}
		done += k
		*pos = next
	}
}

// tmpIno is node i's inode number as stat shows it.
//
//go:nosplit
func tmpIno(i uint32) uint64 {
	if t := tnodeOf(i); t.vol != 0 {
		return uint64(t.dino)
	}
	return uint64(i) + 1
}

// tmpStat describes node i in statBuf.
//
//go:nosplit
func tmpStat(i uint32) {
	t := tnodeOf(i)
	statBuf = linux.Stat{Dev: tmpDev(t), Ino: tmpIno(i), Nlink: uint64(t.nlink), Mode: t.mode, UID: t.uid, GID: t.gid, Blksize: pageSize}
	statBuf.Size = int64(t.size)
	statBuf.Blocks = int64(t.size+pageSize-1) / pageSize * 8
	statBuf.Atime = nsTimespec(t.atime)
	statBuf.Mtime = nsTimespec(t.mtime)
	statBuf.Ctime = nsTimespec(t.ctime)
}

// tmpDev is node t's st_dev: /tmp's, or its volume's.
//
//go:nosplit
func tmpDev(t *tnode) uint64 {
	if t.vol != 0 {
		return devVol + uint64(t.vol) - 1
	}
	return devTmp
}

//go:nosplit
func nsTimespec(ns int64) linux.Timespec {
	return linux.Timespec{Sec: ns / 1e9, Nsec: ns % 1e9}
}
