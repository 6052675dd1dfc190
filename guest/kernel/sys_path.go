package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
	"unigo.dev/unigo/proto/p9"
)

// The system calls that take paths, over the VFS (vfs.go): open, the
// directory operations, links, attributes and the working directory. The
// read-only image answers every change with EROFS; /tmp takes them.

// vfsOpen opens path (from dirfd) with open(2)'s flags and, for O_CREAT,
// mode.
//
//go:nosplit
func vfsOpen(dirfd, path, flags, mode uintptr) uintptr {
	if flags&linux.O_TMPFILE == linux.O_TMPFILE {
		return errno(linux.EOPNOTSUPP)
	}
	creat, excl := flags&linux.O_CREAT != 0, flags&linux.O_EXCL != 0
	// O_CREAT|O_EXCL never follows a final link: it fails on it (open(2)).
	e := resolve(0, dirfd, path, flags&linux.O_NOFOLLOW == 0 && !(creat && excl))
	r := &walks[0]
	acc := flags & linux.O_ACCMODE
	switch {
	case e == linux.ENOENT && r.last && creat:
		if r.slash {
			return errno(linux.EISDIR)
		}
		v, e := vnCreate(r, linux.S_IFREG|uint32(mode)&0o7777&^umask, flags)
		if e != 0 {
			return errno(e)
		}
		r.v, r.found = v, true
	case e != 0:
		return errno(e)
	case creat && excl:
		return errno(linux.EEXIST)
	case flags&linux.O_PATH != 0:
	case vnIsLink(r.v):
		return errno(linux.ELOOP) // O_NOFOLLOW
	case vnIsDir(r.v) && (acc != linux.O_RDONLY || creat):
		return errno(linux.EISDIR)
	case !vnIsDir(r.v) && (flags&linux.O_DIRECTORY != 0 || r.slash):
		return errno(linux.ENOTDIR)
	case (acc != linux.O_RDONLY || flags&linux.O_TRUNC != 0) && vnReadOnly(r.v):
		return errno(linux.EROFS)
	case flags&linux.O_TRUNC != 0 && acc != linux.O_RDONLY && r.v.fs() == fsTmp:
		t := tnodeOf(r.v.ino())
		if t.size != 0 {
			tmpTruncate(t, 0)
			t.mtime = walltime()
			t.ctime = t.mtime
		}
	}
	var fid uint32
	if r.v.fs() == fs9p && flags&linux.O_PATH == 0 {
		// A share's open file has its own fid: the one Tlcreate opened, or
		// a new one opened with the flags.
		if fid = p9Created; !creat || fid == 0 {
			var e linux.Errno
			if fid, e = p9OpenFid(r.v.ino(), flags); e != 0 {
				return errno(e)
			}
		}
		p9Created = 0
	}
	fd := allocFD(fdVnode)
	if fd < 0 {
		// A file created here stays, as on Linux, where the creation is
		// not undone either.
		p9CloseFid(r.v, fid)
		return errno(linux.EMFILE)
	}
	fl := fdFile(fd)
	fdt[fd].cloexec = flags&linux.O_CLOEXEC != 0
	fl.flags = uint32(flags&(linux.O_ACCMODE|linux.O_APPEND|linux.O_NONBLOCK|linux.O_DIRECTORY|linux.O_PATH)) | linux.O_LARGEFILE
	fl.vn, fl.p9fid = r.v, fid
	switch r.v.fs() {
	case fsTmp:
		tnodeOf(r.v.ino()).opens++
	case fs9p:
		p9nodeOf(r.v.ino()).opens++
	}
	return uintptr(fd)
}

