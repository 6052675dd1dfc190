package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// UDP sockets: the rings hold whole datagrams, each behind a dgramHdr-byte
// header (socket.go), so a read takes one datagram and the rest of a long
// one is dropped, as recv(2) does for SOCK_DGRAM. The component opens the
// netstack endpoint when the socket is bound (NetOpBind), which bind,
// connect or the first send does; until the rings exist a send waits
// (EAGAIN), and then the socket turns writable.

// dgramScratch holds a datagram header on its way between a ring and the
// kernel: trap context has one CPU and a small stack.
var dgramScratch [dgramHdr]byte

// dgramConnect sets the default peer of UDP socket s (connect(2) on UDP).
//
//go:nosplit
func dgramConnect(s int, a *inAddr) uintptr {
	k := &sockets[s]
	if isAny(&a.addr) {
		setLoopback(&a.addr)
	}
	if e := dgramAutobind(s); e != 0 {
		return e
	}
	k.remote, k.state = *a, sockConnected
	return 0
}

// dgramAutobind gives s an ephemeral port if it has none, and asks the
// component for its endpoint.
//
//go:nosplit
func dgramAutobind(s int) uintptr {
	k := &sockets[s]
	if !k.bound {
		if k.local.port = ephemeralPort(s, &k.local.addr); k.local.port == 0 {
			return errno(linux.EAGAIN)
		}
		k.bound = true
		netNeed(s, NetOpBind)
	}
	return 0
}

//go:nosplit
func putHdr(h *[dgramHdr]byte, n uintptr, a *inAddr) {
	h[0], h[1] = byte(n), byte(n>>8)
	memmove(uintptr(unsafe.Pointer(&h[2])), uintptr(unsafe.Pointer(a)), netAddrSize)
}

// dgramSend queues v as one datagram for to.
//
//go:nosplit
func dgramSend(s int, v *uvec, nb bool, to *inAddr) uintptr {
	k := &sockets[s]
	n := v.total
	if n > maxDgram {
		return errno(linux.EMSGSIZE)
	}
	if e := dgramAutobind(s); e != 0 {
		return e
	}
	if isAny(&to.addr) {
		setLoopback(&to.addr)
	}
	if k.family == linux.AF_INET6 && k.v6only && is4(&to.addr) {
		return errno(linux.ENETUNREACH)
	}
	for k.tx.size == 0 || k.tx.size-(k.tx.w-k.tx.r) < uint64(dgramHdr+n) {
		if k.tx.size != 0 && uint64(dgramHdr+n) > k.tx.size {
			return errno(linux.EMSGSIZE)
		}
		if nb {
			return errno(linux.EAGAIN)
		}
		block(waitSock, 0, 0)
	}
	h := &dgramScratch
	putHdr(h, n, to)
	ringCopy(&k.tx, uintptr(unsafe.Pointer(h)), dgramHdr, true)
	ringCopyV(&k.tx, v, 0, n, true)
	netNeed(s, NetOpTx)
	sockChanged(s)
	return n
}

// dgramRecv takes the next datagram into v, its sender into from (if not
// nil), and returns the bytes copied; v.trunc reports a datagram longer
// than v (the rest is dropped, as recv(2) does for SOCK_DGRAM).
//
//go:nosplit
func dgramRecv(s int, v *uvec, nb bool, from *inAddr) uintptr {
	k := &sockets[s]
	for k.rx.w == k.rx.r {
		if nb {
			return errno(linux.EAGAIN)
		}
		block(waitSock, 0, 0)
	}
	h := &dgramScratch
	ringCopy(&k.rx, uintptr(unsafe.Pointer(h)), dgramHdr, false)
	size := uintptr(h[0]) | uintptr(h[1])<<8
	if from != nil {
		memmove(uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&h[2])), netAddrSize)
	}
	c := min(v.total, size)
	ringCopyV(&k.rx, v, 0, c, false)
	k.rx.r += uint64(size - c)
	v.trunc = c < size
	netNeed(s, NetOpRxSpace)
	sockChanged(s)
	return c
}

// netRxDgram puts the component's received datagram, from the NetAddr at
// fromp, into s's ring: all of it, or nothing when it does not fit (a full
// socket drops, as UDP does).
//
//go:nosplit
func netRxDgram(s int, buf, n, fromp uintptr) uintptr {
	k := &sockets[s]
	var from inAddr
	if !userRange(buf, n) || !copyIn(unsafe.Pointer(&from), fromp, netAddrSize) {
		return errno(linux.EFAULT)
	}
	if n > maxDgram || k.rx.size-(k.rx.w-k.rx.r) < uint64(dgramHdr+n) {
		return 0
	}
	h := &dgramScratch
	putHdr(h, n, &from)
	ringCopy(&k.rx, uintptr(unsafe.Pointer(h)), dgramHdr, true)
	ringCopy(&k.rx, buf, n, true)
	sockChanged(s)
	return n
}

// netTxDgram takes s's next datagram to send into the component's buffer,
// with its destination as a NetAddr at to.
//
//go:nosplit
func netTxDgram(s int, buf, n, to uintptr) uintptr {
	k := &sockets[s]
	if k.tx.w == k.tx.r {
		return 0
	}
	h := &dgramScratch
	pos := k.tx.r
	ringCopy(&k.tx, uintptr(unsafe.Pointer(h)), dgramHdr, false)
	size := uintptr(h[0]) | uintptr(h[1])<<8
	if size > n || !userRange(buf, size) || !userRange(to, netAddrSize) {
		k.tx.r = pos
		return errno(linux.EMSGSIZE)
	}
	ringCopy(&k.tx, buf, size, false)
	memmove(to, uintptr(unsafe.Pointer(&h[2])), netAddrSize)
	sockChanged(s)
	return size
}
