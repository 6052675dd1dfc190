package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// The socket system calls (socket(2) and the rest), over the kernel's half of
// a socket (socket.go): TCP and UDP over IPv4 and IPv6 (addresses:
// inaddr.go; datagrams: sys_dgram.go).

//go:nosplit
func sockOf(fd uintptr) (*file, int, uintptr) {
	fl := getFile(fd)
	if fl == nil {
		return nil, 0, errno(linux.EBADF)
	}
	if fl.kind != fdSocket {
		return nil, 0, errno(linux.ENOTSOCK)
	}
	return fl, int(fl.sock), 0
}

// sysSocket implements Linux syscall socket(2).
//
//go:nosplit
func sysSocket(f *trapFrame) uintptr {
	domain, typ, proto := f.arg(0), f.arg(1), f.arg(2)
	if domain == afNetlink {
		if t := typ &^ (linux.SOCK_NONBLOCK | linux.SOCK_CLOEXEC); (t != sockRaw && t != linux.SOCK_DGRAM) || proto != netlinkRoute {
			return errno(linux.EPROTONOSUPPORT)
		}
		fd := allocFD(fdNetlink)
		if fd < 0 {
			return errno(linux.EMFILE)
		}
		fdFile(fd).flags = linux.O_RDWR | uint32(typ&linux.SOCK_NONBLOCK)
		fdt[fd].cloexec = typ&linux.SOCK_CLOEXEC != 0
		return uintptr(fd)
	}
	if !netUp {
		return errno(linux.EAFNOSUPPORT) // the image has no network component
	}
	if domain != linux.AF_INET && domain != linux.AF_INET6 {
		return errno(linux.EAFNOSUPPORT) // local sockets come later
	}
	dgram := false
	switch typ &^ (linux.SOCK_NONBLOCK | linux.SOCK_CLOEXEC) {
	case linux.SOCK_STREAM:
		if proto != 0 && proto != linux.IPPROTO_TCP {
			return errno(linux.EPROTONOSUPPORT) // MPTCP among others: Go falls back to TCP
		}
	case linux.SOCK_DGRAM:
		if proto != 0 && proto != linux.IPPROTO_UDP {
			return errno(linux.EPROTONOSUPPORT)
		}
		dgram = true
	default:
		return errno(linux.EPROTONOSUPPORT)
	}
	s := allocSocket()
	if s < 0 {
		return errno(linux.ENFILE)
	}
	sockets[s].dgram, sockets[s].family = dgram, uint16(domain)
	fd := allocFD(fdSocket)
	if fd < 0 {
		sockets[s] = socket{}
		return errno(linux.EMFILE)
	}
	fdFile(fd).sock = uint16(s)
	fdFile(fd).flags = linux.O_RDWR | uint32(typ&linux.SOCK_NONBLOCK)
	fdt[fd].cloexec = typ&linux.SOCK_CLOEXEC != 0
	sockets[s].fds = 1
	return uintptr(fd)
}

// sysBind implements Linux syscall bind(2).
//
//go:nosplit
func sysBind(f *trapFrame) uintptr {
	if fl := getFile(f.arg(0)); fl != nil && fl.kind == fdNetlink {
		return 0 // the kernel's one port ID
	}
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	k := &sockets[s]
	a, e := readSockaddr(k, f.arg(1), f.arg(2))
	if e != 0 {
		return e
	}
	if k.bound || k.state != sockNew {
		return errno(linux.EINVAL)
	}
	if !usable(&a.addr) {
		return errno(linux.EADDRNOTAVAIL)
	}
	if a.port == 0 {
		if a.port = ephemeralPort(s, &a.addr); a.port == 0 {
			return errno(linux.EADDRINUSE)
		}
	} else if !portFree(s, &a) {
		return errno(linux.EADDRINUSE)
	}
	k.local, k.bound = a, true
	if k.dgram {
		netNeed(s, NetOpBind) // the component opens the endpoint that receives
	}
	return 0
}

// sysListen implements Linux syscall listen(2).
//
//go:nosplit
func sysListen(f *trapFrame) uintptr {
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	k := &sockets[s]
	if k.dgram {
		return errno(linux.EOPNOTSUPP)
	}
	k.backlog = min(max(int(int32(f.arg(1))), 1), maxBacklog)
	if k.state == sockListening {
		return 0
	}
	if k.state != sockNew {
		return errno(linux.EINVAL)
	}
	if !k.bound {
		if k.local.port = ephemeralPort(s, &k.local.addr); k.local.port == 0 {
			return errno(linux.EADDRINUSE)
		}
		k.bound = true
	}
	k.state = sockListening
	netNeed(s, NetOpListen)
	return 0
}

