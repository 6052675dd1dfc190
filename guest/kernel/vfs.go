package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// The virtual file system: the mounted file systems, path resolution over
// them, and the operations the file system calls dispatch by file system.
// Mounted: the image's read-only files at / (rofs.go), a tmpfs at /tmp
// (tmpfs.go), the host folder shares (p9fs.go) and the block volumes
// (volfs.go, whose nodes are tnodes as /tmp's are), each on a name in the
// root. A node is a vnode: the file system in the top byte, that
// file system's own number below. Resolution follows path_resolution(7):
// component by component from the root or a directory, "..", mount points,
// symbolic links (40 at most, ELOOP beyond) and trailing slashes.

type vnode uint32

const (
	fsRofs = 0
	fsTmp  = 1
	fs9p   = 2 // every share: a node knows its share

	rootVn    vnode = fsRofs<<24 | 0 // the image's root entry
	tmpRootVn vnode = fsTmp<<24 | 0  // tmpfs's root node, mounted on /tmp

	// st_dev of each file system, so that os.SameFile tells them apart.
	devRofs = 1
	devTmp  = 2
	devP9   = 16 // + the share's index
	devVol  = 32 // + the block volume's disk

	maxName  = 255 // NAME_MAX
	maxPath  = 4096
	maxLinks = 40 // symbolic links per resolution, as Linux
)

//go:nosplit
func (v vnode) fs() uint32 { return uint32(v) >> 24 }

//go:nosplit
func (v vnode) ino() uint32 { return uint32(v) & 0xffffff }

// mountPt is a file system mounted on a name in the root.
type mountPt struct {
	used bool
	ro   bool
	nlen uintptr
	name [32]byte
	root vnode
}

// mounts are the mount points: /tmp, then the shares in their order.
var mounts [1 + abi.MaxShares]mountPt

// mountAt returns the root mounted on the n bytes at name in dir.
//
//go:nosplit
func mountAt(dir vnode, name, n uintptr) (vnode, bool) {
	if dir != rootVn {
		return 0, false
	}
	for i := range mounts {
		m := &mounts[i]
		if m.used && m.nlen == n && memeq(uintptr(unsafe.Pointer(&m.name[0])), name, n) {
			return m.root, true
		}
	}
	return 0, false
}

// mountOf returns the mount point whose root v is, or nil.
//
//go:nosplit
func mountOf(v vnode) *mountPt {
	for i := range mounts {
		if mounts[i].used && mounts[i].root == v {
			return &mounts[i]
		}
	}
	return nil
}

// vnReadOnly reports whether v lies on a read-only file system.
//
//go:nosplit
func vnReadOnly(v vnode) bool {
	switch v.fs() {
	case fsRofs:
		return true
	case fs9p:
		return mounts[1+uint(p9nodeOf(v.ino()).share)%abi.MaxShares].ro
	}
	return volReadOnly(v.ino())
}

// cwdVn is the working directory.
var cwdVn = rootVn

// umask is the file mode creation mask (umask(2)).
var umask uint32 = 0o022

//go:nosplit
func vnMode(v vnode) uint32 {
	switch v.fs() {
	case fsTmp:
		return tnodeOf(v.ino()).mode
	case fs9p:
		return p9nodeOf(v.ino()).mode
	}
	return rofsMode(int(v.ino()))
}

//go:nosplit
func vnIsDir(v vnode) bool { return vnMode(v)&linux.S_IFMT == linux.S_IFDIR }

//go:nosplit
func vnIsLink(v vnode) bool { return vnMode(v)&linux.S_IFMT == linux.S_IFLNK }

//go:nosplit
func vnSize(v vnode) uint64 {
	switch v.fs() {
	case fsTmp:
		return tnodeOf(v.ino()).size
	case fs9p:
		return p9Size(v.ino())
	}
	return rofsSize(int(v.ino()))
}

// vnChild returns the node named by the n bytes at name in directory dir:
// a mount point first, then the directory's own entry; ENOENT, or a share's
// error.
//
//go:nosplit
func vnChild(dir vnode, name, n uintptr) (vnode, linux.Errno) {
	if v, ok := mountAt(dir, name, n); ok {
		return v, 0
	}
	switch dir.fs() {
	case fsTmp:
		if i := tmpChild(dir.ino(), name, n); i >= 0 {
			return vnode(fsTmp<<24 | uint32(i)), 0
		}
		if e := volTakeErr(); e != 0 && tnodeOf(dir.ino()).vol != 0 {
			return 0, e // the volume could not be read: not a missing name
		}
		return 0, linux.ENOENT
	case fs9p:
		i, e := p9Child(dir.ino(), name, n)
		return p9vn(i), e
	}
	if i := rofsChild(int(dir.ino()), name, n); i >= 0 {
		return vnode(uint32(i)), 0
	}
	return 0, linux.ENOENT
}

