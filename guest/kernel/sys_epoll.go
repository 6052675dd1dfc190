package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// epoll(7) over the kernel's own descriptors. Readiness is level-triggered and
// computed when a waiter looks; a change of state wakes the waiters.

const maxEpollRegs = 2048

type epollReg struct {
	used   bool
	epfd   int32
	fd     int32
	events uint32
	data   [8]byte
	gen    uint32 // the file's gen when last reported (EPOLLET)
}

var epollRegs *[maxEpollRegs]epollReg // a kernel table (ktab.go)

// sysEpollCreate1 implements Linux syscall epoll_create1(2).
//
//go:nosplit
func sysEpollCreate1(f *trapFrame) uintptr {
	flags := f.arg(0)
	if flags&^linux.O_CLOEXEC != 0 {
		return errno(linux.EINVAL)
	}
	fd := allocFD(fdEpoll)
	if fd < 0 {
		return errno(linux.EMFILE)
	}
	fdt[fd].cloexec = flags != 0
	return uintptr(fd)
}

// sysEpollCtl implements Linux syscall epoll_ctl(2).
//
//go:nosplit
func sysEpollCtl(f *trapFrame) uintptr {
	epfd := f.arg(0)
	op := f.arg(1)
	fd := f.arg(2)
	evp := f.arg(3)
	ep := getFile(epfd)
	if ep == nil || getFile(fd) == nil {
		return errno(linux.EBADF)
	}
	if ep.kind != fdEpoll || fd == epfd {
		return errno(linux.EINVAL)
	}
	if k := fdFile(int(fd)).kind; k == fdSynth || k == fdDev || k == fdVnode || k == fdBlk {
		return errno(linux.EPERM) // as Linux answers for regular files and these devices
	}
	var ev linux.EpollEvent
	if op != linux.EPOLL_CTL_DEL {
		if !copyIn(unsafe.Pointer(&ev), evp, unsafe.Sizeof(ev)) {
			return errno(linux.EFAULT)
		}
	}
	r := epollFind(int(epfd), int(fd))
	switch op {
	case linux.EPOLL_CTL_ADD:
		if r != nil {
			return errno(linux.EEXIST)
		}
		i := 0
		for ; i < ktabLen(ktabEpoll) && epollRegs[i].used; i++ {
		}
		if i == ktabLen(ktabEpoll) && ktabGrow(ktabEpoll, unsafe.Sizeof(epollReg{}), maxEpollRegs) < 0 {
			return errno(linux.ENOSPC)
		}
		epollRegs[i] = epollReg{used: true, epfd: int32(epfd), fd: int32(fd), events: ev.Events, data: ev.Data, gen: readyGen(fdFile(int(fd))) - 1}
		return 0
	case linux.EPOLL_CTL_MOD:
		if r == nil {
			return errno(linux.ENOENT)
		}
		r.events, r.data, r.gen = ev.Events, ev.Data, readyGen(fdFile(int(fd)))-1
		return 0
	case linux.EPOLL_CTL_DEL:
		if r == nil {
			return errno(linux.ENOENT)
		}
		*r = epollReg{}
		return 0
	}
	return errno(linux.EINVAL)
}

//go:nosplit
func epollFind(epfd, fd int) *epollReg {
	for i := range epollRegs {
		if i == ktabLen(ktabEpoll) {
			break // the used prefix (ktab.go)
		}
		r := &epollRegs[i]
		if r.used && int(r.epfd) == epfd && int(r.fd) == fd {
			return r
		}
	}
	return nil
}

// epollForget drops the registrations of a closed descriptor.
//
//go:nosplit
func epollForget(fd int) {
	for i := range epollRegs {
		if i == ktabLen(ktabEpoll) {
			break // the used prefix (ktab.go)
		}
		if epollRegs[i].used && int(epollRegs[i].fd) == fd {
			epollRegs[i] = epollReg{}
		}
	}
}

//go:nosplit
func epollCloseInstance(epfd int) {
	for i := range epollRegs {
		if i == ktabLen(ktabEpoll) {
			break // the used prefix (ktab.go)
		}
		if epollRegs[i].used && int(epollRegs[i].epfd) == epfd {
			epollRegs[i] = epollReg{}
		}
	}
}

// readiness returns the epoll events fd is ready for now.
//
//go:nosplit
func readiness(fd int) uint32 {
	fl := fdFile(fd)
	switch fl.kind {
	case fdEventfd:
		ev := uint32(linux.EPOLLOUT)
		if fl.count > 0 {
			ev |= linux.EPOLLIN
		}
		return ev
	case fdConsole:
		return linux.EPOLLOUT
	case fdPipeR, fdPipeW:
		return pipeReadiness(fl)
	case fdSocket:
		return sockReadiness(int(fl.sock))
	case fdNetlink:
		if fl.sema {
			return linux.EPOLLIN | linux.EPOLLOUT
		}
		return linux.EPOLLOUT
	}
	return 0
}

// sysEpollWait implements Linux syscall epoll_wait(2).
//
//go:nosplit
func sysEpollWait(f *trapFrame) uintptr {
	return epollWait(f.arg(0), f.arg(1), f.arg(2), int32(f.arg(3)))
}

// sysEpollPwait implements Linux syscall epoll_pwait(2). The signal mask
// argument is ignored: no signal is delivered during the wait yet.
//
//go:nosplit
func sysEpollPwait(f *trapFrame) uintptr {
	return epollWait(f.arg(0), f.arg(1), f.arg(2), int32(f.arg(3)))
}

//go:nosplit
func epollWait(epfd, events, maxevents uintptr, timeout int32) uintptr {
	ep := getFile(epfd)
	if ep == nil {
		return errno(linux.EBADF)
	}
	if ep.kind != fdEpoll || int(maxevents) <= 0 {
		return errno(linux.EINVAL)
	}
	const evSize = unsafe.Sizeof(linux.EpollEvent{})
	if !userRange(events, maxevents*evSize) {
		return errno(linux.EFAULT)
	}
	var deadline int64
	if timeout > 0 {
		deadline = nanotime() + int64(timeout)*1_000_000
	}
	for {
		n := uintptr(0)
		for i := range epollRegs {
			if i == ktabLen(ktabEpoll) {
				break // the used prefix (ktab.go)
			}
			r := &epollRegs[i]
			if !r.used || uintptr(r.epfd) != epfd {
				continue
			}
			ready := readiness(int(r.fd)) & (r.events | linux.EPOLLERR | linux.EPOLLHUP)
			if ready == 0 {
				continue
			}
			// Edge-triggered: report a ready file again only after its
			// state changed (any change: Go tolerates spurious events).
			g := readyGen(fdFile(int(r.fd)))
			if r.events&linux.EPOLLET != 0 {
				if r.gen == g {
					continue
				}
				r.gen = g
			}
			ev := linux.EpollEvent{Events: ready, Data: r.data}
			memmove(events+n*evSize, uintptr(unsafe.Pointer(&ev)), evSize)
			if r.events&linux.EPOLLONESHOT != 0 {
				r.events = 0
			}
			n++
			if n == maxevents {
				break
			}
		}
		if n > 0 || timeout == 0 {
			return n
		}
		if !block(waitEpoll, epfd, deadline) {
			return 0
		}
		if interrupted() {
			return errno(linux.EINTR)
		}
	}
}

// wakeWaiters makes every thread blocked in a wait of kind runnable, to look
// again.
//
//go:nosplit
func wakeWaiters(kind waitKind) {
	for i := range threads {
		if threads[i].state == tsBlocked && threads[i].wait == kind {
			wake(i)
		}
	}
}