// vnCreate makes a node of mode named by r's last component in r.dir (a
// share's regular file is created open with flags: p9Created).
//
//go:nosplit
func vnCreate(r *walkResult, mode uint32, flags uintptr) (vnode, linux.Errno) {
	if r.dir.fs() == fs9p {
		return p9Create(r, mode, flags)
	}
	if r.dir.fs() != fsTmp {
		return 0, linux.EROFS
	}
	dir := r.dir.ino()
	if tnodeOf(dir).nlink == 0 {
		return 0, linux.ENOENT // a removed directory takes no entries
	}
	i := tmpNewIn(dir, mode)
	if i < 0 {
		if e := volTakeErr(); e != 0 {
			return 0, e
		}
		return 0, linux.ENOSPC
	}
	if mode&linux.S_IFMT == linux.S_IFDIR {
		tnodes[i].nlink = 2
		tmpSetParent(uint32(i), dir)
	}
	if e := tmpAddEntry(dir, r.nameAddr(), r.nlen, uint32(i)); e != 0 {
		tnodes[i].nlink = 0
		tmpRelease(uint32(i))
		return 0, e
	}
	if mode&linux.S_IFMT == linux.S_IFDIR {
		tnodeOf(dir).nlink++
	}
	return vnode(fsTmp<<24 | uint32(i)), 0
}

// isDots reports whether r's last component is "." or "..".
//
//go:nosplit
func (r *walkResult) isDots() bool {
	return r.nlen == 1 && r.name[0] == '.' || r.nlen == 2 && r.name[0] == '.' && r.name[1] == '.'
}

// sysMkdirat implements Linux syscall mkdirat(2).
//
//go:nosplit
func sysMkdirat(f *trapFrame) uintptr { return mkdirAt(f.arg(0), f.arg(1), f.arg(2)) }

//go:nosplit
func mkdirAt(dirfd, path, mode uintptr) uintptr {
	e := resolve(0, dirfd, path, false)
	r := &walks[0]
	switch {
	case e == 0:
		return errno(linux.EEXIST)
	case e != linux.ENOENT || !r.last:
		return errno(e)
	}
	if _, e := vnCreate(r, linux.S_IFDIR|uint32(mode)&0o7777&^umask, 0); e != 0 {
		return errno(e)
	}
	return 0
}

// sysUnlinkat implements Linux syscall unlinkat(2): a file, or with
// AT_REMOVEDIR an empty directory.
//
//go:nosplit
func sysUnlinkat(f *trapFrame) uintptr {
	if f.arg(2)&^linux.AT_REMOVEDIR != 0 {
		return errno(linux.EINVAL)
	}
	return unlinkAt(f.arg(0), f.arg(1), f.arg(2)&linux.AT_REMOVEDIR != 0)
}

//go:nosplit
func unlinkAt(dirfd, path uintptr, rmdir bool) uintptr {
	if e := resolve(0, dirfd, path, false); e != 0 {
		return errno(e)
	}
	r := &walks[0]
	switch {
	case rmdir && r.nlen == 1 && r.name[0] == '.':
		return errno(linux.EINVAL)
	case rmdir && r.isDots():
		return errno(linux.ENOTEMPTY)
	case r.v == rootVn || mountOf(r.v) != nil || r.nlen == 0:
		return errno(linux.EBUSY) // a mount point, or /
	case rmdir && !vnIsDir(r.v):
		return errno(linux.ENOTDIR)
	case !rmdir && vnIsDir(r.v):
		return errno(linux.EISDIR)
	case vnReadOnly(r.v):
		return errno(linux.EROFS)
	case r.v.fs() == fs9p:
		return errno(p9Unlink(r, rmdir))
	case rmdir && !tmpEmpty(r.v.ino()):
		return errno(linux.ENOTEMPTY)
	}
	dir := r.dir.ino()
	tmpDropEntry(dir, tmpFind(dir, r.nameAddr(), r.nlen))
	tmpUnref(r.v.ino(), dir)
	return 0
}

// tmpUnref takes away one name of node i, whose entry in dir is gone.
//
//go:nosplit
func tmpUnref(i, dir uint32) {
	t := tnodeOf(i)
	t.ctime = walltime()
	if t.mode&linux.S_IFMT == linux.S_IFDIR {
		t.nlink = 0
		tnodeOf(dir).nlink--
	} else {
		t.nlink--
	}
	tmpRelease(i)
}

