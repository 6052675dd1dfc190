//go:build unigo_nodrivers

package kernel

import "unigo.dev/unigo/abi/linux"

// An image without the share and disk drivers (virtq.go, p9.go, p9fs.go,
// blk.go): unigo build leaves them out, with the tag unigo_nodrivers, when
// the program opens no files, and unigo run then refuses -v and --disk for
// it. There are no shares, disks or volumes, so no node of fs9p, no
// volume's tnode and no disk descriptor exists and the VFS never calls
// what is below with one; the calls that look a name up find nothing.

var p9Created uint32

//go:nosplit
func blkInit() {}

//go:nosplit
func p9Mount() {}

//go:nosplit
func mountWord(p, end uintptr) {}

//go:nosplit
func openBlk(path, flags uintptr) (uintptr, bool) { return 0, false }

//go:nosplit
func blkPath(path uintptr) int { return -1 }

//go:nosplit
func blkStat(k int) {}

//go:nosplit
func blkSize(k int) int64 { return 0 }

//go:nosplit
func blkRead(fl *file, buf, n uintptr, off uint64) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func blkWrite(fl *file, buf, n uintptr, off uint64) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func blkFlush(k int) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func p9Child(dir uint32, name, n uintptr) (uint32, linux.Errno) { return 0, linux.ENODEV }

//go:nosplit
func p9Getattr(i uint32) linux.Errno { return linux.ENODEV }

//go:nosplit
func p9Size(i uint32) uint64 { return 0 }

//go:nosplit
func p9OpenFid(i uint32, flags uintptr) (uint32, linux.Errno) { return 0, linux.ENODEV }

//go:nosplit
func p9CloseFid(v vnode, fid uint32) {}

//go:nosplit
func p9Read(fl *file, buf, n uintptr, off uint64) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func p9Write(fl *file, buf, n uintptr, off uint64) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func p9Getdents(fl *file, buf, n uintptr) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func p9Readlink(i uint32, buf, max uintptr) (uintptr, linux.Errno) { return 0, linux.ENODEV }

//go:nosplit
func p9Create(r *walkResult, mode uint32, flags uintptr) (vnode, linux.Errno) {
	return 0, linux.ENODEV
}

//go:nosplit
func p9Release(fl *file) {}

//go:nosplit
func p9Setattr(i uint32, valid, mode, uid, gid uint32, size uint64, at, mt int64) linux.Errno {
	return linux.ENODEV
}

//go:nosplit
func p9Statfs(k int) linux.Errno { return linux.ENODEV }

//go:nosplit
func p9Unlink(r *walkResult, rmdir bool) linux.Errno { return linux.ENODEV }

//go:nosplit
func p9Link(n *walkResult, v vnode) linux.Errno { return linux.ENODEV }

//go:nosplit
func p9Symlink(r *walkResult, target, tlen uintptr) linux.Errno { return linux.ENODEV }

//go:nosplit
func p9Fsync(fl *file) linux.Errno { return linux.ENODEV }

//go:nosplit
func p9Rename(o, n *walkResult, flags uintptr) uintptr { return errno(linux.ENODEV) }

//go:nosplit
func p9SameShare(a, b vnode) bool { return false }

//go:nosplit
func p9Gone(v vnode) bool { return false }

//go:nosplit
func p9Unhold(v vnode) {}

//go:nosplit
func volMountAll() {}

//go:nosplit
func volBoundary() {}

//go:nosplit
func volSyncAll() {}

//go:nosplit
func volPage(t *tnode, idx uint64, alloc, write bool) uintptr { return 0 }

//go:nosplit
func volPageOver(t *tnode, idx uint64) uintptr { return 0 }

//go:nosplit
func volFreeFrom(k int, ino uint32, first uint64) {}

//go:nosplit
func volTakeErr() linux.Errno { return 0 }

//go:nosplit
func volFull(k int) bool { return false }

//go:nosplit
func volCommit(k int) linux.Errno { return 0 }

//go:nosplit
func volEvict() int { return -1 }

//go:nosplit
func volNew(dir uint32, mode uint32) int { return -1 }

//go:nosplit
func volFreeNode(i uint32) {}

//go:nosplit
func volNode(k int, ino uint32) int { return -1 }

//go:nosplit
func volParent(i uint32) uint32 { return i }

//go:nosplit
func volReadOnly(i uint32) bool { return false }

//go:nosplit
func volDevReadOnly(k int) bool { return false }

//go:nosplit
func volSync(i uint32) linux.Errno { return 0 }

//go:nosplit
func volOf(i uint32) int { return -1 }

//go:nosplit
func volStatfs(k int, b *[15]uint64) {}
