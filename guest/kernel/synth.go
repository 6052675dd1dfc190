package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Synthetic read-only files, matched by their absolute paths ahead of the
// VFS: the few that Go's net and os/user packages read, so that they behave
// as on a configured Linux host, and /proc/self's cmdline, mountinfo and exe
// link. /etc/resolv.conf exists when the command line names a DNS server
// (net.dns=) or DHCP gave one.

const (
	synthSomaxconn = iota
	synthHosts
	synthResolvConf
	synthCmdline
	synthPasswd
	synthGroup
	synthMountinfo
	nSynth
)

var (
	resolvConf    [64]byte
	resolvConfLen int

	// The program's arguments, NUL-terminated one after the other, as
	// buildProcessStack found them: /proc/self/cmdline (its first 4 KiB).
	cmdline    [4096]byte
	cmdlineLen int
)

//go:nosplit
func synthPath(i int) string {
	switch i {
	case synthSomaxconn:
		return "/proc/sys/net/core/somaxconn"
	case synthHosts:
		return "/etc/hosts"
	case synthCmdline:
		return "/proc/self/cmdline"
	case synthPasswd:
		return "/etc/passwd"
	case synthGroup:
		return "/etc/group"
	case synthMountinfo:
		return "/proc/self/mountinfo"
	}
	return "/etc/resolv.conf"
}

// synthData returns the content of synthetic file i, and whether it exists.
//
//go:nosplit
func synthData(i int) (string, bool) {
	switch i {
	case synthSomaxconn:
		return "4096\n", true // Linux's default: Go sizes listen backlogs from it
	case synthHosts:
		return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", true
	case synthCmdline:
		return unsafe.String(&cmdline[0], cmdlineLen), true
	case synthPasswd: // the program runs as root (getuid(2) is 0), as in a container
		return "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", true
	case synthGroup:
		return "root:x:0:\nnogroup:x:65534:\n", true
	case synthMountinfo: // proc(5): the VFS's mounts (vfs.go)
		return "1 1 0:1 / / ro,relatime - rofs image ro\n2 1 0:2 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw\n", true
	}
	return unsafe.String(&resolvConf[0], resolvConfLen), resolvConfLen > 0
}

// resolvConfFrom writes /etc/resolv.conf from the net.dns= word, if any.
//
//go:nosplit
func resolvConfFrom() {
	const key = "net.dns="
	for i := 0; i+len(key) <= netConfigLen; i++ {
		if (i > 0 && netConfig[i-1] != ' ') || unsafe.String(&netConfig[i], len(key)) != key {
			continue
		}
		n := copy(resolvConf[:], "nameserver ")
		for j := i + len(key); j < netConfigLen && netConfig[j] != ' ' && n < len(resolvConf)-1; j++ {
			resolvConf[n] = netConfig[j]
			n++
		}
		resolvConf[n] = '\n'
		resolvConfLen = n + 1
		return
	}
}

// resolvConfServer writes /etc/resolv.conf naming the IPv4 name server
// dns (a<<24 | b<<16 | c<<8 | d), as DHCP gave it.
//
//go:nosplit
func resolvConfServer(dns uint32) {
	n := copy(resolvConf[:], "nameserver ")
	for i := 3; i >= 0; i-- {
		v := byte(dns >> (8 * i))
		if v >= 100 {
			resolvConf[n] = '0' + v/100
			n++
		}
		if v >= 10 {
			resolvConf[n] = '0' + v/10%10
			n++
		}
		resolvConf[n] = '0' + v%10
		resolvConf[n+1] = '.'
		n += 2
	}
	resolvConf[n-1] = '\n'
	resolvConfLen = n
}

// userPathIs reports whether the NUL-terminated path at user address p is s.
//
//go:nosplit
func userPathIs(p uintptr, s string) bool {
	for j := 0; j <= len(s); j++ {
		if !userRange(p+uintptr(j), 1) {
			return false
		}
		c := load8(p + uintptr(j))
		if j == len(s) {
			return c == 0
		}
		if c != s[j] {
			return false
		}
	}
	return false
}

// sysOpenat implements Linux syscall openat(2).
//
//go:nosplit
func sysOpenat(f *trapFrame) uintptr { return openPath(f.arg(0), f.arg(1), f.arg(2), f.arg(3)) }

// sysOpen implements Linux syscall open(2), as openat.
//
//go:nosplit
func sysOpen(f *trapFrame) uintptr { return openPath(uintptr(atFDCWD()), f.arg(0), f.arg(1), f.arg(2)) }

