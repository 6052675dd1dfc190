package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// The image's read-only files (unigo build --files SRC:DST): an archive in
// abi's format (abi/rofs.go) that the build embeds in the kernel package, served
// from where it lies in the image. rootFS is set by an init function the
// build generates; without --files it stays empty and only the synthetic
// paths exist. Lookups scan the entry table: trees of hundreds of files,
// which the images carry, need nothing faster.

var rootFS string

//go:nosplit
func rofsBase() uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(rootFS))) }

// rofsCount returns the number of entries, 0 without a valid archive.
//
//go:nosplit
func rofsCount() int {
	if len(rootFS) < abi.RofsHeader || load64(rofsBase()) != abi.RofsMagic {
		return 0
	}
	n := int(load32(rofsBase() + 8))
	if abi.RofsHeader+n*abi.RofsEntry > len(rootFS) {
		return 0
	}
	return n
}

// rofsEnt returns the address of entry i.
//
//go:nosplit
func rofsEnt(i int) uintptr { return rofsBase() + abi.RofsHeader + uintptr(i)*abi.RofsEntry }

//go:nosplit
func rofsParent(i int) int { return int(load32(rofsEnt(i) + abi.RofsParent)) }

//go:nosplit
func rofsMode(i int) uint32 { return load32(rofsEnt(i) + abi.RofsMode) }

//go:nosplit
func rofsSize(i int) uint64 { return load64(rofsEnt(i) + abi.RofsSize) }

//go:nosplit
func rofsIsDir(i int) bool { return rofsMode(i)&0o170000 == linux.S_IFDIR }

// rofsName returns the address and length of entry i's name.
//
//go:nosplit
func rofsName(i int) (uintptr, uintptr) {
	e := rofsEnt(i)
	return rofsBase() + uintptr(load32(e+abi.RofsNameOff)), uintptr(load32(e + abi.RofsNameLen))
}

// rofsChild returns the entry named by the n bytes at user address name in
// directory dir, or -1.
//
//go:nosplit
func rofsChild(dir int, name, n uintptr) int {
	count := rofsCount()
	for i := 1; i < count; i++ {
		if rofsParent(i) != dir {
			continue
		}
		p, k := rofsName(i)
		if k != n {
			continue
		}
		j := uintptr(0)
		for j < n && load8(p+j) == load8(name+j) {
			j++
		}
		if j == n {
			return i
		}
	}
	return -1
}

// rofsLookup resolves the NUL-terminated user path at path from directory
// entry dir (0, the root, for an absolute path or the working directory,
// which is /): the entry, or an errno (ENOENT, ENOTDIR, ENAMETOOLONG).
//
//go:nosplit
func rofsLookup(dir int, path uintptr) (int, linux.Errno) {
	if rofsCount() == 0 {
		return -1, linux.ENOENT
	}
	end := path
	for ; ; end++ {
		if end-path >= 4096 {
			return -1, linux.ENAMETOOLONG
		}
		if (end == path || end%pageSize == 0) && !userRange(end, 1) { // once a page
			return -1, linux.EFAULT
		}
		if load8(end) == 0 {
			break
		}
	}
	if end == path {
		return -1, linux.ENOENT // an empty path names nothing (path_resolution(7))
	}
	cur := dir
	if load8(path) == '/' {
		cur = 0
	}
	for p := path; p < end; {
		for p < end && load8(p) == '/' {
			p++
		}
		q := p
		for q < end && load8(q) != '/' {
			q++
		}
		n := q - p
		switch {
		case n == 0:
		case !rofsIsDir(cur):
			return -1, linux.ENOTDIR
		case n == 1 && load8(p) == '.':
		case n == 2 && load8(p) == '.' && load8(p+1) == '.':
			cur = rofsParent(cur)
		default:
			if cur = rofsChild(cur, p, n); cur < 0 {
				return -1, linux.ENOENT
			}
		}
		p = q
	}
	return cur, 0
}

// rofsOpen opens the entry at path (from dirfd), or says it is none of the
// archive's (false).
//
//go:nosplit
func rofsOpen(dirfd, path, flags uintptr) (uintptr, bool) {
	dir, ok := rofsDir(dirfd)
	if !ok {
		return 0, false
	}
	i, e := rofsLookup(dir, path)
	switch {
	case e == linux.ENOENT && flags&linux.O_CREAT != 0 && rofsCount() != 0:
		return errno(linux.EROFS), true
	case e != 0:
		return 0, false
	case flags&(linux.O_WRONLY|linux.O_RDWR|linux.O_TRUNC) != 0:
		if rofsIsDir(i) {
			return errno(linux.EISDIR), true
		}
		return errno(linux.EROFS), true
	case flags&linux.O_DIRECTORY != 0 && !rofsIsDir(i):
		return errno(linux.ENOTDIR), true
	}
	fd := allocFD(fdRofs)
	if fd < 0 {
		return errno(linux.EMFILE), true
	}
	files[fd].cloexec = flags&linux.O_CLOEXEC != 0
	files[fd].flags = uint32(flags & (linux.O_NONBLOCK | linux.O_DIRECTORY))
	files[fd].ino = uint32(i)
	return uintptr(fd), true
}

// cwd is the working directory: an archive directory, 0 (/) at start.
var cwd int

// rofsDir returns the directory entry a path is resolved from: the working
// directory for AT_FDCWD, or an archive directory opened as dirfd.
//
//go:nosplit
func rofsDir(dirfd uintptr) (int, bool) {
	if int32(dirfd) == linux.AT_FDCWD {
		return cwd, true
	}
	fl := getFile(dirfd)
	if fl == nil || fl.kind != fdRofs || !rofsIsDir(int(fl.ino)) {
		return 0, false
	}
	return int(fl.ino), true
}