// sysRenameat2 implements Linux syscall renameat2(2): atomic replacement
// of the target, RENAME_NOREPLACE and RENAME_EXCHANGE.
//
//go:nosplit
func sysRenameat2(f *trapFrame) uintptr {
	return renameAt(f.arg(0), f.arg(1), f.arg(2), f.arg(3), f.arg(4))
}

// sysRenameat implements Linux syscall renameat(2).
//
//go:nosplit
func sysRenameat(f *trapFrame) uintptr { return renameAt(f.arg(0), f.arg(1), f.arg(2), f.arg(3), 0) }

// sysRename implements Linux syscall rename(2).
//
//go:nosplit
func sysRename(f *trapFrame) uintptr {
	return renameAt(uintptr(atFDCWD()), f.arg(0), uintptr(atFDCWD()), f.arg(1), 0)
}

//go:nosplit
func atFDCWD() int64 { return linux.AT_FDCWD }

//go:nosplit
func renameAt(olddirfd, oldpath, newdirfd, newpath, flags uintptr) uintptr {
	if flags&^(linux.RENAME_NOREPLACE|linux.RENAME_EXCHANGE) != 0 || flags == linux.RENAME_NOREPLACE|linux.RENAME_EXCHANGE {
		return errno(linux.EINVAL)
	}
	if e := resolve(0, olddirfd, oldpath, false); e != 0 {
		return errno(e)
	}
	o, n := &walks[0], &walks[1]
	e := resolve(1, newdirfd, newpath, false)
	switch {
	case e != 0 && (e != linux.ENOENT || !n.last || flags&linux.RENAME_EXCHANGE != 0):
		return errno(e)
	case o.isDots() || n.isDots() || o.nlen == 0 || n.nlen == 0:
		return errno(linux.EBUSY)
	case mountOf(o.v) != nil || n.found && mountOf(n.v) != nil:
		return errno(linux.EBUSY)
	case !sameFS(o.dir, n.dir):
		return errno(linux.EXDEV)
	case vnReadOnly(o.dir):
		return errno(linux.EROFS)
	case n.found && flags&linux.RENAME_NOREPLACE != 0:
		return errno(linux.EEXIST)
	case (o.slash || n.slash) && !vnIsDir(o.v):
		return errno(linux.ENOTDIR)
	case n.found && o.v == n.v:
		return 0 // the same file: nothing to do (rename(2))
	}
	if o.dir.fs() == fs9p {
		return p9Rename(o, n, flags)
	}
	od, nd, ov := o.dir.ino(), n.dir.ino(), o.v.ino()
	if flags&linux.RENAME_EXCHANGE != 0 {
		return renameExchange(od, nd, ov, n.v.ino())
	}
	if vnIsDir(o.v) {
		if n.found && !vnIsDir(n.v) {
			return errno(linux.ENOTDIR)
		}
		if n.found && !tmpEmpty(n.v.ino()) {
			return errno(linux.ENOTEMPTY)
		}
		if tmpUnder(nd, ov) {
			return errno(linux.EINVAL) // into itself
		}
	} else if n.found && vnIsDir(n.v) {
		return errno(linux.EISDIR)
	}
	oOff := tmpFind(od, o.nameAddr(), o.nlen)
	if n.found {
		// Replace: point the target's entry at the source, in place.
		nOff := tmpFind(nd, n.nameAddr(), n.nlen)
		rec := tmpRecW(tnodeOf(nd), uint64(nOff))
		if rec == 0 {
			return errno(linux.EIO)
		}
		store32(rec, uint32(tmpIno(ov)))
		store8(rec+7, dtype(tnodeOf(ov).mode))
		tmpUnref(n.v.ino(), nd)
	} else if e := tmpAddEntry(nd, n.nameAddr(), n.nlen, ov); e != 0 {
		return errno(e)
	}
	tmpDropEntry(od, oOff)
	t := tnodeOf(ov)
	t.ctime = walltime()
	if t.mode&linux.S_IFMT == linux.S_IFDIR && od != nd {
		tmpSetParent(ov, nd)
		tnodeOf(od).nlink--
		tnodeOf(nd).nlink++
	}
	tnodeOf(nd).mtime = t.ctime
	return 0
}