// sysAccept4 implements Linux syscall accept4(2).
//
//go:nosplit
func sysAccept4(f *trapFrame) uintptr {
	fl, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	flags := f.arg(3)
	if flags&^(linux.SOCK_NONBLOCK|linux.SOCK_CLOEXEC) != 0 {
		return errno(linux.EINVAL)
	}
	k := &sockets[s]
	if k.dgram {
		return errno(linux.EOPNOTSUPP)
	}
	if k.state != sockListening {
		return errno(linux.EINVAL)
	}
	for k.nq == 0 {
		if fl.flags&linux.O_NONBLOCK != 0 {
			return errno(linux.EAGAIN)
		}
		block(waitSock, 0, 0)
		if k.state != sockListening {
			return errno(linux.EINVAL)
		}
	}
	c := int(k.qhead)
	fd := allocFD(fdSocket)
	if fd < 0 {
		return errno(linux.EMFILE)
	}
	k.nq--
	k.qhead = sockets[c].qnext
	sockets[c].parent = -1
	sockets[c].fds = 1
	fdFile(fd).sock = uint16(c)
	fdFile(fd).flags = linux.O_RDWR | uint32(flags&linux.SOCK_NONBLOCK)
	fdt[fd].cloexec = flags&linux.SOCK_CLOEXEC != 0
	sockChanged(s)
	if e := writeSockaddr(k, f.arg(1), f.arg(2), &sockets[c].remote); e != 0 {
		return e
	}
	return uintptr(fd)
}

// sysConnect implements Linux syscall connect(2).
//
//go:nosplit
func sysConnect(f *trapFrame) uintptr {
	fl, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	k := &sockets[s]
	a, e := readSockaddr(k, f.arg(1), f.arg(2))
	if e != 0 {
		return e
	}
	if k.dgram {
		return dgramConnect(s, &a)
	}
	switch k.state {
	case sockConnecting:
		return errno(linux.EALREADY)
	case sockConnected:
		return errno(linux.EISCONN)
	case sockListening:
		return errno(linux.EINVAL)
	}
	if isAny(&a.addr) {
		setLoopback(&a.addr) // connecting to the wildcard reaches this host (ip(7), ipv6(7))
	}
	if isLoopback(&a.addr) && (!k.bound || isAny(&k.local.addr)) {
		k.local.addr = a.addr
		setLoopback(&k.local.addr) // 127.0.0.1 or ::1
	} // elsewhere the route picks the local address (NetEvConnected)
	if !k.bound {
		if k.local.port = ephemeralPort(s, &k.local.addr); k.local.port == 0 {
			return errno(linux.EADDRNOTAVAIL)
		}
		k.bound = true
	}
	k.remote, k.err = a, 0
	k.state = sockConnecting
	netNeed(s, NetOpConnect)
	if fl.flags&linux.O_NONBLOCK != 0 {
		return errno(linux.EINPROGRESS)
	}
	for k.state == sockConnecting {
		block(waitSock, 0, 0)
	}
	if k.state != sockConnected {
		e := k.err
		k.err = 0
		return errno(e)
	}
	return 0
}

// sysGetsockname implements Linux syscall getsockname(2).
//
//go:nosplit
func sysGetsockname(f *trapFrame) uintptr {
	if fl := getFile(f.arg(0)); fl != nil && fl.kind == fdNetlink {
		return writeSockaddrNl(f.arg(1), f.arg(2), nlPid)
	}
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	return writeSockaddr(&sockets[s], f.arg(1), f.arg(2), &sockets[s].local)
}

// sysGetpeername implements Linux syscall getpeername(2).
//
//go:nosplit
func sysGetpeername(f *trapFrame) uintptr {
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	if sockets[s].state != sockConnected {
		return errno(linux.ENOTCONN) // a datagram socket is connected once connect named its peer
	}
	return writeSockaddr(&sockets[s], f.arg(1), f.arg(2), &sockets[s].remote)
}