// rofsRead reads from an archive file at off: the bytes copied.
//
//go:nosplit
func rofsRead(i int, buf, n uintptr, off uint64) uintptr {
	if rofsIsDir(i) {
		return errno(linux.EISDIR)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	size := rofsSize(i)
	if off >= size {
		return 0
	}
	k := min(n, uintptr(size-off))
	memmove(buf, rofsBase()+uintptr(load64(rofsEnt(i)+abi.RofsData)+off), k)
	return k
}

// rofsStat describes entry i in statBuf.
//
//go:nosplit
func rofsStat(i int) {
	statBuf = linux.Stat{Ino: uint64(10000 + i), Nlink: 1, Blksize: 4096, Mode: rofsMode(i)}
	if rofsIsDir(i) {
		statBuf.Nlink, statBuf.Size = 2, 4096
	} else {
		statBuf.Size = int64(rofsSize(i))
	}
	statBuf.Blocks = (statBuf.Size + 511) / 512
	mt := linux.Timespec{Sec: int64(load64(rofsEnt(i) + abi.RofsMtime))}
	statBuf.Mtime, statBuf.Atime, statBuf.Ctime = mt, mt, mt
}

// rofsGetdents writes directory fl's entries from its position on as
// struct linux_dirent64 records (getdents64(2)): ".", "..", then the
// children; the position counts them.
//
//go:nosplit
func rofsGetdents(fl *file, buf, n uintptr) uintptr {
	dir := int(fl.ino)
	if !rofsIsDir(dir) {
		return errno(linux.ENOTDIR)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	done := uintptr(0)
	count := rofsCount()
	// Position 0 is ".", 1 "..", k+2 the scan from entry k on.
	for pos := fl.count; ; pos++ {
		var name, nlen uintptr
		var ino uint64
		var typ byte = 4 // DT_DIR
		switch {
		case pos == 0:
			ino, nlen = uint64(10000+dir), 1
		case pos == 1:
			ino, nlen = uint64(10000+rofsParent(dir)), 2
		default:
			i := int(pos - 2)
			for i < count && (i == 0 || rofsParent(i) != dir) {
				i++
			}
			if i >= count {
				fl.count = pos
				return done
			}
			pos = uint64(i) + 2
			name, nlen = rofsName(i)
			ino = uint64(10000 + i)
			if !rofsIsDir(i) {
				typ = 8 // DT_REG
			}
		}
		reclen := (19 + nlen + 1 + 7) &^ 7 // ino, off, reclen, type, name, NUL, aligned
		if done+reclen > n {
			fl.count = pos
			if done == 0 {
				return errno(linux.EINVAL) // the buffer holds not even one
			}
			return done
		}
		r := buf + done
		store64(r, ino)
		store64(r+8, pos+1)
		store8(r+16, byte(reclen))
		store8(r+17, byte(reclen>>8))
		store8(r+18, typ)
		for j := uintptr(0); j < nlen; j++ {
			c := byte('.')
			if name != 0 {
				c = load8(name + j)
			}
			store8(r+19+j, c)
		}
		for j := 19 + nlen; j < reclen; j++ {
			store8(r+j, 0)
		}
		done += reclen
	}
}

// sysChdir implements Linux syscall chdir(2) into the image's directories.
//
//go:nosplit
func sysChdir(f *trapFrame) uintptr {
	i, e := rofsLookup(cwd, f.arg(0))
	if e == linux.ENOENT && rofsCount() == 0 && userPathIs(f.arg(0), "/") {
		return 0 // no image files: / is all there is
	}
	if e != 0 {
		return errno(e)
	}
	if !rofsIsDir(i) {
		return errno(linux.ENOTDIR)
	}
	cwd = i
	return 0
}

// sysFchdir implements Linux syscall fchdir(2) for the image's directories.
//
//go:nosplit
func sysFchdir(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	if fl.kind != fdRofs || !rofsIsDir(int(fl.ino)) {
		return errno(linux.ENOTDIR)
	}
	cwd = int(fl.ino)
	return 0
}

// cwdPath is where getcwd builds the path: trap context, one call at a time.
var (
	cwdPath  [4096]byte
	cwdChain [64]int
)

// sysGetcwd implements Linux syscall getcwd(2): the working directory's
// path, from its entry up to the root.
//
//go:nosplit
func sysGetcwd(f *trapFrame) uintptr {
	buf, size := f.arg(0), f.arg(1)
	n := 0
	for i := cwd; i != 0 && n < len(cwdChain); i = rofsParent(i) {
		cwdChain[n] = i
		n++
	}
	k := uintptr(0)
	for j := n - 1; j >= 0; j-- {
		p, l := rofsName(cwdChain[j])
		if k+1+l >= uintptr(len(cwdPath)) {
			return errno(linux.ENAMETOOLONG)
		}
		cwdPath[k] = '/'
		memmove(uintptr(unsafe.Pointer(&cwdPath[k+1])), p, l)
		k += 1 + l
	}
	if k == 0 {
		cwdPath[0] = '/'
		k = 1
	}
	cwdPath[k] = 0
	k++
	if size < k {
		return errno(linux.ERANGE)
	}
	if !copyOut(buf, unsafe.Pointer(&cwdPath[0]), k) {
		return errno(linux.EFAULT)
	}
	return k
}