// renameExchange swaps the entries of nodes a (in directory ad) and b (in
// bd).
//
//go:nosplit
func renameExchange(ad, bd, a, b uint32) uintptr {
	ta, tb := tnodeOf(a), tnodeOf(b)
	if ta.mode&linux.S_IFMT == linux.S_IFDIR && tmpUnder(bd, a) || tb.mode&linux.S_IFMT == linux.S_IFDIR && tmpUnder(ad, b) {
		return errno(linux.EINVAL)
	}
	ra := tmpRecW(tnodeOf(ad), uint64(tmpFind(ad, walks[0].nameAddr(), walks[0].nlen)))
	rb := tmpRecW(tnodeOf(bd), uint64(tmpFind(bd, walks[1].nameAddr(), walks[1].nlen)))
	if ra == 0 || rb == 0 {
		return errno(linux.EIO)
	}
	store32(ra, uint32(tmpIno(b)))
	store8(ra+7, dtype(tb.mode))
	store32(rb, uint32(tmpIno(a)))
	store8(rb+7, dtype(ta.mode))
	aDir, bDir := ta.mode&linux.S_IFMT == linux.S_IFDIR, tb.mode&linux.S_IFMT == linux.S_IFDIR
	if aDir {
		tmpSetParent(a, bd)
	}
	if bDir {
		tmpSetParent(b, ad)
	}
	if aDir != bDir && ad != bd { // a directory moved one way and a file the other
		if aDir {
			tnodeOf(ad).nlink--
			tnodeOf(bd).nlink++
		} else {
			tnodeOf(bd).nlink--
			tnodeOf(ad).nlink++
		}
	}
	now := walltime()
	ta.ctime, tb.ctime = now, now
	return 0
}

// tmpUnder reports whether directory d is dir or below it.
//
//go:nosplit
func tmpUnder(d, dir uint32) bool {
	for k := 0; k < maxTnodes; k++ {
		if d == dir {
			return true
		}
		p := tmpParent(d)
		if d == 0 || p == d {
			return false // /tmp's root, or a volume's
		}
		d = p
	}
	return false
}

// sysLinkat implements Linux syscall linkat(2): another name for a file.
//
//go:nosplit
func sysLinkat(f *trapFrame) uintptr {
	flags := f.arg(4)
	if flags&^(linux.AT_SYMLINK_FOLLOW|linux.AT_EMPTY_PATH) != 0 {
		return errno(linux.EINVAL)
	}
	var v vnode
	if flags&linux.AT_EMPTY_PATH != 0 && userPathIs(f.arg(1), "") {
		fl := getFile(f.arg(0))
		if fl == nil || fl.kind != fdVnode {
			return errno(linux.EBADF)
		}
		v = fl.vn
	} else {
		if e := resolve(0, f.arg(0), f.arg(1), flags&linux.AT_SYMLINK_FOLLOW != 0); e != 0 {
			return errno(e)
		}
		v = walks[0].v
	}
	e := resolve(1, f.arg(2), f.arg(3), false)
	n := &walks[1]
	switch {
	case e == 0:
		return errno(linux.EEXIST)
	case e != linux.ENOENT || !n.last:
		return errno(e)
	case vnIsDir(v):
		return errno(linux.EPERM)
	case !sameFS(v, n.dir):
		return errno(linux.EXDEV)
	case vnReadOnly(v):
		return errno(linux.EROFS)
	case v.fs() == fs9p:
		return errno(p9Link(n, v))
	case tnodeOf(v.ino()).nlink == 0:
		return errno(linux.ENOENT)
	}
	if e := tmpAddEntry(n.dir.ino(), n.nameAddr(), n.nlen, v.ino()); e != 0 {
		return errno(e)
	}
	t := tnodeOf(v.ino())
	t.nlink++
	t.ctime = walltime()
	return 0
}

