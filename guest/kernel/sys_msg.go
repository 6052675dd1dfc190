package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// sendmsg(2) and recvmsg(2), over the same paths as sendto and recvfrom
// with the iovecs gathered or scattered. No ancillary data: a send with
// control messages is refused, a receive reports none.

// msgFlags checks a send or receive's flags against those the kernel
// implements and reports whether the call must not wait.
//
//go:nosplit
func msgFlags(fl *file, flags, allowed uintptr) (bool, uintptr) {
	if flags&^allowed != 0 {
		return false, errno(linux.EOPNOTSUPP) // MSG_PEEK, MSG_OOB, MSG_WAITALL...
	}
	return fl.flags&linux.O_NONBLOCK != 0 || flags&linux.MSG_DONTWAIT != 0, 0
}

// msgSock returns the socket descriptor fd and its message header at mp.
//
//go:nosplit
func msgSock(fd, mp uintptr, m *linux.Msghdr) (*file, uintptr) {
	if fl := getFile(fd); fl != nil && fl.kind == fdNetlink {
		return nil, errno(linux.EOPNOTSUPP) // netlink speaks through sendto and recvfrom
	}
	fl, _, e := sockOf(fd)
	if e != 0 {
		return nil, e
	}
	if !copyIn(unsafe.Pointer(m), mp, unsafe.Sizeof(*m)) {
		return nil, errno(linux.EFAULT)
	}
	return fl, 0
}

// sysSendmsg implements Linux syscall sendmsg(2).
//
//go:nosplit
func sysSendmsg(f *trapFrame) uintptr {
	var m linux.Msghdr
	fl, e := msgSock(f.arg(0), f.arg(1), &m)
	if e != 0 {
		return e
	}
	nb, e := msgFlags(fl, f.arg(2), linux.MSG_DONTWAIT|linux.MSG_NOSIGNAL)
	if e != 0 {
		return e
	}
	if m.Controllen != 0 {
		return errno(linux.EOPNOTSUPP)
	}
	v := uvec{iov: uintptr(m.Iov), cnt: uintptr(m.Iovlen)}
	if m.Name != 0 {
		to, e := readSockaddr(&sockets[fl.sock%maxSockets], uintptr(m.Name), uintptr(m.Namelen))
		if e != 0 {
			return e
		}
		return sockSend(fl, &v, nb, &to)
	}
	return sockSend(fl, &v, nb, nil)
}

// sysRecvmsg implements Linux syscall recvmsg(2).
//
//go:nosplit
func sysRecvmsg(f *trapFrame) uintptr {
	var m linux.Msghdr
	mp := f.arg(1)
	fl, e := msgSock(f.arg(0), mp, &m)
	if e != 0 {
		return e
	}
	nb, e := msgFlags(fl, f.arg(2), linux.MSG_DONTWAIT|linux.MSG_CMSG_CLOEXEC)
	if e != 0 {
		return e
	}
	v := uvec{iov: uintptr(m.Iov), cnt: uintptr(m.Iovlen)}
	var from inAddr
	n := sockRecv(fl, &v, nb, &from)
	if int(n) < 0 {
		return n
	}
	if m.Name != 0 {
		if e := writeSockaddr(&sockets[fl.sock%maxSockets], uintptr(m.Name), mp+unsafe.Offsetof(m.Namelen), &from); e != 0 {
			return e
		}
	}
	m.Controllen, m.Flags = 0, 0
	if v.trunc {
		m.Flags = linux.MSG_TRUNC
	}
	if !copyOut(mp+unsafe.Offsetof(m.Controllen), unsafe.Pointer(&m.Controllen), 8) ||
		!copyOut(mp+unsafe.Offsetof(m.Flags), unsafe.Pointer(&m.Flags), 4) {
		return errno(linux.EFAULT)
	}
	return n
}