// sysCreat implements Linux syscall creat(2).
//
//go:nosplit
func sysCreat(f *trapFrame) uintptr {
	return openPath(uintptr(atFDCWD()), f.arg(0), linux.O_CREAT|linux.O_WRONLY|linux.O_TRUNC, f.arg(1))
}

// openPath opens path (from dirfd): a device, a synthetic file, or a file
// of the VFS.
//
//go:nosplit
func openPath(dirfd, path, flags, mode uintptr) uintptr {
	if !userRange(path, 1) {
		return errno(linux.EFAULT)
	}
	if fd, ok := openDev(path, flags); ok {
		return fd
	}
	if fd, ok := openBlk(path, flags); ok {
		return fd
	}
	if fd, ok := openSynth(path, flags); ok {
		return fd
	}
	return vfsOpen(dirfd, path, flags, mode)
}

// specialPath reports whether the user path at path is a device or a
// synthetic file, which are matched by their absolute paths.
//
//go:nosplit
func specialPath(path uintptr) bool {
	for i := 0; i < nDevs; i++ {
		if userPathIs(path, devPath(i)) {
			return true
		}
	}
	if blkPath(path) >= 0 {
		return true
	}
	for i := 0; i < nSynth; i++ {
		if _, ok := synthData(i); ok && userPathIs(path, synthPath(i)) {
			return true
		}
	}
	return false
}

// exeLink is /proc/self/exe's target: the program, named by its first
// argument, as if it lay in the root.
var (
	exeLink    [maxName + 2]byte
	exeLinkLen int
)

// synthLink returns the target of a synthetic symbolic link at path.
//
//go:nosplit
func synthLink(path uintptr) (string, bool) {
	if !userPathIs(path, "/proc/self/exe") {
		return "", false
	}
	if exeLinkLen == 0 {
		start := 0
		for i := 0; i < cmdlineLen && cmdline[i%len(cmdline)] != 0; i++ {
			if cmdline[i%len(cmdline)] == '/' {
				start = i + 1
			}
		}
		exeLink[0] = '/'
		n := 1
		for i := start; i < cmdlineLen && n < len(exeLink) && cmdline[i%len(cmdline)] != 0; i++ {
			exeLink[n%len(exeLink)] = cmdline[i%len(cmdline)]
			n++
		}
		exeLinkLen = n
	}
	return unsafe.String(&exeLink[0], exeLinkLen), true
}

//go:nosplit
func openSynth(path, flags uintptr) (uintptr, bool) {
	for i := 0; i < nSynth; i++ {
		if _, ok := synthData(i); !ok || !userPathIs(path, synthPath(i)) {
			continue
		}
		if flags&(linux.O_WRONLY|linux.O_RDWR|linux.O_CREAT|linux.O_TRUNC) != 0 {
			return errno(linux.EROFS), true
		}
		fd := allocFD(fdSynth)
		if fd < 0 {
			return errno(linux.EMFILE), true
		}
		fdt[fd].cloexec = flags&linux.O_CLOEXEC != 0
		fdFile(fd).pipe = uint8(i)
		return uintptr(fd), true
	}
	return 0, false
}

// synthRead reads from a synthetic file at its offset (kept in count).
//
//go:nosplit
func synthRead(fl *file, buf, n uintptr) uintptr {
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	s, _ := synthData(int(fl.pipe))
	if fl.count >= uint64(len(s)) {
		return 0
	}
	k := min(n, uintptr(uint64(len(s))-fl.count))
	memmove(buf, uintptr(unsafe.Pointer(unsafe.StringData(s)))+uintptr(fl.count), k)
	fl.count += uint64(k)
	return k
}

// statBuf is the stat being answered: static, since trap context keeps
// its frames small (one system call at a time).
var statBuf linux.Stat

// sysFstat implements Linux syscall fstat(2) for the kernel's descriptors.
//
//go:nosplit
func sysFstat(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	fileStat(int(f.arg(0)), fl)
	return putStat(f.arg(1))
}

// sysNewfstatat implements Linux syscall newfstatat(2): a descriptor with
// AT_EMPTY_PATH, or a path.
//
//go:nosplit
func sysNewfstatat(f *trapFrame) uintptr {
	if e := statPath(f.arg(0), f.arg(1), f.arg(3)); e != 0 {
		return e
	}
	return putStat(f.arg(2))
}