// sysSymlinkat implements Linux syscall symlinkat(2).
//
//go:nosplit
func sysSymlinkat(f *trapFrame) uintptr {
	tlen, e := pathIn(f.arg(0), 0) // the target: kept as written
	if e != 0 {
		return errno(e)
	}
	e = resolve(1, f.arg(1), f.arg(2), false)
	r := &walks[1]
	switch {
	case e == 0:
		return errno(linux.EEXIST)
	case e != linux.ENOENT || !r.last:
		return errno(e)
	case r.dir.fs() == fs9p:
		if vnReadOnly(r.dir) {
			return errno(linux.EROFS)
		}
		return errno(p9Symlink(r, uintptr(unsafe.Pointer(&pathBufs[0][0])), tlen))
	}
	v, e := vnCreate(r, linux.S_IFLNK|0o777, 0)
	if e != 0 {
		return errno(e)
	}
	if k := tmpWrite(v.ino(), uintptr(unsafe.Pointer(&pathBufs[0][0])), tlen, 0); k != tlen {
		unlinkCreated(r, v)
		return errno(linux.ENOSPC)
	}
	return 0
}

// unlinkCreated removes node v, just created as r's last component.
//
//go:nosplit
func unlinkCreated(r *walkResult, v vnode) {
	dir := r.dir.ino()
	tmpDropEntry(dir, tmpFind(dir, r.nameAddr(), r.nlen))
	tmpUnref(v.ino(), dir)
}

// sysReadlinkat implements Linux syscall readlinkat(2).
//
//go:nosplit
func sysReadlinkat(f *trapFrame) uintptr { return readlinkAt(f.arg(0), f.arg(1), f.arg(2), f.arg(3)) }

//go:nosplit
func readlinkAt(dirfd, path, buf, size uintptr) uintptr {
	if int(size) <= 0 {
		return errno(linux.EINVAL)
	}
	if s, ok := synthLink(path); ok {
		k := min(size, uintptr(len(s)))
		if !userRange(buf, k) {
			return errno(linux.EFAULT)
		}
		memmove(buf, uintptr(unsafe.Pointer(unsafe.StringData(s))), k)
		return k
	}
	if specialPath(path) {
		return errno(linux.EINVAL) // a device or synthetic file: no link
	}
	if e := resolve(0, dirfd, path, false); e != 0 {
		return errno(e)
	}
	r := &walks[0]
	if !vnIsLink(r.v) {
		return errno(linux.EINVAL)
	}
	k := min(size, maxPath)
	if !userRange(buf, k) {
		return errno(linux.EFAULT)
	}
	n, e := vnReadlink(r.v, buf, k)
	if e != 0 {
		return errno(e)
	}
	return n
}

// pathNode returns the node at path (from dirfd), following a final link
// if follow is set, or an errno: EROFS on a read-only file system.
//
//go:nosplit
func pathNode(dirfd, path uintptr, follow bool) (vnode, linux.Errno) {
	if e := resolve(0, dirfd, path, follow); e != 0 {
		return 0, e
	}
	if vnReadOnly(walks[0].v) {
		return 0, linux.EROFS
	}
	return walks[0].v, 0
}

// fdNode returns the node open as fd, or an errno.
//
//go:nosplit
func fdNode(fd uintptr) (vnode, linux.Errno) {
	fl := getFile(fd)
	switch {
	case fl == nil:
		return 0, linux.EBADF
	case fl.kind != fdVnode:
		return 0, linux.EINVAL
	case vnReadOnly(fl.vn):
		return 0, linux.EROFS
	}
	return fl.vn, 0
}

