package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// The system calls on open files of the VFS: reads and writes at an offset,
// size, sync, locks and duplication.

// vnodeRead reads from the open file fl at off.
//
//go:nosplit
func vnodeRead(fl *file, buf, n uintptr, off uint64) uintptr {
	if fl.flags&linux.O_ACCMODE == linux.O_WRONLY || fl.flags&linux.O_PATH != 0 {
		return errno(linux.EBADF)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	return readAt(fl, buf, n, off)
}

// vnodeWrite writes to the open file fl at off.
//
//go:nosplit
func vnodeWrite(fl *file, buf, n uintptr, off uint64) uintptr {
	if fl.flags&linux.O_ACCMODE == linux.O_RDONLY || fl.flags&linux.O_PATH != 0 {
		return errno(linux.EBADF)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	switch fl.vn.fs() {
	case fsTmp:
		return tmpWrite(fl.vn.ino(), buf, n, off)
	case fs9p:
		return p9Write(fl, buf, n, off)
	}
	return errno(linux.EROFS)
}

// vnodeRelease lets go of a closed description's node: its flock and its
// hold on a tmpfs node, which may free a removed file.
//
//go:nosplit
func vnodeRelease(fl *file) {
	switch fl.vn.fs() {
	case fsTmp:
		flockDrop(fl)
		t := tnodeOf(fl.vn.ino())
		t.opens--
		tmpRelease(fl.vn.ino())
	case fs9p:
		flockDrop(fl)
		p9Release(fl)
	}
}

// sysFtruncate implements Linux syscall ftruncate(2).
//
//go:nosplit
func sysFtruncate(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	switch {
	case fl == nil:
		return errno(linux.EBADF)
	case fl.kind != fdVnode || vnIsDir(fl.vn) || fl.flags&linux.O_ACCMODE == linux.O_RDONLY:
		return errno(linux.EINVAL)
	case vnReadOnly(fl.vn):
		return errno(linux.EROFS)
	}
	return setSize(fl.vn, 0, f.arg(1))
}

// sysFsync implements Linux syscall fsync(2) and fdatasync(2). A share's
// file is synced on the host (Tfsync), a volume's commits the volume's
// transaction; the image and tmpfs keep nothing anywhere but memory:
// there is nothing to write.
//
//go:nosplit
func sysFsync(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	switch {
	case fl == nil:
		return errno(linux.EBADF)
	case fl.kind == fdVnode && fl.vn.fs() == fs9p:
		return errno(p9Fsync(fl))
	case fl.kind == fdBlk:
		return blkFlush(int(fl.pipe))
	case fl.kind == fdVnode && fl.vn.fs() == fsTmp:
		return errno(volSync(fl.vn.ino()))
	case fl.kind == fdVnode || fl.kind == fdConsole || fl.kind == fdDev:
		return 0
	}
	return errno(linux.EINVAL) // pipes, sockets: as Linux
}

// sysSync implements Linux syscall sync(2): every volume commits.
//
//go:nosplit
func sysSync(f *trapFrame) uintptr {
	volSyncAll()
	return 0
}

// sysSyncfs implements Linux syscall syncfs(2): the volume of the file
// open as fd commits; other file systems have nothing to write.
//
//go:nosplit
func sysSyncfs(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	switch {
	case fl == nil:
		return errno(linux.EBADF)
	case fl.kind == fdVnode && fl.vn.fs() == fsTmp:
		return errno(volSync(fl.vn.ino()))
	}
	return 0
}

// sysFallocate implements Linux syscall fallocate(2): mode 0 and
// FALLOC_FL_KEEP_SIZE allocate the range's pages, so that later writes
// there cannot run out of space.
//
//go:nosplit
func sysFallocate(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	mode, off, n := f.arg(1), uint64(f.arg(2)), uint64(f.arg(3))
	switch {
	case fl == nil:
		return errno(linux.EBADF)
	case mode&^linux.FALLOC_FL_KEEP_SIZE != 0:
		return errno(linux.EOPNOTSUPP)
	case int64(off) < 0 || int64(n) <= 0:
		return errno(linux.EINVAL)
	case fl.flags&linux.O_ACCMODE == linux.O_RDONLY:
		return errno(linux.EBADF)
	case fl.kind != fdVnode:
		return errno(linux.ESPIPE)
	case vnIsDir(fl.vn):
		return errno(linux.EISDIR)
	case fl.vn.fs() == fs9p:
		return errno(linux.EOPNOTSUPP)
	case fl.vn.fs() != fsTmp:
		return errno(linux.EROFS)
	case (off+n)>>(12+9*tmpDepth) != 0:
		return errno(linux.EFBIG)
	}
	t := tnodeOf(fl.vn.ino())
	for idx := off / pageSize; idx < (off+n+pageSize-1)/pageSize; idx++ {
		if t.vol != 0 && volFull(int(t.vol)-1) {
			volCommitFn(int(t.vol) - 1)
		}
		if tmpPage(t, idx, true) == 0 {
			if e := volTakeErr(); e != 0 {
				return errno(e)
			}
			return errno(linux.ENOSPC)
		}
	}
	if mode == 0 && off+n > t.size {
		t.size = off + n
		t.ctime = walltime()
	}
	return 0
}

// The flock(2) states of a description.
const (
	lockSh = 1
	lockEx = 2
)

// sysFlock implements Linux syscall flock(2): shared and exclusive locks on
// tmpfs files and shares' files (among this guest's opens: the host's
// processes do not see them), held by open file descriptions, so two opens of one file
// conflict and a dup shares its lock. Without LOCK_NB a conflicting lock
// waits for the holder's unlock or close. The image's files are never
// written, so their locks are granted and need no record.
//
//go:nosplit
func sysFlock(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	op := f.arg(1)
	if fl == nil {
		return errno(linux.EBADF)
	}
	want := uint8(0)
	switch op &^ linux.LOCK_NB {
	case linux.LOCK_SH:
		want = lockSh
	case linux.LOCK_EX:
		want = lockEx
	case linux.LOCK_UN:
	default:
		return errno(linux.EINVAL)
	}
	if fl.kind != fdVnode || fl.vn.fs() == fsRofs {
		return 0
	}
	if want == fl.lock {
		return 0
	}
	flockDrop(fl) // a conversion is not atomic on Linux either (flock(2))
	if want == 0 {
		return 0
	}
	ex, sh := lockOf(fl.vn)
	for *ex || want == lockEx && *sh > 0 {
		if op&linux.LOCK_NB != 0 {
			return errno(linux.EAGAIN)
		}
		block(waitFlock, 0, 0)
		if fl.kind != fdVnode { // closed meanwhile
			return errno(linux.EBADF)
		}
	}
	if want == lockEx {
		*ex = true
	} else {
		*sh++
	}
	fl.lock = want
	return 0
}

// lockOf returns where node v's flock state is kept.
//
//go:nosplit
func lockOf(v vnode) (*bool, *uint16) {
	if v.fs() == fs9p {
		n := p9nodeOf(v.ino())
		return &n.lockEx, &n.lockSh
	}
	t := tnodeOf(v.ino())
	return &t.lockEx, &t.lockSh
}

// flockDrop releases fl's flock, waking the waiters.
//
//go:nosplit
func flockDrop(fl *file) {
	if fl.lock == 0 {
		return
	}
	ex, sh := lockOf(fl.vn)
	switch fl.lock {
	case lockEx:
		*ex = false
	case lockSh:
		*sh--
	}
	fl.lock = 0
	wakeWaiters(waitFlock)
}

// recordLock answers F_SETLK, F_SETLKW and F_GETLK (sysFcntl): the struct
// flock at arg is checked, and F_GETLK sets its l_type to F_UNLCK.
//
//go:nosplit
func recordLock(fl *file, cmd, arg uintptr) uintptr {
	if !userRange(arg, 32) { // struct flock: type, whence (16 bits each), start, len, pid
		return errno(linux.EFAULT)
	}
	typ := uintptr(load16u(arg))
	if typ > linux.F_UNLCK || load16u(arg+2) > 2 {
		return errno(linux.EINVAL)
	}
	acc := fl.flags & linux.O_ACCMODE
	if cmd != linux.F_GETLK && (typ == linux.F_RDLCK && acc == linux.O_WRONLY || typ == linux.F_WRLCK && acc == linux.O_RDONLY) {
		return errno(linux.EBADF)
	}
	if cmd == linux.F_GETLK {
		store8(arg, linux.F_UNLCK)
		store8(arg+1, 0)
	}
	return 0
}

// sysDup implements Linux syscall dup(2).
//
//go:nosplit
func sysDup(f *trapFrame) uintptr {
	if getFile(f.arg(0)) == nil {
		return errno(linux.EBADF)
	}
	to := freeFDFrom(0)
	if to < 0 {
		return errno(linux.EMFILE)
	}
	dupTo(f.arg(0), to, false)
	return uintptr(to)
}

// sysDup3 implements Linux syscall dup3(2): newfd, closed first if open,
// names oldfd's description.
//
//go:nosplit
func sysDup3(f *trapFrame) uintptr {
	old, to, flags := f.arg(0), f.arg(1), f.arg(2)
	switch {
	case flags&^linux.O_CLOEXEC != 0:
		return errno(linux.EINVAL)
	case getFile(old) == nil || to >= maxFiles:
		return errno(linux.EBADF)
	case old == to:
		return errno(linux.EINVAL)
	}
	return dupOver(old, to, flags != 0)
}

// sysDup2 implements Linux syscall dup2(2).
//
//go:nosplit
func sysDup2(f *trapFrame) uintptr {
	old, to := f.arg(0), f.arg(1)
	if getFile(old) == nil || to >= maxFiles {
		return errno(linux.EBADF)
	}
	if old == to {
		return to
	}
	return dupOver(old, to, false)
}

//go:nosplit
func dupOver(old, to uintptr, cloexec bool) uintptr {
	if getFile(to) != nil {
		closeFD(to)
	}
	dupTo(old, int(to), cloexec)
	return to
}

// statfsBuf is struct statfs (include/uapi/asm-generic/statfs.h, 64-bit).
var statfsBuf [15]uint64

// sysStatfs implements Linux syscall statfs(2).
//
//go:nosplit
func sysStatfs(f *trapFrame) uintptr {
	if e := statPath(uintptr(atFDCWD()), f.arg(0), 0); e != 0 {
		return e
	}
	return putStatfs(f.arg(1), statBuf.Dev)
}

// sysFstatfs implements Linux syscall fstatfs(2).
//
//go:nosplit
func sysFstatfs(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	fileStat(int(f.arg(0)), fl)
	return putStatfs(f.arg(1), statBuf.Dev)
}

// putStatfs describes the file system of device dev: tmpfs's size and use,
// or the image's (read-only, full).
//
//go:nosplit
func putStatfs(dst uintptr, dev uint64) uintptr {
	b := &statfsBuf
	if dev >= devP9 && dev < devP9+abi.MaxShares {
		if e := p9Statfs(int(dev - devP9)); e != 0 {
			return errno(e)
		}
		if !copyOut(dst, unsafe.Pointer(b), unsafe.Sizeof(*b)) {
			return errno(linux.EFAULT)
		}
		return 0
	}
	*b = [15]uint64{}
	b[1], b[8], b[9] = pageSize, maxName, pageSize // f_bsize, f_namelen, f_frsize
	if dev >= devVol && dev < devVol+abi.MaxDisks {
		volStatfs(int(dev-devVol), b)
	} else if dev == devTmp {
		b[0] = linux.TMPFS_MAGIC
		b[2], b[3], b[4] = uint64(tmpLimit), uint64(tmpLimit-min(tmpPages, tmpLimit)), uint64(tmpLimit-min(tmpPages, tmpLimit))
		b[5] = maxTnodes
		b[6] = uint64(maxTnodes - ktabLen(ktabTnodes)) // never used
		for i := range tnodes {
			if i == ktabLen(ktabTnodes) {
				break // the used prefix (ktab.go)
			}
			if tnodes[i].mode == 0 {
				b[6]++
			}
		}
		b[10] = 0x0400 | 0x0002 | 0x0004 // ST_RELATIME, ST_NOSUID, ST_NODEV
	} else {
		b[0] = 0x554e4946 // "UNIF": the image's files
		b[2] = (uint64(len(rootFS)) + pageSize - 1) / pageSize
		b[5] = uint64(rofsCount())
		b[10] = 0x0400 | 0x0001 // ST_RELATIME, ST_RDONLY
	}
	b[7] = dev // f_fsid
	if !copyOut(dst, unsafe.Pointer(b), unsafe.Sizeof(*b)) {
		return errno(linux.EFAULT)
	}
	return 0
}