// statPath describes in statBuf descriptor dirfd (flags AT_EMPTY_PATH and
// an empty path) or the file at path: a device, a synthetic file or a file
// of the VFS (a final symbolic link followed unless AT_SYMLINK_NOFOLLOW).
//
//go:nosplit
func statPath(dirfd, path, flags uintptr) uintptr {
	if flags&linux.AT_EMPTY_PATH != 0 && userPathIs(path, "") {
		fl := getFile(dirfd)
		if fl == nil {
			return errno(linux.EBADF)
		}
		fileStat(int(dirfd), fl)
		return 0
	}
	if !userRange(path, 1) {
		return errno(linux.EFAULT)
	}
	statBuf = linux.Stat{Nlink: 1, Blksize: 4096}
	if devStatPath(path) {
		return 0
	}
	if k := blkPath(path); k >= 0 {
		blkStat(k)
		return 0
	}
	for i := 0; i < nSynth; i++ {
		if s, ok := synthData(i); ok && userPathIs(path, synthPath(i)) {
			statBuf.Ino, statBuf.Mode, statBuf.Size = uint64(100+i), linux.S_IFREG|0o444, int64(len(s))
			return 0
		}
	}
	if e := resolve(0, dirfd, path, flags&linux.AT_SYMLINK_NOFOLLOW == 0); e != 0 {
		return errno(e)
	}
	return errno(vnStat(walks[0].v))
}

// statxBuf is struct statx (include/uapi/linux/stat.h), built from statBuf.
var statxBuf [256]byte

// sysStatx implements Linux syscall statx(2): what newfstatat gives, as
// struct statx with the basic fields (STATX_BASIC_STATS).
//
//go:nosplit
func sysStatx(f *trapFrame) uintptr {
	if e := statPath(f.arg(0), f.arg(1), f.arg(2)); e != 0 {
		return e
	}
	b := uintptr(unsafe.Pointer(&statxBuf[0]))
	memclr(b, uintptr(len(statxBuf)))
	st := &statBuf
	store32(b, 0x7ff) // stx_mask: STATX_BASIC_STATS
	store32(b+4, uint32(st.Blksize))
	store32(b+16, uint32(st.Nlink))
	store32(b+20, st.UID)
	store32(b+24, st.GID)
	store8(b+28, byte(st.Mode))
	store8(b+29, byte(st.Mode>>8))
	store64(b+32, st.Ino)
	store64(b+40, uint64(st.Size))
	store64(b+48, uint64(st.Blocks))
	for i, ts := range [...]*linux.Timespec{&st.Atime, &st.Ctime, &st.Mtime} { // at 64, 96, 112: btime (80) is left out of the mask
		off := [...]uintptr{64, 96, 112}[i]
		store64(b+off, uint64(ts.Sec))
		store32(b+off+8, uint32(ts.Nsec))
	}
	store32(b+128, uint32(st.Rdev>>8)) // stx_rdev_major, minor: new_encode_dev's split for minors below 256
	store32(b+132, uint32(st.Rdev&0xff))
	if !copyOut(f.arg(4), unsafe.Pointer(&statxBuf[0]), uintptr(len(statxBuf))) {
		return errno(linux.EFAULT)
	}
	return 0
}

// fileStat describes descriptor fd in statBuf: a regular file for the
// synthetic files, a character device for the console, a FIFO for pipes, a
// socket, and for eventfds and epoll instances what Linux shows of an
// anonymous inode (mode 0600, no file type).
//
//go:nosplit
func fileStat(fd int, fl *file) {
	statBuf = linux.Stat{Ino: uint64(1000 + fd), Nlink: 1, Blksize: 4096}
	switch fl.kind {
	case fdSynth:
		s, _ := synthData(int(fl.pipe))
		statBuf.Mode, statBuf.Size, statBuf.Ino = linux.S_IFREG|0o444, int64(len(s)), uint64(100+int(fl.pipe))
	case fdDev:
		devStat(int(fl.pipe))
	case fdBlk:
		blkStat(int(fl.pipe))
	case fdVnode:
		if vnStat(fl.vn) != 0 { // a share's file the host removed: what is known
			statBuf = linux.Stat{Mode: vnMode(fl.vn), Ino: vnIno(fl.vn), Nlink: 0, Blksize: 4096}
		}
	case fdConsole:
		statBuf.Mode, statBuf.Rdev = linux.S_IFCHR|0o620, 0x8800 // a pseudo-terminal's numbers
	case fdPipeR, fdPipeW:
		statBuf.Mode = linux.S_IFIFO | 0o600
	case fdSocket:
		statBuf.Mode = linux.S_IFSOCK | 0o777
	default:
		statBuf.Mode = 0o600
	}
}

//go:nosplit
func putStat(dst uintptr) uintptr {
	if !copyOut(dst, unsafe.Pointer(&statBuf), unsafe.Sizeof(statBuf)) {
		return errno(linux.EFAULT)
	}
	return 0
}
