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
// until it is gone.

const (
	pteShared = 1 << 10 // software bit: a file's frame, not the mapping's
	maxFmaps  = 64
)

// fmaps are the shared file mappings.
var fmaps [maxFmaps]struct {
	start, end uintptr
	node       uint32
	pgoff      uint64 // the file page at start
}

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
	if shared && (fl.vn.fs() == fs9p || fl.vn.fs() == fsTmp && volOf(fl.vn.ino()) >= 0) {
		// A host file can change under a copy, and a volume's blocks move
		// through a cache: no shared mappings of shares and volumes yet.
		return errno(linux.ENODEV)
	}
	if !shared || fl.vn.fs() != fsTmp {
		if !populate(addr, addr+n, true) {
			return errno(linux.ENOMEM)
		}
		if size := vnSize(fl.vn); off < size {
			readAt(fl, addr, min(n, uintptr(size-off)), off)
		}
		return addr
	}
	i := -1
	for k := range fmaps {
		if fmaps[k].end == 0 {
			i = k
			break
		}
	}
	if i < 0 {
		return errno(linux.ENOMEM)
	}
	m := &fmaps[i]
	m.start, m.end, m.node, m.pgoff = addr, addr+n, fl.vn.ino(), off/pageSize
	t := tnodeOf(m.node)
	t.opens++
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
	t := tnodeOf(r.node)
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
			node := m.node
			m.start, m.end = 0, 0
			tnodeOf(node).opens--
			tmpRelease(node)
		case start <= m.start:
			m.pgoff += uint64(end-m.start) / pageSize
			m.start = end
		case m.end <= end:
			m.end = start
		default:
			j := -1
			for i := range fmaps {
				if fmaps[i].end == 0 {
					j = i
					break
				}
			}
			if j < 0 {
				continue // no room for the upper part: the hole stays in the record, which keeps the node safe
			}
			u := &fmaps[j%maxFmaps]
			u.start, u.end, u.node = end, m.end, m.node
			u.pgoff = m.pgoff + uint64(end-m.start)/pageSize
			tnodeOf(m.node).opens++
			m.end = start
		}
	}
}