// setattr changes v's attributes, those valid names (Tsetattr's bits,
// p9.Setattr*), with times in nanoseconds.
//
//go:nosplit
func setattr(v vnode, valid, mode, uid, gid uint32, size uint64, at, mt int64) linux.Errno {
	if v.fs() == fs9p {
		return p9Setattr(v.ino(), valid, mode, uid, gid, size, at, mt)
	}
	t := tnodeOf(v.ino())
	if valid&p9.SetattrSize != 0 {
		if e := tmpTruncate(t, size); e != 0 {
			return e
		}
		t.mtime = walltime()
	}
	if valid&p9.SetattrMode != 0 {
		t.mode = t.mode&linux.S_IFMT | mode&0o7777
	}
	if valid&p9.SetattrUID != 0 {
		t.uid = uid
	}
	if valid&p9.SetattrGID != 0 {
		t.gid = gid
	}
	if valid&p9.SetattrAtime != 0 {
		t.atime = at
	}
	if valid&p9.SetattrMtime != 0 {
		t.mtime = mt
	}
	t.ctime = walltime()
	return 0
}

// chmod sets v's permission bits.
//
//go:nosplit
func chmod(v vnode, e linux.Errno, mode uintptr) uintptr {
	if e != 0 {
		return errno(e)
	}
	return errno(setattr(v, p9.SetattrMode, uint32(mode)&0o7777, 0, 0, 0, 0, 0))
}

// chown sets v's owner and group; -1 keeps one.
//
//go:nosplit
func chown(v vnode, e linux.Errno, uid, gid uintptr) uintptr {
	if e != 0 {
		return errno(e)
	}
	valid := uint32(0)
	if uint32(uid) != ^uint32(0) {
		valid |= p9.SetattrUID
	}
	if uint32(gid) != ^uint32(0) {
		valid |= p9.SetattrGID
	}
	return errno(setattr(v, valid, 0, uint32(uid), uint32(gid), 0, 0, 0))
}

// sysFchmodat implements Linux syscall fchmodat(2).
//
//go:nosplit
func sysFchmodat(f *trapFrame) uintptr {
	v, e := pathNode(f.arg(0), f.arg(1), true)
	return chmod(v, e, f.arg(2))
}

// sysFchmod implements Linux syscall fchmod(2).
//
//go:nosplit
func sysFchmod(f *trapFrame) uintptr {
	v, e := fdNode(f.arg(0))
	return chmod(v, e, f.arg(1))
}

// sysFchownat implements Linux syscall fchownat(2). The program runs as
// root, so any owner may be given.
//
//go:nosplit
func sysFchownat(f *trapFrame) uintptr {
	flags := f.arg(4)
	if flags&linux.AT_EMPTY_PATH != 0 && userPathIs(f.arg(1), "") {
		v, e := fdNode(f.arg(0))
		return chown(v, e, f.arg(2), f.arg(3))
	}
	v, e := pathNode(f.arg(0), f.arg(1), flags&linux.AT_SYMLINK_NOFOLLOW == 0)
	return chown(v, e, f.arg(2), f.arg(3))
}

// sysFchown implements Linux syscall fchown(2).
//
//go:nosplit
func sysFchown(f *trapFrame) uintptr {
	v, e := fdNode(f.arg(0))
	return chown(v, e, f.arg(1), f.arg(2))
}

// sysUtimensat implements Linux syscall utimensat(2): a path, or with a
// NULL path the descriptor (futimens(3)); NULL times mean now.
//
//go:nosplit
func sysUtimensat(f *trapFrame) uintptr {
	var v vnode
	var e linux.Errno
	if f.arg(1) == 0 {
		v, e = fdNode(f.arg(0))
	} else {
		v, e = pathNode(f.arg(0), f.arg(1), f.arg(3)&linux.AT_SYMLINK_NOFOLLOW == 0)
	}
	if e != 0 {
		return errno(e)
	}
	tp := f.arg(2)
	if tp != 0 && !userRange(tp, 32) {
		return errno(linux.EFAULT)
	}
	at, va := utime(tp, p9.SetattrAtime|p9.SetattrAtimeSet)
	mt, vm := utime(tp+16*uintptr(min(tp, 1)), p9.SetattrMtime|p9.SetattrMtimeSet)
	if at < 0 || mt < 0 {
		return errno(linux.EINVAL)
	}
	return errno(setattr(v, va|vm, 0, 0, 0, 0, at, mt))
}

