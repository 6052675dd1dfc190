package kernel

import "unigo.dev/unigo/abi/linux"

// mmap(2) of files. A private mapping, or any mapping of the image's
// files (which never change), is anonymous memory filled with the file's
// bytes. A shared mapping of a tmpfs file maps the file's own frames, so
// that it sees every later write(2) and its stores are the file's: the
// frames present when it is made are mapped at once, the others (holes,
// pages the file grows into) at their first touch, and a touch past the end
// of the file is SIGBUS, as on Linux. Such frames carry pteShared, so that
// unmapping leaves them to the file, and the mapping holds the node open
// until it is gone. A shared mapping of a block volume's file, or of a
// share's, is a copy that each later write(2) to the file from the guest
// updates (fmapUpdate), since the volume's blocks move through a cache and
// a share's file lives on the host: it is read-only (what databases such
// as bbolt map), reads past the end of the file see zeros, and a share's
// copy does not see what the host itself writes to the file (as Linux's
// 9P without a cache).

const (
	pteShared = 1 << 10 // software bit: a file's frame, not the mapping's
	maxFmaps  = 64
)

// fmaps are the shared file mappings.
var fmaps [maxFmaps]struct {
	start, end uintptr
	vn         vnode
	copied     bool   // a copy of the file, not its frames
	pgoff      uint64 // the file page at start
}

// fmapCopies counts the copied mappings: writes look for them only then.
var fmapCopies int

// fileMmap maps n bytes (a page multiple) of the file open as fd from
// offset off at addr, which mmap has reserved.
//
//go:nosplit
func fileMmap(addr, n, prot, flags, fd uintptr, off uint64) uintptr {
	fl := getFile(fd)
	shared := flags&linux.MAP_SHARED != 0
	switch {
	case fl == nil:
		return errno(linux.EBADF)
	case fl.kind != fdVnode || vnIsDir(fl.vn):
		return errno(linux.ENODEV)
	case off%pageSize != 0 || int64(off) < 0:
		return errno(linux.EINVAL)
	case fl.flags&linux.O_ACCMODE == linux.O_WRONLY,
		shared && prot&linux.PROT_WRITE != 0 && fl.flags&linux.O_ACCMODE != linux.O_RDWR:
		return errno(linux.EACCES)
	}
	unmap(addr, addr+n) // MAP_FIXED replaces what was there
	fmapRemove(addr, addr+n)
	if prot == linux.PROT_NONE {
		return addr
	}
	copied := shared && (fl.vn.fs() == fs9p || fl.vn.fs() == fsTmp && volOf(fl.vn.ino()) >= 0)
	switch {
	case copied && prot&linux.PROT_WRITE != 0:
		return errno(linux.ENODEV) // stores would have to reach the file: not yet
	}
	if !shared || fl.vn.fs() != fsTmp || copied {
		if !populate(addr, addr+n, true) {
			return errno(linux.ENOMEM)
		}
		if size := vnSize(fl.vn); off < size {
			readAt(fl, addr, min(n, uintptr(size-off)), off)
		}
		if !copied {
			return addr
		}
	}
	i := fmapFree()
	if i < 0 {
		return errno(linux.ENOMEM)
	}
	m := &fmaps[uint(i)%maxFmaps]
	m.start, m.end, m.vn, m.pgoff, m.copied = addr, addr+n, fl.vn, off/pageSize, copied
	fmapHold(fl.vn)
	if copied {
		fmapCopies++
		return addr
	}
	t := tnodeOf(fl.vn.ino())
	for va := addr; va < addr+n; va += pageSize {
		idx := m.pgoff + uint64(va-addr)/pageSize
		if idx*pageSize >= t.size {
			break
		}
		if p := tmpMemPage(t, idx, false); p != 0 {
			if !mapShared(va, p) {
				return errno(linux.ENOMEM)
			}
		}
	}
	return addr
}

// mapShared maps frame p of a file at va.
//
//go:nosplit
func mapShared(va, p uintptr) bool {
	e := pte(va, true)
	if e == 0 {
		return false
	}
	// The entry was not present (fileMmap unmapped the range first), so no
	// TLB holds it: no INVLPG, which the page-fault path could not make.
	store64(e, uint64(p|pteUserRW|pteShared))
	return true
}

