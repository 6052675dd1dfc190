package kernel

import "unigo.dev/unigo/abi/linux"

// The system calls on descriptors: files of the VFS (vfs.go), synthetic
// files (synth.go), character devices (devfs.go), the console, pipes,
// eventfds, epoll instances and sockets.

// sysRead implements Linux syscall read(2).
//
//go:nosplit
func sysRead(f *trapFrame) uintptr { return fileRead(f.arg(0), f.arg(1), f.arg(2)) }

//go:nosplit
func fileRead(fd, buf, n uintptr) uintptr {
	fl := getFile(fd)
	if fl == nil {
		return errno(linux.EBADF)
	}
	switch fl.kind {
	case fdConsole:
		if fd != 0 {
			return errno(linux.EBADF)
		}
		return 0 // stdin has no input device yet: end of file
	case fdEventfd:
		return eventfdRead(fl, buf, n)
	case fdPipeR:
		return pipeRead(fl, buf, n)
	case fdSocket:
		v := uvec{buf: buf, n: n}
		return sockRecv(fl, &v, fl.flags&linux.O_NONBLOCK != 0, nil)
	case fdSynth:
		return synthRead(fl, buf, n)
	case fdDev:
		return devRead(fl, buf, n)
	case fdVnode:
		k := vnodeRead(fl, buf, n, fl.count)
		if int(k) > 0 {
			fl.count += uint64(k)
		}
		return k
	case fdBlk:
		k := blkRead(fl, buf, n, fl.count)
		if int(k) > 0 {
			fl.count += uint64(k)
		}
		return k
	}
	return errno(linux.EINVAL)
}

// sysWrite implements Linux syscall write(2).
//
//go:nosplit
func sysWrite(f *trapFrame) uintptr { return fileWrite(f.arg(0), f.arg(1), f.arg(2)) }