// vnParent returns directory dir's parent, across a mount point; the
// root's is itself.
//
//go:nosplit
func vnParent(dir vnode) vnode {
	switch {
	case mountOf(dir) != nil:
		return rootVn
	case dir.fs() == fsTmp:
		return vnode(fsTmp<<24 | tmpParent(dir.ino()))
	case dir.fs() == fs9p:
		return p9vn(p9nodeOf(dir.ino()).parent)
	}
	return vnode(uint32(rofsParent(int(dir.ino()))))
}

// vnStat describes v in statBuf.
//
//go:nosplit
func vnStat(v vnode) linux.Errno {
	switch v.fs() {
	case fsTmp:
		tmpStat(v.ino())
	case fs9p:
		return p9Getattr(v.ino())
	default:
		rofsStat(int(v.ino()))
	}
	return 0
}

// readAt reads up to n bytes of the file open as fl at off into the
// checked address buf.
//
//go:nosplit
func readAt(fl *file, buf, n uintptr, off uint64) uintptr {
	v := fl.vn
	switch {
	case vnIsDir(v):
		return errno(linux.EISDIR)
	case v.fs() == fsTmp:
		return tmpRead(v.ino(), buf, n, off)
	case v.fs() == fs9p:
		return p9Read(fl, buf, n, off)
	}
	return rofsRead(int(v.ino()), buf, n, off)
}

// vnReadlink copies symbolic link v's target, at most max bytes, to the
// checked address buf: its length, or an errno.
//
//go:nosplit
func vnReadlink(v vnode, buf, max uintptr) (uintptr, linux.Errno) {
	switch {
	case !vnIsLink(v):
		return 0, linux.EINVAL
	case v.fs() == fs9p:
		return p9Readlink(v.ino(), buf, max)
	}
	k := min(max, uintptr(vnSize(v)))
	return tmpRead(v.ino(), buf, k, 0), 0
}

// A resolution's result: the node if found, and the directory and name of
// the last component, which creating calls use when it is missing.
type walkResult struct {
	v     vnode
	dir   vnode
	found bool // v exists
	last  bool // not found, but only the last component is missing: dir and name are valid
	slash bool // the path ended in a slash: it must name a directory
	nlen  uintptr
	name  [maxName + 1]byte
}

// Resolution works on kernel copies of the paths: two, for the calls that
// take two (rename, link), and two more that symbolic-link expansion
// alternates between. Trap context, one call at a time.
var (
	pathBufs [2][maxPath]byte
	linkBufs [2][maxPath]byte
	walks    [2]walkResult
)

//go:nosplit
func (r *walkResult) nameAddr() uintptr { return uintptr(unsafe.Pointer(&r.name[0])) }

// pathIn copies the NUL-terminated user path at p into pathBufs[w]: its
// length, or EFAULT, ENAMETOOLONG, or ENOENT for an empty path.
//
//go:nosplit
func pathIn(p uintptr, w int) (uintptr, linux.Errno) {
	dst := uintptr(unsafe.Pointer(&pathBufs[w%2][0]))
	for n := uintptr(0); ; n++ {
		if n == maxPath {
			return 0, linux.ENAMETOOLONG
		}
		if (n == 0 || (p+n)%pageSize == 0) && !userRange(p+n, 1) { // once a page
			return 0, linux.EFAULT
		}
		c := load8(p + n)
		store8(dst+n, c)
		if c == 0 {
			if n == 0 {
				return 0, linux.ENOENT // an empty path names nothing (path_resolution(7))
			}
			return n, 0
		}
	}
}

// startDir returns the directory a relative path is resolved from: the
// working directory for AT_FDCWD, else the directory open as dirfd.
//
//go:nosplit
func startDir(dirfd uintptr) (vnode, linux.Errno) {
	if int32(dirfd) == linux.AT_FDCWD {
		return cwdVn, 0
	}
	fl := getFile(dirfd)
	if fl == nil {
		return 0, linux.EBADF
	}
	if fl.kind != fdVnode || !vnIsDir(fl.vn) {
		return 0, linux.ENOTDIR
	}
	return fl.vn, 0
}

