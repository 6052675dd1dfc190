package kernel

import "unigo.dev/unigo/abi/linux"

// The character devices programs open by path (mem(4), null(4),
// random(4)): /dev/null reads end of file, /dev/zero reads zeros, and
// /dev/random and /dev/urandom read what getrandom(2) gives; writes to any
// of them are taken and dropped, as Linux does (a write to the random
// devices would mix into the pool, which RDRAND does not need).

const (
	devNull = iota
	devZero
	devRandom
	devURandom
	nDevs
)

//go:nosplit
func devPath(i int) string {
	switch i {
	case devNull:
		return "/dev/null"
	case devZero:
		return "/dev/zero"
	case devRandom:
		return "/dev/random"
	}
	return "/dev/urandom"
}

// devRdev is device i's number as stat shows it (major 1; Linux's
// new_encode_dev for minors below 256: major<<8 | minor).
//
//go:nosplit
func devRdev(i int) uint64 {
	minor := [nDevs]uint64{devNull: 3, devZero: 5, devRandom: 8, devURandom: 9}
	return 1<<8 | minor[uint(i)%nDevs]
}

// openDev opens the device at path, or reports it is none (-1).
//
//go:nosplit
func openDev(path, flags uintptr) (uintptr, bool) {
	for i := 0; i < nDevs; i++ {
		if !userPathIs(path, devPath(i)) {
			continue
		}
		if flags&linux.O_DIRECTORY != 0 {
			return errno(linux.ENOTDIR), true
		}
		fd := allocFD(fdDev)
		if fd < 0 {
			return errno(linux.EMFILE), true
		}
		fdt[fd].cloexec = flags&linux.O_CLOEXEC != 0
		fdFile(fd).flags = uint32(flags & (linux.O_ACCMODE | linux.O_NONBLOCK | linux.O_APPEND))
		fdFile(fd).pipe = uint8(i)
		return uintptr(fd), true
	}
	return 0, false
}

// devRead reads n bytes of device fl into buf.
//
//go:nosplit
func devRead(fl *file, buf, n uintptr) uintptr {
	if fl.flags&linux.O_ACCMODE == linux.O_WRONLY {
		return errno(linux.EBADF)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	switch fl.pipe {
	case devNull:
		return 0
	case devZero:
		memclr(buf, n)
		return n
	}
	return fillRandom(buf, n)
}

// devWrite takes n bytes for device fl, and drops them.
//
//go:nosplit
func devWrite(fl *file, n uintptr) uintptr {
	if fl.flags&linux.O_ACCMODE == linux.O_RDONLY {
		return errno(linux.EBADF)
	}
	return n
}

// devStat describes device i in statBuf.
//
//go:nosplit
func devStat(i int) {
	statBuf.Mode, statBuf.Rdev, statBuf.Ino = linux.S_IFCHR|0o666, devRdev(i), uint64(200+i)
}

// devStatPath describes the device at path, or /dev itself, in statBuf.
//
//go:nosplit
func devStatPath(path uintptr) bool {
	if userPathIs(path, "/dev") {
		statBuf.Ino, statBuf.Nlink, statBuf.Mode = 2, 2, linux.S_IFDIR|0o755
		return true
	}
	for i := 0; i < nDevs; i++ {
		if userPathIs(path, devPath(i)) {
			devStat(i)
			return true
		}
	}
	return false
}