// utime reads the struct timespec at tp (0: now) for utimensat: the time
// in nanoseconds (-1 for an invalid one) and the Tsetattr bits bits, or
// none for UTIME_OMIT.
//
//go:nosplit
func utime(tp uintptr, bits uint32) (int64, uint32) {
	if tp == 0 {
		return walltime(), bits
	}
	sec, nsec := int64(load64(tp)), int64(load64(tp+8))
	switch {
	case nsec == linux.UTIME_NOW:
		return walltime(), bits
	case nsec == linux.UTIME_OMIT:
		return 0, 0
	case nsec < 0 || nsec >= 1e9:
		return -1, 0
	}
	return sec*1e9 + nsec, bits
}

// sysTruncate implements Linux syscall truncate(2).
//
//go:nosplit
func sysTruncate(f *trapFrame) uintptr {
	v, e := pathNode(uintptr(atFDCWD()), f.arg(0), true)
	if e != 0 {
		return errno(e)
	}
	if vnIsDir(v) {
		return errno(linux.EISDIR)
	}
	return setSize(v, e, f.arg(1))
}

// setSize truncates or extends v to size (a signed length).
//
//go:nosplit
func setSize(v vnode, e linux.Errno, size uintptr) uintptr {
	if e != 0 {
		return errno(e)
	}
	if int64(size) < 0 {
		return errno(linux.EINVAL)
	}
	return errno(setattr(v, p9.SetattrSize|p9.SetattrMtime|p9.SetattrCtime, 0, 0, 0, uint64(size), walltime(), walltime()))
}

// sysFaccessat2 implements Linux syscall faccessat2(2) (and faccessat,
// access): the program is root, so only existence, writes to the read-only
// image and execute bits can fail.
//
//go:nosplit
func sysFaccessat2(f *trapFrame) uintptr { return accessAt(f.arg(0), f.arg(1), f.arg(2), f.arg(3)) }

//go:nosplit
func sysFaccessat(f *trapFrame) uintptr { return accessAt(f.arg(0), f.arg(1), f.arg(2), 0) }

//go:nosplit
func sysAccess(f *trapFrame) uintptr { return accessAt(uintptr(atFDCWD()), f.arg(0), f.arg(1), 0) }

//go:nosplit
func accessAt(dirfd, path, mode, flags uintptr) uintptr {
	if mode&^7 != 0 || flags&^(linux.AT_EACCESS|linux.AT_SYMLINK_NOFOLLOW|linux.AT_EMPTY_PATH) != 0 {
		return errno(linux.EINVAL)
	}
	if e := statPath(dirfd, path, flags); e != 0 {
		return e
	}
	const wOK, xOK = 2, 1
	dev := statBuf.Dev
	if mode&wOK != 0 && (dev == devRofs || dev >= devP9 && dev < devP9+abi.MaxShares && mounts[1+uint(dev-devP9)%abi.MaxShares].ro ||
		dev >= devVol && dev < devVol+abi.MaxDisks && volDevReadOnly(int(dev-devVol))) {
		return errno(linux.EROFS)
	}
	if mode&xOK != 0 && statBuf.Mode&0o111 == 0 && statBuf.Mode&linux.S_IFMT != linux.S_IFDIR {
		return errno(linux.EACCES)
	}
	return 0
}

// sysChdir implements Linux syscall chdir(2).
//
//go:nosplit
func sysChdir(f *trapFrame) uintptr {
	if e := resolve(0, uintptr(atFDCWD()), f.arg(0), true); e != 0 {
		return errno(e)
	}
	if !vnIsDir(walks[0].v) {
		return errno(linux.ENOTDIR)
	}
	setCwd(walks[0].v)
	return 0
}

