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

// Without an archive, the root (entry 0) is all there is: an empty
// directory.

//go:nosplit
func rofsParent(i int) int {
	if rofsCount() == 0 {
		return 0
	}
	return int(load32(rofsEnt(i) + abi.RofsParent))
}

//go:nosplit
func rofsMode(i int) uint32 {
	if rofsCount() == 0 {
		return linux.S_IFDIR | 0o755
	}
	return load32(rofsEnt(i) + abi.RofsMode)
}

//go:nosplit
func rofsSize(i int) uint64 {
	if rofsCount() == 0 {
		return 0
	}
	return load64(rofsEnt(i) + abi.RofsSize)
}

//go:nosplit
func rofsIno(i int) uint64 { return uint64(10000 + i) }

//go:nosplit
func rofsIsDir(i int) bool { return rofsMode(i)&0o170000 == linux.S_IFDIR }

// rofsName returns the address and length of entry i's name.
//
//go:nosplit
func rofsName(i int) (uintptr, uintptr) {
	e := rofsEnt(i)
	return rofsBase() + uintptr(load32(e+abi.RofsNameOff)), uintptr(load32(e + abi.RofsNameLen))
}

// rofsChild returns the entry named by the n bytes at name in directory
// dir, or -1.
//
//go:nosplit
func rofsChild(dir int, name, n uintptr) int {
	count := rofsCount()
	for i := 1; i < count; i++ {
		if rofsParent(i) != dir {
			continue
		}
		if p, k := rofsName(i); k == n && memeq(p, name, n) {
			return i
		}
	}
	return -1
}

// rofsRead reads from an archive file at off: the bytes copied.
//
//go:nosplit
func rofsRead(i int, buf, n uintptr, off uint64) uintptr {
	if rofsIsDir(i) {
		return errno(linux.EISDIR)
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
	statBuf = linux.Stat{Dev: devRofs, Ino: rofsIno(i), Nlink: 1, Blksize: 4096, Mode: rofsMode(i)}
	if rofsIsDir(i) {
		statBuf.Nlink, statBuf.Size = 2, 4096
	} else {
		statBuf.Size = int64(rofsSize(i))
	}
	statBuf.Blocks = (statBuf.Size + 511) / 512
	var mt linux.Timespec
	if rofsCount() != 0 {
		mt.Sec = int64(load64(rofsEnt(i) + abi.RofsMtime))
	}
	statBuf.Mtime, statBuf.Atime, statBuf.Ctime = mt, mt, mt
}

// rofsGetdents writes directory dir's entries from position *pos on:
// ".", "..", the children (position 2 + their entry), and in the root the
// mount points (position 2 + the entry count + the mount's index), which
// hide children of their names.
//
//go:nosplit
func rofsGetdents(dir int, pos *uint64, buf, n uintptr) uintptr {
	done := uintptr(0)
	count := rofsCount()
	for {
		name, nlen := dots(), uintptr(1)
		ino, typ := rofsIno(dir), uint8(dtDir)
		p := *pos
		if p == 1 {
			nlen, ino = 2, rofsIno(rofsParent(dir))
		}
		if p >= 2 {
			i := int(p - 2)
			for i < count && (i == 0 || rofsParent(i) != dir || dir == 0 && rofsShadowed(i)) {
				i++
			}
			for dir == 0 && i >= count && i-count < len(mounts) && !mounts[uint(i-count)%uint(len(mounts))].used {
				i++
			}
			p = uint64(i) + 2
			switch {
			case i < count:
				name, nlen = rofsName(i)
				ino, typ = rofsIno(i), dtype(rofsMode(i))
			case dir == 0 && i-count < len(mounts):
				m := &mounts[uint(i-count)%uint(len(mounts))]
				name, nlen, ino = uintptr(unsafe.Pointer(&m.name[0])), m.nlen, vnIno(m.root)
			default:
				*pos = p
				return done
			}
		}
		k, ok := putDirent(buf+done, n-done, ino, p+1, typ, name, nlen)
		if !ok {
			*pos = p
			if done == 0 {
				return errno(linux.EINVAL) // the buffer holds not even one
			}
			return done
		}
		done += k
		*pos = p + 1
	}
}

// rofsShadowed reports whether root entry i is hidden by a mount point.
//
//go:nosplit
func rofsShadowed(i int) bool {
	p, n := rofsName(i)
	_, ok := mountAt(rootVn, p, n)
	return ok
}