// fmapFault maps the file page a shared mapping has at va, if the file
// reaches it, and reports whether it did.
//
//go:nosplit
func fmapFault(va uintptr) bool {
	m := fmapAt(va)
	if m < 0 {
		return false
	}
	r := &fmaps[m%maxFmaps]
	if r.copied {
		return false // a copy is all there from the start: nothing to map
	}
	t := tnodeOf(r.vn.ino())
	idx := r.pgoff + uint64(va-r.start)/pageSize
	if idx*pageSize >= t.size {
		return false // past the end: SIGBUS
	}
	p := tmpMemPage(t, idx, true)
	return p != 0 && mapShared(va&^(pageSize-1), p)
}

// fmapAt returns the shared mapping that holds va, or -1.
//
//go:nosplit
func fmapAt(va uintptr) int {
	for k := range fmaps {
		if va >= fmaps[k].start && va < fmaps[k].end {
			return k
		}
	}
	return -1
}

// fmapRemove takes [start, end) out of the shared mappings; a mapping
// split in two holds its node twice.
//
//go:nosplit
func fmapRemove(start, end uintptr) {
	for k := range fmaps {
		m := &fmaps[k]
		if m.end == 0 || end <= m.start || m.end <= start {
			continue
		}
		switch {
		case start <= m.start && m.end <= end:
			if m.copied {
				fmapCopies--
			}
			m.start, m.end, m.copied = 0, 0, false
			fmapDrop(m.vn)
		case start <= m.start:
			m.pgoff += uint64(end-m.start) / pageSize
			m.start = end
		case m.end <= end:
			m.end = start
		default:
			j := fmapFree()
			if j < 0 {
				continue // no room for the upper part: the hole stays in the record, which keeps the node safe
			}
			u := &fmaps[j%maxFmaps]
			u.start, u.end, u.vn, u.copied = end, m.end, m.vn, m.copied
			if m.copied {
				fmapCopies++
			}
			u.pgoff = m.pgoff + uint64(end-m.start)/pageSize
			fmapHold(m.vn)
			m.end = start
		}
	}
}

// fmapFree returns a free entry of fmaps, or -1.
//
//go:nosplit
func fmapFree() int {
	for k := range fmaps {
		if fmaps[k].end == 0 {
			return k
		}
	}
	return -1
}

// fmapHold and fmapDrop take and let go of a mapping's hold on node v,
// which keeps it (and a removed file) while mapped.
//
//go:nosplit
func fmapHold(v vnode) {
	if v.fs() == fs9p {
		p9nodeOf(v.ino()).opens++
		return
	}
	tnodeOf(v.ino()).opens++
}

//go:nosplit
func fmapDrop(v vnode) {
	if v.fs() == fs9p {
		p9Unhold(v)
		return
	}
	tnodeOf(v.ino()).opens--
	tmpRelease(v.ino())
}

// fmapUpdate copies n bytes just written at off of node v (from the
// checked address src) into its copied mappings, where their pages are.
//
//go:nosplit
func fmapUpdate(v vnode, off uint64, src, n uintptr) {
	for k := range fmaps {
		m := &fmaps[k]
		if m.end == 0 || !m.copied || m.vn != v {
			continue
		}
		lo, hi := m.pgoff*pageSize, m.pgoff*pageSize+uint64(m.end-m.start)
		for o := max(off, lo); o < min(off+uint64(n), hi); {
			va := m.start + uintptr(o-lo)
			k := min(uintptr(pageSize)-va%pageSize, uintptr(off+uint64(n)-o))
			if e := pte(va, false); e != 0 && load64(e)&ptePresent != 0 {
				memmove(uintptr(load64(e)&pteAddrMask)+va%pageSize, src+uintptr(o-off), k)
			}
			o += uint64(k)
		}
	}
}

// fmapCopied reports whether va lies in a copied mapping.
//
//go:nosplit
func fmapCopied(va uintptr) bool {
	m := fmapAt(va)
	return m >= 0 && fmaps[uint(m)%maxFmaps].copied
}