// setCwd makes v the working directory. A removed tmpfs or volume
// directory lives while it is the working directory (as an open one
// does): the old one may go now.
//
//go:nosplit
func setCwd(v vnode) {
	old := cwdVn
	cwdVn = v
	if old.fs() == fsTmp && old != v {
		tmpRelease(old.ino())
	}
}

// sysFchdir implements Linux syscall fchdir(2).
//
//go:nosplit
func sysFchdir(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	if fl.kind != fdVnode || !vnIsDir(fl.vn) {
		return errno(linux.ENOTDIR)
	}
	setCwd(fl.vn)
	return 0
}

// cwdPath is where getcwd builds the path, from its end.
var cwdPath [maxPath]byte

// sysGetcwd implements Linux syscall getcwd(2): the working directory's
// path, built from its node up to the root. A removed directory's is
// "(unreachable)", as Linux reports.
//
//go:nosplit
func sysGetcwd(f *trapFrame) uintptr {
	buf, size := f.arg(0), f.arg(1)
	base := uintptr(unsafe.Pointer(&cwdPath[0]))
	k := uintptr(maxPath - 1)
	store8(base+k, 0)
	v := cwdVn
	if v.fs() == fsTmp && tnodeOf(v.ino()).nlink == 0 || v.fs() == fs9p && p9Gone(v) {
		return errno(linux.ENOENT)
	}
	for v != rootVn {
		parent := vnParent(v)
		name, n := vnNameIn(parent, v)
		if n+1 > k {
			return errno(linux.ENAMETOOLONG)
		}
		k -= n
		memmove(base+k, name, n)
		k--
		store8(base+k, '/')
		v = parent
	}
	if k == maxPath-1 {
		k--
		store8(base+k, '/')
	}
	n := maxPath - k
	if size < n {
		return errno(linux.ERANGE)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	memmove(buf, base+k, n)
	return n
}

// vnNameIn returns the name directory v has in its parent dir.
//
//go:nosplit
func vnNameIn(dir, v vnode) (uintptr, uintptr) {
	if m := mountOf(v); m != nil {
		return uintptr(unsafe.Pointer(&m.name[0])), m.nlen
	}
	switch v.fs() {
	case fsRofs:
		return rofsName(int(v.ino()))
	case fs9p:
		n := p9nodeOf(v.ino())
		if n.nlen > p9NameMax {
			return 0, maxPath // too long to keep: getcwd says ENAMETOOLONG
		}
		return uintptr(unsafe.Pointer(&n.name[0])), uintptr(n.nlen)
	}
	t := tnodeOf(dir.ino())
	for off := uint64(0); off < t.size; {
		r := tmpRec(t, off)
		if r == 0 || load16u(r+4) < recHdr {
			break
		}
		if uint64(load32(r)) == tmpIno(v.ino()) {
			return r + recHdr, uintptr(load8(r + 6))
		}
		off += uint64(load16u(r + 4))
	}
	return dots(), 1
}

// sysUmask implements Linux syscall umask(2).
//
//go:nosplit
func sysUmask(f *trapFrame) uintptr {
	old := umask
	umask = uint32(f.arg(0)) & 0o777
	return uintptr(old)
}

// The calls without a directory argument: as their *at forms from the
// working directory.

//go:nosplit
func sysMkdir(f *trapFrame) uintptr { return mkdirAt(uintptr(atFDCWD()), f.arg(0), f.arg(1)) }

//go:nosplit
func sysRmdir(f *trapFrame) uintptr { return unlinkAt(uintptr(atFDCWD()), f.arg(0), true) }

//go:nosplit
func sysUnlink(f *trapFrame) uintptr { return unlinkAt(uintptr(atFDCWD()), f.arg(0), false) }

//go:nosplit
func sysReadlink(f *trapFrame) uintptr {
	return readlinkAt(uintptr(atFDCWD()), f.arg(0), f.arg(1), f.arg(2))
}