//go:nosplit
func fileWrite(fd, buf, n uintptr) uintptr {
	fl := getFile(fd)
	if fl == nil {
		return errno(linux.EBADF)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	switch fl.kind {
	case fdConsole:
		if fd == 0 {
			return errno(linux.EBADF)
		}
		return consoleWrite(int(fd), buf, n)
	case fdEventfd:
		return eventfdWrite(fl, buf, n)
	case fdPipeW:
		return pipeWrite(fl, buf, n)
	case fdSocket:
		v := uvec{buf: buf, n: n}
		return sockSend(fl, &v, fl.flags&linux.O_NONBLOCK != 0, nil)
	case fdDev:
		return devWrite(fl, n)
	case fdVnode:
		off := fl.count
		if fl.flags&linux.O_APPEND != 0 {
			off = vnSize(fl.vn)
		}
		k := vnodeWrite(fl, buf, n, off)
		if int(k) > 0 {
			fl.count = off + uint64(k)
		}
		return k
	case fdBlk:
		k := blkWrite(fl, buf, n, fl.count)
		if int(k) > 0 {
			fl.count += uint64(k)
		}
		return k
	}
	return errno(linux.EINVAL)
}

// sysReadv and sysWritev implement Linux syscalls readv(2) and writev(2)
// as a read or write per iovec, stopping at the first short one; a socket
// gathers or scatters them in one go (a datagram is one message).
//
//go:nosplit
func sysReadv(f *trapFrame) uintptr { return vectored(f.arg(0), f.arg(1), f.arg(2), false) }

//go:nosplit
func sysWritev(f *trapFrame) uintptr { return vectored(f.arg(0), f.arg(1), f.arg(2), true) }

//go:nosplit
func vectored(fd, iov, cnt uintptr, write bool) uintptr {
	fl := getFile(fd)
	if fl == nil {
		return errno(linux.EBADF)
	}
	if fl.kind == fdSocket {
		v := uvec{iov: iov, cnt: cnt}
		nb := fl.flags&linux.O_NONBLOCK != 0
		if write {
			return sockSend(fl, &v, nb, nil)
		}
		return sockRecv(fl, &v, nb, nil)
	}
	if cnt > maxIOV {
		return errno(linux.EINVAL)
	}
	if !userRange(iov, cnt*16) {
		return errno(linux.EFAULT)
	}
	total := uintptr(0)
	for i := uintptr(0); i < cnt; i++ {
		base, n := uintptr(load64(iov+16*i)), uintptr(load64(iov+16*i+8))
		if n == 0 {
			continue
		}
		var r uintptr
		if write {
			r = fileWrite(fd, base, n)
		} else {
			r = fileRead(fd, base, n)
		}
		if int(r) < 0 {
			if total > 0 {
				return total
			}
			return r
		}
		total += r
		if r < n {
			break
		}
	}
	return total
}

// sysClose implements Linux syscall close(2).
//
//go:nosplit
func sysClose(f *trapFrame) uintptr { return closeFD(f.arg(0)) }

// closeFD frees descriptor fd, and its description with the last one.
//
//go:nosplit
func closeFD(fd uintptr) uintptr {
	fl := getFile(fd)
	if fl == nil {
		return errno(linux.EBADF)
	}
	epollForget(int(fd))
	fdt[fd] = fdEnt{}
	if int(fd) == netDoorbel {
		netDoorbel = -1
	}
	if fl.refs--; fl.refs > 0 {
		return 0 // another descriptor names the description
	}
	kind := fl.kind
	if kind == fdEpoll {
		epollCloseInstance(int(fd))
	}
	if kind == fdPipeR || kind == fdPipeW {
		pipeClose(fl)
	}
	if kind == fdVnode {
		vnodeRelease(fl)
	}
	s := int(fl.sock)
	*fl = file{}
	if kind == fdSocket {
		sockClose(s)
		sockChanged(s)
	}
	return 0
}

// sysPread64 implements Linux syscall pread64(2) for the VFS's files.
//
//go:nosplit
func sysPread64(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	if fl.kind != fdVnode && fl.kind != fdBlk {
		return errno(linux.ESPIPE)
	}
	if int64(f.arg(3)) < 0 {
		return errno(linux.EINVAL)
	}
	if fl.kind == fdBlk {
		return blkRead(fl, f.arg(1), f.arg(2), uint64(f.arg(3)))
	}
	return vnodeRead(fl, f.arg(1), f.arg(2), uint64(f.arg(3)))
}

// sysPwrite64 implements Linux syscall pwrite64(2) for the VFS's files;
// with O_APPEND it appends, as Linux does whatever the offset.
//
//go:nosplit
func sysPwrite64(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	if fl.kind != fdVnode && fl.kind != fdBlk {
		return errno(linux.ESPIPE)
	}
	off := uint64(f.arg(3))
	if int64(off) < 0 {
		return errno(linux.EINVAL)
	}
	if fl.kind == fdBlk {
		return blkWrite(fl, f.arg(1), f.arg(2), off)
	}
	if fl.flags&linux.O_APPEND != 0 {
		off = vnSize(fl.vn)
	}
	return vnodeWrite(fl, f.arg(1), f.arg(2), off)
}

// sysLseek implements Linux syscall lseek(2) for the VFS's files and
// directories (where the offset is a getdents64 position), the synthetic
// files and the devices. SEEK_DATA and SEEK_HOLE see no holes.
//
//go:nosplit
func sysLseek(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	off, whence := int64(f.arg(1)), f.arg(2)
	var size int64
	switch fl.kind {
	case fdVnode:
		size = int64(vnSize(fl.vn))
		if vnIsDir(fl.vn) && whence != 0 {
			return errno(linux.EINVAL)
		}
	case fdSynth:
		s, _ := synthData(int(fl.pipe))
		size = int64(len(s))
	case fdDev:
		return 0 // as Linux: the devices have no position
	case fdBlk:
		size = blkSize(int(fl.pipe))
	default:
		return errno(linux.ESPIPE)
	}
	switch whence {
	case 0: // SEEK_SET
	case 1: // SEEK_CUR
		off += int64(fl.count)
	case 2: // SEEK_END
		off += size
	case 3, 4: // SEEK_DATA, SEEK_HOLE
		if fl.kind != fdVnode || off < 0 || off >= size {
			return errno(linux.ENXIO)
		}
		if whence == 4 {
			off = size
		}
	default:
		return errno(linux.EINVAL)
	}
	if off < 0 {
		return errno(linux.EINVAL)
	}
	fl.count = uint64(off)
	return uintptr(off)
}

// sysGetdents64 implements Linux syscall getdents64(2) for the VFS's
// directories.
//
//go:nosplit
func sysGetdents64(f *trapFrame) uintptr {
	fl := getFile(f.arg(0))
	if fl == nil {
		return errno(linux.EBADF)
	}
	if fl.kind != fdVnode || !vnIsDir(fl.vn) {
		return errno(linux.ENOTDIR)
	}
	buf, n := f.arg(1), f.arg(2)
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	v := fl.vn
	switch v.fs() {
	case fsTmp:
		if tnodeOf(v.ino()).nlink == 0 {
			return errno(linux.ENOENT) // a removed directory lists nothing, as Linux's (IS_DEADDIR)
		}
		return tmpGetdents(v.ino(), vnIno(v), vnIno(vnParent(v)), &fl.count, buf, n)
	case fs9p:
		return p9Getdents(fl, buf, n)
	}
	return rofsGetdents(int(v.ino()), &fl.count, buf, n)
}

// sysFcntl implements Linux syscall fcntl(2): descriptor and status flags,
// duplication and record locks. One process holds every lock, and a
// process's own locks never conflict (fcntl(2)), so setting one succeeds
// and F_GETLK finds none; open file description locks (F_OFD_*), which
// could conflict, are not implemented (EINVAL).
//
//go:nosplit
func sysFcntl(f *trapFrame) uintptr {
	fd := f.arg(0)
	cmd := f.arg(1)
	arg := f.arg(2)
	fl := getFile(fd)
	if fl == nil {
		return errno(linux.EBADF)
	}
	switch cmd {
	case linux.F_GETFD:
		if fdt[fd].cloexec {
			return linux.FD_CLOEXEC
		}
		return 0
	case linux.F_SETFD:
		fdt[fd].cloexec = arg&linux.FD_CLOEXEC != 0
		return 0
	case linux.F_GETFL:
		return uintptr(fl.flags)
	case linux.F_SETFL:
		const settable = linux.O_NONBLOCK | linux.O_APPEND
		fl.flags = fl.flags&^settable | uint32(arg)&settable
		return 0
	case linux.F_DUPFD, linux.F_DUPFD_CLOEXEC:
		if arg >= maxFiles {
			return errno(linux.EINVAL)
		}
		to := freeFDFrom(int(arg))
		if to < 0 {
			return errno(linux.EMFILE)
		}
		dupTo(fd, to, cmd == linux.F_DUPFD_CLOEXEC)
		return uintptr(to)
	case linux.F_SETLK, linux.F_SETLKW, linux.F_GETLK:
		return recordLock(fl, cmd, arg)
	}
	return errno(linux.EINVAL)
}

// sysEventfd2 implements Linux syscall eventfd2(2).
//
//go:nosplit
func sysEventfd2(f *trapFrame) uintptr {
	initval := f.arg(0)
	flags := f.arg(1)
	if flags&^(linux.EFD_CLOEXEC|linux.EFD_NONBLOCK|linux.EFD_SEMAPHORE) != 0 {
		return errno(linux.EINVAL)
	}
	fd := allocFD(fdEventfd)
	if fd < 0 {
		return errno(linux.EMFILE)
	}
	fl := fdFile(fd)
	fl.count = uint64(uint32(initval))
	fdt[fd].cloexec = flags&linux.EFD_CLOEXEC != 0
	fl.sema = flags&linux.EFD_SEMAPHORE != 0
	fl.flags = linux.O_RDWR | uint32(flags)&linux.O_NONBLOCK
	return uintptr(fd)
}

// eventfdRead reads the counter (eventfd(2)). A blocking read of a zero
// counter waits for a write.
//
//go:nosplit
func eventfdRead(fl *file, buf, n uintptr) uintptr {
	if n < 8 {
		return errno(linux.EINVAL)
	}
	if !userRange(buf, 8) {
		return errno(linux.EFAULT)
	}
	for fl.count == 0 {
		if fl.flags&linux.O_NONBLOCK != 0 {
			return errno(linux.EAGAIN)
		}
		block(waitEpoll, 0, 0)
	}
	v := fl.count
	if fl.sema {
		v = 1
	}
	fl.count -= v
	fl.gen++
	store64(buf, v)
	return 8
}

// eventfdWrite adds to the counter and wakes the threads waiting for it.
//
//go:nosplit
func eventfdWrite(fl *file, buf, n uintptr) uintptr {
	if n < 8 {
		return errno(linux.EINVAL)
	}
	v := load64(buf)
	if v == ^uint64(0) {
		return errno(linux.EINVAL)
	}
	if fl.count+v < fl.count || fl.count+v == ^uint64(0) {
		return errno(linux.EAGAIN) // would overflow; a blocking writer would wait
	}
	fl.count += v
	fl.gen++
	wakeWaiters(waitEpoll)
	return 8
}