// walk resolves the n bytes of pathBufs[w] from dirfd into walks[w]. A
// symbolic link as the last component is followed if follow is set (or the
// path ends in a slash). It returns 0 when the node exists, else the errno;
// ENOENT with r.last set when only the last component is missing.
//
//go:nosplit
func walk(w int, dirfd uintptr, n uintptr, follow bool) linux.Errno {
	r := &walks[w%2]
	r.found, r.last, r.slash, r.nlen = false, false, false, 0
	p := uintptr(unsafe.Pointer(&pathBufs[w%2][0]))
	end := p + n
	cur := rootVn
	if load8(p) != '/' {
		var e linux.Errno
		if cur, e = startDir(dirfd); e != 0 {
			return e
		}
	}
	r.dir, r.v = cur, cur
	links := 0
	for {
		for p < end && load8(p) == '/' {
			p++
		}
		if p == end {
			r.v, r.found = cur, true
			return 0
		}
		q := p
		for q < end && load8(q) != '/' {
			q++
		}
		k := q - p
		if k > maxName {
			return linux.ENAMETOOLONG
		}
		rest := q
		for rest < end && load8(rest) == '/' {
			rest++
		}
		last := rest == end
		if !vnIsDir(cur) {
			return linux.ENOTDIR
		}
		if last {
			r.dir, r.nlen, r.slash = cur, k, q < end
			memmove(r.nameAddr(), p, k)
		}
		switch {
		case k == 1 && load8(p) == '.':
			p = q
			continue
		case k == 2 && load8(p) == '.' && load8(p+1) == '.':
			cur = vnParent(cur)
			p = q
			continue
		}
		c, e := vnChild(cur, p, k)
		if e != 0 {
			if last && e == linux.ENOENT {
				r.last = true
			}
			return e
		}
		if vnIsLink(c) && (!last || follow || q < end) {
			if links++; links > maxLinks {
				return linux.ELOOP
			}
			// The new path is the link's target, then what was left.
			buf := uintptr(unsafe.Pointer(&linkBufs[links%2][0]))
			tlen, e := vnReadlink(c, buf, maxPath)
			if e != 0 {
				return e
			}
			if tlen == 0 || tlen+(end-q) > maxPath {
				return linux.ENOENT
			}
			memmove(buf+tlen, q, end-q)
			p, end = buf, buf+tlen+(end-q)
			if load8(p) == '/' {
				cur = rootVn
			}
			continue
		}
		if last && q < end && !vnIsDir(c) {
			return linux.ENOTDIR // "file/"
		}
		cur = c
		p = q
	}
}

// resolve copies the user path at path and resolves it into walks[w]: the
// errno of either step.
//
//go:nosplit
func resolve(w int, dirfd, path uintptr, follow bool) linux.Errno {
	n, e := pathIn(path, w)
	if e != 0 {
		return e
	}
	return walk(w, dirfd, n, follow)
}

// memeq reports whether the n bytes at a and b are equal.
//
//go:nosplit
func memeq(a, b, n uintptr) bool {
	for i := uintptr(0); i < n; i++ {
		if load8(a+i) != load8(b+i) {
			return false
		}
	}
	return true
}

// dots returns the address of "..": the names of a directory's first two
// entries.
//
//go:nosplit
func dots() uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(".."))) }

// putDirent writes one struct linux_dirent64 (getdents64(2)) at buf if it
// fits in n bytes: its length.
//
//go:nosplit
func putDirent(buf, n uintptr, ino, next uint64, typ uint8, name, nlen uintptr) (uintptr, bool) {
	reclen := (19 + nlen + 1 + 7) &^ 7 // ino, off, reclen, type, name, NUL, aligned
	if reclen > n {
		return 0, false
	}
	store64(buf, ino)
	store64(buf+8, next)
	store8(buf+16, byte(reclen))
	store8(buf+17, byte(reclen>>8))
	store8(buf+18, typ)
	memmove(buf+19, name, nlen)
	memclr(buf+19+nlen, reclen-19-nlen)
	return reclen, true
}

// vnIno is v's inode number as stat shows it.
//
//go:nosplit
func vnIno(v vnode) uint64 {
	switch v.fs() {
	case fsTmp:
		return tmpIno(v.ino())
	case fs9p:
		return p9nodeOf(v.ino()).qpath
	}
	return rofsIno(int(v.ino()))
}

// The first working directory, from a "cwd=PATH" word (unigo run -w).
var (
	cwdStart    [maxPath]byte
	cwdStartLen uintptr
)

// cwdWord records a "cwd=PATH" word in [p, end).
//
//go:nosplit
func cwdWord(p, end uintptr) {
	const pre = abi.CwdWordPrefix
	if end-p <= uintptr(len(pre)) || end-p-uintptr(len(pre)) >= maxPath || !memeq(p, uintptr(unsafe.Pointer(unsafe.StringData(pre))), uintptr(len(pre))) {
		return
	}
	cwdStartLen = end - p - uintptr(len(pre))
	memmove(uintptr(unsafe.Pointer(&cwdStart[0])), p+uintptr(len(pre)), cwdStartLen)
}

// startCwd enters the first working directory, once the mounts are there.
//
//go:nosplit
func startCwd() {
	if cwdStartLen == 0 {
		return
	}
	memmove(uintptr(unsafe.Pointer(&pathBufs[0][0])), uintptr(unsafe.Pointer(&cwdStart[0])), cwdStartLen)
	if walk(0, uintptr(atFDCWD()), cwdStartLen, true) != 0 || !vnIsDir(walks[0].v) {
		warn("unigo: the working directory (-w) is not a directory in the guest: starting in /\n")
		return
	}
	cwdVn = walks[0].v
}

// sameFS reports whether a and b lie on one file system: renames and
// links do not cross (EXDEV).
//
//go:nosplit
func sameFS(a, b vnode) bool {
	switch {
	case a.fs() != b.fs():
		return false
	case a.fs() == fs9p:
		return p9SameShare(a, b)
	case a.fs() == fsTmp:
		return tnodeOf(a.ino()).vol == tnodeOf(b.ino()).vol
	}
	return true
}
