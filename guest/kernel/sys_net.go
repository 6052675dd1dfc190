package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// The private system calls of the network component (socket.go). Only the
// component makes them; the arguments are still checked like any program's.

//go:nosplit
func sysNet(nr uintptr, f *trapFrame) uintptr {
	if nr == SysNetAttach {
		fl := getFile(f.arg(0))
		if fl == nil || fl.kind != fdEventfd {
			return errno(linux.EBADF)
		}
		netDoorbel, netUp = int(f.arg(0)), true
		return 0
	}
	if !netUp {
		return errno(linux.ENOSYS)
	}
	switch nr {
	case SysNetCommands:
		return netCommands(f.arg(0), f.arg(1))
	case SysNetDevice, SysNetDMA, SysNetIRQ, SysNetConfig, SysNetPCIRead, SysNetPCIWrite, SysNetMSI:
		return sysNetDev(nr, f)
	case SysNetIface:
		mac, addr := uint64(f.arg(0)), uint64(f.arg(1))
		for i := range ethMAC {
			ethMAC[i] = byte(mac >> (8 * (5 - i)))
		}
		ethAddr = [4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}
		ethPrefix, ethMTU, ethUp = uint8(addr>>32), uint32(f.arg(2)), true
		if dns := uint32(f.arg(3)); dns != 0 {
			resolvConfServer(dns)
		}
		return 0
	case SysNetIface6:
		return netIface6(f.arg(0), f.arg(1))
	case SysNetGrow:
		return netGrow(f.arg(0), f.arg(1), f.arg(2), f.arg(3))
	case SysNetRxv, SysNetTxv:
		return netXfer(f.arg(0), f.arg(1), nr == SysNetRxv)
	}
	s := f.arg(0)
	k := sockAt(s)
	if k == nil {
		return errno(linux.EBADF)
	}
	switch nr {
	case SysNetRings:
		rx, tx, size := f.arg(1), f.arg(2), f.arg(3)
		if size == 0 || !userRange(rx, size) || !userRange(tx, size) {
			return errno(linux.EFAULT)
		}
		k.rx, k.tx = ring{buf: rx, size: uint64(size)}, ring{buf: tx, size: uint64(size)}
		sockChanged(int(s))
	case SysNetRx:
		buf, n := f.arg(1), f.arg(2)
		if !userRange(buf, n) {
			return errno(linux.EFAULT)
		}
		c := min(n, uintptr(k.rx.size-(k.rx.w-k.rx.r)))
		ringCopy(&k.rx, buf, c, true)
		sockChanged(int(s))
		return c
	case SysNetTx:
		buf, n := f.arg(1), f.arg(2)
		if !userRange(buf, n) {
			return errno(linux.EFAULT)
		}
		c := min(n, uintptr(k.tx.w-k.tx.r))
		ringCopy(&k.tx, buf, c, false)
		sockChanged(int(s))
		return c

	case SysNetAccepted:
		if k.state != sockListening || k.closing {
			return errno(linux.ECONNREFUSED)
		}
		var ends [2]inAddr
		rx, tx, size := f.arg(2), f.arg(3), f.arg(4)
		if size == 0 || !userRange(rx, size) || !userRange(tx, size) || !copyIn(unsafe.Pointer(&ends), f.arg(1), 2*netAddrSize) {
			return errno(linux.EFAULT)
		}
		if k.nq >= k.backlog {
			return errno(linux.ECONNREFUSED)
		}
		c := allocSocket()
		if c < 0 {
			return errno(linux.ENFILE)
		}
		n := &sockets[c]
		n.state, n.bound, n.known = sockConnected, true, true
		n.family, n.v6only, n.opts = k.family, k.v6only, k.opts // inherited, as on Linux
		n.local, n.remote = ends[0], ends[1]
		n.rx, n.tx = ring{buf: rx, size: uint64(size)}, ring{buf: tx, size: uint64(size)}
		n.parent = int16(s)
		if k.nq == 0 {
			k.qhead = int16(c)
		} else {
			sockets[k.qtail].qnext = int16(c)
		}
		k.qtail = int16(c)
		k.nq++
		sockChanged(int(s))
		return uintptr(c)
	case SysNetEvent:
		switch f.arg(1) {
		case NetEvConnected: // arg: the local address the route chose
			var a inAddr
			if !copyIn(unsafe.Pointer(&a), f.arg(2), netAddrSize) {
				return errno(linux.EFAULT)
			}
			if k.state == sockConnecting {
				k.state = sockConnected
				if !isAny(&a.addr) {
					k.local.addr = a.addr
				}
			}
		case NetEvFailed:
			if k.state == sockConnecting {
				k.state, k.err = sockNew, linux.Errno(f.arg(2))
			}
		case NetEvEOF:
			k.rdEOF = true
		case NetEvReset:
			k.broken, k.err = true, linux.Errno(f.arg(2))
		case NetEvReleased:
			if k.closing {
				*k = socket{}
			}
		default:
			return errno(linux.EINVAL)
		}
		sockChanged(int(s))
	case SysNetRxDgram:
		return netRxDgram(int(s), f.arg(1), f.arg(2), f.arg(3))
	case SysNetTxDgram:
		return netTxDgram(int(s), f.arg(1), f.arg(2), f.arg(3))
	case SysNetInfo:
		var v uintptr
		if k.dgram {
			v |= NetInfoDgram
		}
		if k.state == sockConnected {
			v |= NetInfoConnected
		}
		if k.family == linux.AF_INET6 {
			v |= NetInfoIPv6
		}
		if k.v6only {
			v |= NetInfoV6Only
		}
		return v
	case SysNetOpts:
		if !copyOut(f.arg(1), unsafe.Pointer(&k.opts), unsafe.Sizeof(k.opts)) {
			return errno(linux.EFAULT)
		}
	case SysNetAddrs:
		out := f.arg(1)
		v := [2]inAddr{k.local, k.remote}
		if !copyOut(out, unsafe.Pointer(&v), 2*netAddrSize) {
			return errno(linux.EFAULT)
		}
	default:
		return errno(linux.ENOSYS)
	}
	return 0
}