// sysSetsockopt implements Linux syscall setsockopt(2) for the options Go
// sets. The kernel keeps them; the component applies them to its netstack
// endpoint when the connection exists (NetOpOpts).
//
//go:nosplit
func sysSetsockopt(f *trapFrame) uintptr {
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	level, opt, val, n := f.arg(1), f.arg(2), f.arg(3), f.arg(4)
	if n < 4 || !userRange(val, 4) {
		return errno(linux.EINVAL)
	}
	v := int32(load32u(val))
	k := &sockets[s]
	switch {
	case level == linux.SOL_SOCKET && opt == linux.SO_REUSEADDR:
		k.reuseAddr = v != 0
	case level == linux.SOL_SOCKET && opt == linux.SO_KEEPALIVE:
		k.setOpt(NetOptKeepAlive, &k.opts.KeepAlive, b2i(v != 0))
	case level == linux.SOL_SOCKET && opt == linux.SO_BROADCAST:
		k.broadcast = v != 0
	case level == linux.SOL_SOCKET && opt == linux.SO_SNDBUF:
		k.setOpt(NetOptSndBuf, &k.opts.SndBuf, max(v, 0))
	case level == linux.SOL_SOCKET && opt == linux.SO_RCVBUF:
		k.setOpt(NetOptRcvBuf, &k.opts.RcvBuf, max(v, 0))
	case level == linux.SOL_SOCKET && opt == linux.SO_LINGER:
		if n < 8 || !userRange(val, 8) {
			return errno(linux.EINVAL)
		}
		secs := int32(-1)
		if v != 0 {
			secs = max(int32(load32u(val+4)), 0)
		}
		k.setOpt(NetOptLinger, &k.opts.Linger, secs)
	case level == linux.IPPROTO_IPV6 && opt == linux.IPV6_V6ONLY && k.family == linux.AF_INET6:
		if k.bound {
			return errno(linux.EINVAL) // as Linux: only before bind
		}
		k.v6only = v != 0
	case level == linux.IPPROTO_TCP && opt == linux.TCP_NODELAY:
		k.setOpt(NetOptNoDelay, &k.opts.NoDelay, b2i(v != 0))
	case level == linux.IPPROTO_TCP && opt >= linux.TCP_KEEPIDLE && opt <= linux.TCP_KEEPCNT:
		if v < 1 {
			return errno(linux.EINVAL)
		}
		switch opt {
		case linux.TCP_KEEPIDLE:
			k.setOpt(NetOptKeepIdle, &k.opts.KeepIdle, v)
		case linux.TCP_KEEPINTVL:
			k.setOpt(NetOptKeepIntvl, &k.opts.KeepIntvl, v)
		default:
			k.setOpt(NetOptKeepCnt, &k.opts.KeepCnt, v)
		}
	default:
		return errno(linux.ENOPROTOOPT)
	}
	return 0
}

// setOpt records an option for the component's endpoint and, if the
// component knows the socket, asks it to apply the options.
//
//go:nosplit
func (k *socket) setOpt(bit uint32, field *int32, v int32) {
	*field = v
	k.opts.Set |= bit
	if k.known {
		netNeed(k.index(), NetOpOpts)
	}
}

// index returns k's number.
//
//go:nosplit
func (k *socket) index() int {
	return int((uintptr(unsafe.Pointer(k)) - uintptr(unsafe.Pointer(&sockets[0]))) / unsafe.Sizeof(sockets[0]))
}

//go:nosplit
func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// sysGetsockopt implements Linux syscall getsockopt(2): SO_ERROR and SO_TYPE.
//
//go:nosplit
func sysGetsockopt(f *trapFrame) uintptr {
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	level, opt, val, lenp := f.arg(1), f.arg(2), f.arg(3), f.arg(4)
	if level != linux.SOL_SOCKET || (opt != linux.SO_ERROR && opt != linux.SO_TYPE) {
		return errno(linux.ENOPROTOOPT)
	}
	if !userRange(lenp, 4) || uint32(load64u(lenp)) < 4 || !userRange(val, 4) {
		return errno(linux.EINVAL)
	}
	v := uint32(linux.SOCK_STREAM)
	if sockets[s].dgram {
		v = linux.SOCK_DGRAM
	}
	if opt == linux.SO_ERROR {
		v = uint32(sockets[s].err)
		sockets[s].err = 0
	}
	four := uint32(4)
	copyOut(val, unsafe.Pointer(&v), 4)
	copyOut(lenp, unsafe.Pointer(&four), 4)
	return 0
}

// sysShutdown implements Linux syscall shutdown(2).
//
//go:nosplit
func sysShutdown(f *trapFrame) uintptr {
	_, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	how := f.arg(1)
	k := &sockets[s]
	if how > linux.SHUT_RDWR {
		return errno(linux.EINVAL)
	}
	if k.state != sockConnected {
		return errno(linux.ENOTCONN)
	}
	if how != linux.SHUT_WR {
		k.rdEOF = true
	}
	if how != linux.SHUT_RD && !k.wrShut {
		k.wrShut = true
		netNeed(s, NetOpShutdown)
	}
	sockChanged(s)
	return 0
}

