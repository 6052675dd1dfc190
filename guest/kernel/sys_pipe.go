package kernel

import "unigo.dev/unigo/abi/linux"

// Pipes (pipe(7)): a ring buffer per pipe, blocking or non-blocking, with
// readiness for epoll. The testing package captures the
// output of examples through one.

const (
	maxPipes = 16
	pipeSize = 64 << 10 // Linux's default capacity
)

type pipe struct {
	used             bool
	r, w             uint64 // bytes read and written so far; w-r are buffered
	readers, writers int    // open descriptors of each end
}

var (
	pipes [maxPipes]pipe
	// pipeBuf[i] is slot i's ring: 64 KiB of contiguous frames, taken when
	// the slot is first used and kept for its later pipes, so that a
	// program without pipes spends no memory on them.
	pipeBuf [maxPipes]uintptr
)

// sysPipe2 implements Linux syscall pipe2(2).
//
//go:nosplit
func sysPipe2(f *trapFrame) uintptr {
	fds := f.arg(0)
	flags := f.arg(1)
	if flags&^(linux.O_CLOEXEC|linux.O_NONBLOCK) != 0 {
		return errno(linux.EINVAL)
	}
	if !userRange(fds, 8) {
		return errno(linux.EFAULT)
	}
	p := -1
	for i := range pipes {
		if !pipes[i].used {
			p = i
			break
		}
	}
	if p < 0 {
		return errno(linux.ENFILE)
	}
	if pipeBuf[p] == 0 {
		if pipeBuf[p] = allocContig(pipeSize); pipeBuf[p] == 0 {
			return errno(linux.ENOMEM)
		}
	}
	rfd := allocFD(fdPipeR)
	if rfd < 0 {
		return errno(linux.EMFILE)
	}
	wfd := allocFD(fdPipeW)
	if wfd < 0 {
		freeFD(rfd)
		return errno(linux.EMFILE)
	}
	pipes[p] = pipe{used: true, readers: 1, writers: 1}
	for _, fd := range [2]int{rfd, wfd} {
		fdFile(fd).pipe = uint8(p)
		fdt[fd].cloexec = flags&linux.O_CLOEXEC != 0
		fdFile(fd).flags = uint32(flags) & linux.O_NONBLOCK
	}
	fdFile(wfd).flags |= linux.O_WRONLY
	store64(fds, uint64(uint32(rfd))|uint64(uint32(wfd))<<32)
	return 0
}

//go:nosplit
func pipeChanged(p int) {
	for i := range descs {
		if (descs[i].kind == fdPipeR || descs[i].kind == fdPipeW) && int(descs[i].pipe) == p {
			descs[i].gen++
		}
	}
	wakeWaiters(waitPipe)
	wakeWaiters(waitEpoll)
}

// pipeRead reads from the read end fl (read(2) of a pipe).
//
//go:nosplit
func pipeRead(fl *file, buf, n uintptr) uintptr {
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	p := &pipes[fl.pipe%maxPipes]
	for p.w == p.r {
		if p.writers == 0 || n == 0 {
			return 0
		}
		if fl.flags&linux.O_NONBLOCK != 0 {
			return errno(linux.EAGAIN)
		}
		block(waitPipe, 0, 0)
	}
	k := min(n, uintptr(p.w-p.r))
	copyRing(buf, fl.pipe, p.r, k, false)
	p.r += uint64(k)
	pipeChanged(int(fl.pipe))
	return k
}

// pipeWrite writes to the write end fl (write(2) of a pipe); a blocking
// write returns when all n bytes are in the pipe.
//
//go:nosplit
func pipeWrite(fl *file, buf, n uintptr) uintptr {
	p := &pipes[fl.pipe%maxPipes]
	done := uintptr(0)
	for done < n {
		if p.readers == 0 {
			if done > 0 {
				return done
			}
			return errno(linux.EPIPE)
		}
		space := pipeSize - uintptr(p.w-p.r)
		if space == 0 {
			if fl.flags&linux.O_NONBLOCK != 0 {
				if done > 0 {
					return done
				}
				return errno(linux.EAGAIN)
			}
			block(waitPipe, 0, 0)
			continue
		}
		k := min(n-done, space)
		copyRing(buf+done, fl.pipe, p.w, k, true)
		p.w += uint64(k)
		done += k
		pipeChanged(int(fl.pipe))
	}
	return done
}

// copyRing copies k bytes between user memory at buf and pipe p's ring at
// position pos, in two pieces where the ring wraps.
//
//go:nosplit
func copyRing(buf uintptr, p uint8, pos uint64, k uintptr, toRing bool) {
	ring := pipeBuf[p%maxPipes]
	off := uintptr(pos % pipeSize)
	first := min(k, pipeSize-off)
	if toRing {
		memmove(ring+off, buf, first)
		memmove(ring, buf+first, k-first)
	} else {
		memmove(buf, ring+off, first)
		memmove(buf+first, ring, k-first)
	}
}

//go:nosplit
func pipeClose(fl *file) {
	p := &pipes[fl.pipe%maxPipes]
	if fl.kind == fdPipeR {
		p.readers--
	} else {
		p.writers--
	}
	if p.readers == 0 && p.writers == 0 {
		*p = pipe{}
	}
	pipeChanged(int(fl.pipe))
}

// pipeReadiness returns the epoll events of a pipe end.
//
//go:nosplit
func pipeReadiness(fl *file) uint32 {
	p := &pipes[fl.pipe%maxPipes]
	var ev uint32
	if fl.kind == fdPipeR {
		if p.w != p.r {
			ev |= linux.EPOLLIN
		}
		if p.writers == 0 {
			ev |= linux.EPOLLIN | linux.EPOLLHUP | linux.EPOLLRDHUP
		}
	} else {
		if p.w-p.r < pipeSize {
			ev |= linux.EPOLLOUT
		}
		if p.readers == 0 {
			ev |= linux.EPOLLERR
		}
	}
	return ev
}

// sysSplice implements Linux syscall splice(2) as Linux does for descriptors
// that do not support splicing: EINVAL, after checking both descriptors. The
// net and os packages then copy through user memory.
//
//go:nosplit
func sysSplice(f *trapFrame) uintptr {
	if getFile(f.arg(0)) == nil || getFile(f.arg(2)) == nil {
		return errno(linux.EBADF)
	}
	return errno(linux.EINVAL)
}

// sysSendfile implements Linux syscall sendfile(2) as Linux does for an
// input descriptor it cannot map: EINVAL. Callers copy through user memory.
//
//go:nosplit
func sysSendfile(f *trapFrame) uintptr {
	if getFile(f.arg(0)) == nil || getFile(f.arg(1)) == nil {
		return errno(linux.EBADF)
	}
	return errno(linux.EINVAL)
}