// netGrow moves socket k's receive or send ring to the size bytes at buf,
// the bytes it holds copied over in order: the component starts a
// connection's rings small and grows them when they fill. Not inlined: it
// keeps sysNet's frame small.
//
//go:nosplit
//go:noinline
func netGrow(s, which, buf, size uintptr) uintptr {
	k := sockAt(s)
	if k == nil {
		return errno(linux.EBADF)
	}
	g := &k.rx
	if which == NetRingTx {
		g = &k.tx
	} else if which != NetRingRx {
		return errno(linux.EINVAL)
	}
	live := uintptr(g.w - g.r)
	if g.size == 0 || size < live || size > 16<<20 {
		return errno(linux.EINVAL)
	}
	if !userRange(buf, size) {
		return errno(linux.EFAULT)
	}
	ringCopy(g, buf, live, false)
	*g = ring{buf: buf, size: uint64(size), w: uint64(live)}
	sockChanged(int(s))
	return 0
}

// netXfer moves bytes between the component's buffers and the rings of the
// sockets n NetXfer entries at buf name: into receive rings (in) or out of
// send rings. One call serves every connection a batch of the socket
// device's packets touched, where SysNetRx and SysNetTx cost one each. Not
// inlined: it keeps sysNet's frame small.
//
//go:nosplit
//go:noinline
func netXfer(buf, n uintptr, in bool) uintptr {
	const size = unsafe.Sizeof(NetXfer{})
	if n > maxSockets {
		return errno(linux.EINVAL)
	}
	if !userRange(buf, n*size) {
		return errno(linux.EFAULT)
	}
	for i := uintptr(0); i < n; i++ {
		var x NetXfer
		memmove(uintptr(unsafe.Pointer(&x)), buf+i*size, size)
		x.Done, x.Had = 0, 0
		k := sockAt(uintptr(x.Sock))
		if k != nil && userRange(uintptr(x.Buf), uintptr(x.Len)) {
			g, c := &k.tx, uint64(0)
			if in {
				g = &k.rx
				c = min(uint64(x.Len), g.size-(g.w-g.r))
			} else {
				c = min(uint64(x.Len), g.w-g.r)
			}
			x.Had = uint32(g.w - g.r)
			if c > 0 {
				ringCopy(g, uintptr(x.Buf), uintptr(c), in)
				sockChanged(int(x.Sock))
			}
			x.Done = uint32(c)
		}
		memmove(buf+i*size, uintptr(unsafe.Pointer(&x)), size)
	}
	return 0
}

// netCommands writes up to n NetCommands at buf, one per socket with work,
// and clears that work.
//
//go:nosplit
func netCommands(buf, n uintptr) uintptr {
	const size = unsafe.Sizeof(NetCommand{})
	if !userRange(buf, n*size) {
		return errno(linux.EFAULT)
	}
	w := uintptr(0)
	if netIRQ && n > 0 {
		c := NetCommand{Sock: NetSockDevice, Ops: NetOpIRQ}
		memmove(buf, uintptr(unsafe.Pointer(&c)), size)
		netIRQ = false
		w++
	}
	for i := range sockets {
		if i == ktabLen(ktabSockets) {
			break // the used prefix (ktab.go)
		}
		if w == n {
			break
		}
		k := &sockets[i]
		if k.state == sockFree || k.pending == 0 {
			continue
		}
		c := NetCommand{Sock: uint32(i), Ops: k.pending}
		memmove(buf+w*size, uintptr(unsafe.Pointer(&c)), size)
		k.pending = 0
		w++
	}
	if d := getFile(uintptr(netDoorbel)); d != nil && d.kind == fdEventfd && w < n {
		d.count = 0 // everything is out: the doorbell is quiet again
	}
	return w
}