// sockRecv scatters what a socket has received into v: what the receive
// ring holds, up to v's size, or one datagram (v.trunc: cut to fit), with
// the sender at from if that is not nil. nb: do not wait.
//
//go:nosplit
func sockRecv(fl *file, v *uvec, nb bool, from *inAddr) uintptr {
	if e := v.check(); e != 0 {
		return e
	}
	s := int(fl.sock % maxSockets)
	k := &sockets[s]
	if k.dgram {
		return dgramRecv(s, v, nb, from)
	}
	for {
		if k.state != sockConnected {
			return errno(linux.ENOTCONN)
		}
		if k.rx.w != k.rx.r {
			break // what came before a reset is read first, as on Linux
		}
		if k.broken {
			if k.err != 0 {
				return errno(k.err) // ETIMEDOUT after keep-alive probes, say
			}
			return errno(linux.ECONNRESET)
		}
		if k.rdEOF || v.total == 0 {
			break
		}
		if nb {
			return errno(linux.EAGAIN)
		}
		block(waitSock, 0, 0)
	}
	if from != nil {
		*from = k.remote
	}
	c := min(v.total, uintptr(k.rx.w-k.rx.r))
	if c == 0 {
		return 0 // end of stream, or an empty read
	}
	ringCopyV(&k.rx, v, 0, c, false)
	netNeed(s, NetOpRxSpace)
	sockChanged(s)
	return c
}

// sockSend gathers v into a socket's send ring: as much as the ring takes,
// all of it when blocking; a datagram socket takes it whole or not at all.
// to is a datagram's destination, nil for the connected peer.
//
//go:nosplit
func sockSend(fl *file, v *uvec, nb bool, to *inAddr) uintptr {
	if e := v.check(); e != 0 {
		return e
	}
	s := int(fl.sock)
	k := &sockets[s]
	if k.dgram {
		if to != nil {
			return dgramSend(s, v, nb, to)
		}
		if k.state != sockConnected {
			return errno(linux.EDESTADDRREQ)
		}
		return dgramSend(s, v, nb, &k.remote)
	}
	// A stream socket ignores a destination, as tcp(7) does on Linux.
	done, n := uintptr(0), v.total
	for done < n {
		if k.state != sockConnected {
			return errno(linux.ENOTCONN)
		}
		if k.broken || k.wrShut {
			if done > 0 {
				return done
			}
			return errno(linux.EPIPE)
		}
		space := uintptr(k.tx.size - (k.tx.w - k.tx.r))
		if space == 0 {
			if nb {
				if done > 0 {
					return done
				}
				return errno(linux.EAGAIN)
			}
			block(waitSock, 0, 0)
			continue
		}
		c := min(n-done, space)
		ringCopyV(&k.tx, v, done, c, true)
		done += c
		netNeed(s, NetOpTx)
		sockChanged(s)
	}
	return done
}

// sysSendto implements Linux syscall sendto(2).
//
//go:nosplit
func sysSendto(f *trapFrame) uintptr {
	if fl := getFile(f.arg(0)); fl != nil && fl.kind == fdNetlink {
		return netlinkSend(fl, f.arg(1), f.arg(2))
	}
	fl, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	nb, e := msgFlags(fl, f.arg(3), linux.MSG_DONTWAIT|linux.MSG_NOSIGNAL)
	if e != 0 {
		return e
	}
	v := uvec{buf: f.arg(1), n: f.arg(2)}
	if f.arg(4) != 0 {
		to, e := readSockaddr(&sockets[s], f.arg(4), f.arg(5))
		if e != 0 {
			return e
		}
		return sockSend(fl, &v, nb, &to)
	}
	return sockSend(fl, &v, nb, nil)
}

// sysRecvfrom implements Linux syscall recvfrom(2).
//
//go:nosplit
func sysRecvfrom(f *trapFrame) uintptr {
	if fl := getFile(f.arg(0)); fl != nil && fl.kind == fdNetlink {
		return netlinkRecv(fl, f.arg(1), f.arg(2), f.arg(4), f.arg(5))
	}
	fl, s, e := sockOf(f.arg(0))
	if e != 0 {
		return e
	}
	nb, e := msgFlags(fl, f.arg(3), linux.MSG_DONTWAIT)
	if e != 0 {
		return e
	}
	v := uvec{buf: f.arg(1), n: f.arg(2)}
	var from inAddr
	n := sockRecv(fl, &v, nb, &from)
	if int(n) >= 0 {
		if e := writeSockaddr(&sockets[s], f.arg(4), f.arg(5), &from); e != 0 {
			return e
		}
	}
	return n
}
