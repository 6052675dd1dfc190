package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Sockets, split in two. The kernel keeps what the socket system calls need
// to answer at once, in trap context: the socket's state and addresses, its
// accept queue, and a receive and a send ring. The protocol work is done by
// the network component (package guest/net, linked only into programs that
// use the net package), which runs gVisor's netstack as ordinary goroutines.
// The two meet through private system calls: the kernel marks sockets that
// need the component's attention (a listen, a connect, data to send, room to
// receive, a shutdown, a close) and signals a doorbell eventfd that the
// component waits on through the Go runtime's own netpoller; the component
// fills receive rings, drains send rings and reports events. Go's net package
// uses non-blocking sockets and epoll, so no system call waits for the
// component: a connect answers EINPROGRESS and completes as EPOLLOUT, a read
// with nothing buffered answers EAGAIN.

const (
	maxSockets  = 1024
	maxBacklog  = 4096  // Linux's default net.core.somaxconn
	ephemeralLo = 32768 // Linux's default ip_local_port_range
	ephemeralHi = 60999
)

// Socket states.
const (
	sockFree uint8 = iota
	sockNew
	sockListening
	sockConnecting
	sockConnected
)

// The component's work on a socket: bits of socket.pending (NetCommand.Ops).
const (
	NetOpListen   = 1 << iota // start accepting on the bound address
	NetOpConnect              // connect to the remote address from the local one
	NetOpTx                   // the send ring has data
	NetOpRxSpace              // the receive ring has room again
	NetOpShutdown             // no more data to send after the ring (SHUT_WR)
	NetOpClose                // the program closed the socket: finish and release it
	NetOpIRQ                  // with Sock = NetSockDevice: the network device interrupted
	NetOpBind                 // a datagram socket needs its endpoint, at the bound address
	NetOpOpts                 // the program set options for the endpoint (SysNetOpts)
)

// NetSockDevice is the Sock of a NetCommand about the device, not a socket.
const NetSockDevice = 0xffffffff

// Events the component reports with SysNetEvent.
const (
	NetEvConnected = 1 + iota // the connect succeeded
	NetEvFailed               // the connect failed: arg is the errno
	NetEvEOF                  // the peer will send no more
	NetEvReset                // the connection broke: arg is the errno
	NetEvReleased             // the component is done with the socket after NetOpClose
)

// Private system calls of the network component, far above Linux's numbers.
const (
	SysNetAttach   = 0x554e0000 + iota // (doorbell eventfd) → 0
	SysNetCommands                     // (*[n]NetCommand, n) → entries written
	SysNetRings                        // (sock, rx, tx, size) → 0: the rings, in the component's memory
	SysNetRx                           // (sock, buf, n) → bytes taken into the receive ring
	SysNetTx                           // (sock, buf, n) → bytes taken out of the send ring
	SysNetAccepted                     // (listening sock, *[2]NetAddr local and remote, rx, tx, size) → the new socket, queued for accept4
	SysNetEvent                        // (sock, NetEv*, errno or for NetEvConnected *NetAddr) → 0
	SysNetAddrs                        // (sock, *[2]NetAddr) → 0: the local and remote addresses
	SysNetDevice                       // (i, *[4]uint64) → 0: virtio device i: location, transport (NetTransport*), irq, device type
	SysNetDMA                          // (bytes) → the physical address of that much zeroed, contiguous, identity-mapped RAM
	SysNetIRQ                          // (virtio-mmio base, irq) → 0: the device's interrupt becomes NetOpIRQ commands
	SysNetConfig                       // (buf, n) → bytes: the command line's net.* words
	SysNetRxDgram                      // (sock, buf, n, *NetAddr from) → n: one datagram into the receive ring, or 0 if it does not fit
	SysNetTxDgram                      // (sock, buf, n, *NetAddr to) → bytes of the next datagram, its address at to; 0: none
	SysNetInfo                         // (sock) → NetInfo* bits
	SysNetIface                        // (MAC, addr | prefix<<32, MTU, DNS server) → 0: eth0 is up (netlink, bind, /etc/resolv.conf)
	SysNetPCIRead                      // (bdf, offset) → the PCI function's configuration dword there
	SysNetPCIWrite                     // (bdf, offset, value) → 0
	SysNetMSI                          // (bdf) → the MSI address | data<<32 that interrupts this CPU at vecDevice
	SysNetIface6                       // (*[16]byte, prefix) → 0: an IPv6 address of eth0, for netlink and bind
	SysNetOpts                         // (sock, *NetOpts) → 0: the options the program set
	SysNetGrow                         // (sock, NetRingRx or NetRingTx, buf, size) → 0: that ring moves to buf, its bytes copied over
	SysNetRxv                          // (*[n]NetXfer, n) → 0: SysNetRx for each entry, Done and Had written back
	SysNetTxv                          // (*[n]NetXfer, n) → 0: SysNetTx for each entry, Done and Had written back
	sysNetEnd
)

// The rings of SysNetGrow.
const (
	NetRingRx = 0
	NetRingTx = 1
)

// NetOpts are the socket options the component applies to its endpoint
// (SysNetOpts, after a NetOpOpts); Set has a NetOpt* bit for each option
// the program set, the others keep netstack's defaults.
type NetOpts struct {
	Set       uint32
	KeepAlive int32 // SO_KEEPALIVE, 0 or 1
	NoDelay   int32 // TCP_NODELAY, 0 or 1
	Linger    int32 // SO_LINGER: seconds, or -1 for off
	KeepIdle  int32 // TCP_KEEPIDLE, seconds
	KeepIntvl int32 // TCP_KEEPINTVL, seconds
	KeepCnt   int32 // TCP_KEEPCNT
	SndBuf    int32 // SO_SNDBUF, bytes
	RcvBuf    int32 // SO_RCVBUF, bytes
}

// NetOpts.Set bits.
const (
	NetOptKeepAlive = 1 << iota
	NetOptNoDelay
	NetOptLinger
	NetOptKeepIdle
	NetOptKeepIntvl
	NetOptKeepCnt
	NetOptSndBuf
	NetOptRcvBuf
)

// Transports of SysNetDevice's devices: where the location points.
const (
	NetTransportMMIO = 1 // location: the virtio-mmio registers' base
	NetTransportPCI  = 2 // location: the PCI function, bus<<8 | dev<<3 | fn
)

// NetInfo bits of SysNetInfo.
const (
	NetInfoDgram     = 1 << 0 // a UDP socket
	NetInfoConnected = 1 << 1 // with a remote address (connect)
	NetInfoIPv6      = 1 << 2 // an AF_INET6 socket: IPv4 peers are IPv4-mapped unless NetInfoV6Only
	NetInfoV6Only    = 1 << 3
)

// A datagram in a ring: a header of dgramHdr bytes, the length (u16) and
// the address (a NetAddr: the source received or the destination to send
// to), then the bytes.
const (
	dgramHdr = 2 + netAddrSize
	maxDgram = 65507 // IPv4's largest UDP payload
)

// NetXfer is one entry of SysNetRxv or SysNetTxv: Len bytes at Buf for
// socket Sock's receive ring, or room for Len bytes of its send ring. The
// kernel writes back Done, the bytes moved, and Had, the bytes the ring
// held before; an entry naming no socket moves nothing.
type NetXfer struct {
	Sock uint32
	Done uint32
	Buf  uint64
	Len  uint32
	Had  uint32
}

// NetCommand is one entry of SysNetCommands.
type NetCommand struct {
	Sock uint32
	Ops  uint32
}

// ring is a byte ring in the component's memory: w-r bytes are buffered.
type ring struct {
	buf  uintptr
	size uint64
	r, w uint64
}

type socket struct {
	family    uint16 // AF_INET or AF_INET6
	v6only    bool   // IPV6_V6ONLY: an AF_INET6 socket without IPv4-mapped peers
	dgram     bool   // UDP
	state     uint8
	fds       uint8 // descriptors open on it (0 while in an accept queue)
	known     bool  // the component knows it: release through NetOpClose
	closing   bool  // closed by the program, waiting for NetEvReleased
	bound     bool
	rdEOF     bool        // the peer sent FIN, or SHUT_RD
	wrShut    bool        // SHUT_WR
	err       linux.Errno // pending SO_ERROR
	broken    bool        // reset: reads and writes fail
	local     inAddr
	remote    inAddr
	rx, tx    ring
	pending   uint32 // NetOp* bits for the component
	gen       uint32 // bumped on each change of readiness: with the descriptions' own, for EPOLLET (readyGen)
	qhead     int16  // the accept queue: the first queued socket, linked through qnext
	qtail     int16
	qnext     int16
	nq        int   // sockets in the accept queue
	backlog   int   // listen(2)'s backlog, at most maxBacklog
	parent    int16 // the listener whose queue holds this socket, or -1
	reuseAddr bool
	broadcast bool
	opts      NetOpts // for the component's endpoint
}

var (
	sockets    *[maxSockets]socket      // a kernel table (ktab.go)
	netDoorbel int                 = -1 // the component's eventfd
	netUp      bool                     // a network component attached
	nextPort   uint16              = ephemeralLo
)

//go:nosplit
func allocSocket() int {
	i := 0
	for ; i < ktabLen(ktabSockets) && sockets[i].state != sockFree; i++ {
	}
	if i == ktabLen(ktabSockets) && ktabGrow(ktabSockets, unsafe.Sizeof(socket{}), maxSockets) < 0 {
		return -1
	}
	sockets[i] = socket{state: sockNew, parent: -1}
	return i
}

// sockAt is socket s, which the network component names; nil if there is
// no such socket. Not inlined: it keeps sysNet's frame small.
//
//go:nosplit
//go:noinline
func sockAt(s uintptr) *socket {
	if s >= maxSockets || s >= uintptr(ktabLen(ktabSockets)) || sockets[s].state == sockFree {
		return nil
	}
	return &sockets[s]
}

// sockChanged records a change of socket s's readiness: epoll and blocked
// readers and writers look again.
//
//go:nosplit
func sockChanged(s int) {
	sockets[s].gen++
	if p := uint(sockets[s].parent); p < uint(len(sockets)) { // a queued socket's listener changes with it
		sockets[p].gen++
	}
	wakeWaiters(waitSock)
	wakeWaiters(waitEpoll)
}

// netNeed asks the component to look at socket s for ops.
//
//go:nosplit
func netNeed(s int, ops uint32) {
	sockets[s].pending |= ops
	sockets[s].known = true
	ringDoorbell()
}

// ringDoorbell signals the component's eventfd.
//
//go:nosplit
func ringDoorbell() {
	if i := uint(netDoorbel); i < uint(len(fdt)) { // not -1; and no bounds-check panic in trap context
		if d := getFile(uintptr(i)); d != nil && d.kind == fdEventfd {
			d.count++
			d.gen++
			wakeWaiters(waitEpoll)
		}
	}
}

// sockReadiness returns the epoll events of socket s (socket(7), tcp(7)).
//
//go:nosplit
func sockReadiness(s int) uint32 {
	k := &sockets[s]
	if k.dgram {
		var ev uint32
		if k.rx.w != k.rx.r {
			ev |= linux.EPOLLIN
		}
		if k.tx.size != 0 && k.tx.size-(k.tx.w-k.tx.r) > dgramHdr {
			ev |= linux.EPOLLOUT
		}
		return ev
	}
	switch k.state {
	case sockListening:
		if k.nq > 0 {
			return linux.EPOLLIN
		}
		return 0
	case sockConnecting:
		return 0
	case sockConnected:
		if k.broken {
			return linux.EPOLLIN | linux.EPOLLOUT | linux.EPOLLERR | linux.EPOLLHUP
		}
		var ev uint32
		if k.rx.w != k.rx.r || k.rdEOF {
			ev |= linux.EPOLLIN
		}
		if k.rdEOF {
			ev |= linux.EPOLLRDHUP
		}
		if k.tx.size != 0 && k.tx.w-k.tx.r < k.tx.size && !k.wrShut {
			ev |= linux.EPOLLOUT
		}
		if k.rdEOF && k.wrShut {
			ev |= linux.EPOLLHUP
		}
		return ev
	}
	// Not connected: a failed connect shows as writable with an error.
	if k.err != 0 {
		return linux.EPOLLOUT | linux.EPOLLERR | linux.EPOLLHUP
	}
	return linux.EPOLLOUT | linux.EPOLLHUP
}

// ringCopy copies k bytes between user memory at buf and ring g at its read
// (out) or write (in) position, in two pieces where it wraps.
//
//go:nosplit
func ringCopy(g *ring, buf, k uintptr, in bool) {
	pos := g.r
	if in {
		pos = g.w
	}
	off := uintptr(pos % g.size)
	first := min(k, uintptr(g.size)-off)
	if in {
		memmove(g.buf+off, buf, first)
		memmove(g.buf, buf+first, k-first)
		g.w += uint64(k)
	} else {
		memmove(buf, g.buf+off, first)
		memmove(buf+first, g.buf, k-first)
		g.r += uint64(k)
	}
}

// space is what a socket bound at addr answers for: spaceV4, spaceV6, or
// both for an AF_INET6 wildcard that takes IPv4-mapped peers.
//
//go:nosplit
func (k *socket) space(addr *[16]byte) uint8 {
	switch {
	case !isAny(addr) && is4(addr), k.family == linux.AF_INET:
		return spaceV4
	case !isAny(addr), k.v6only:
		return spaceV6
	}
	return spaceV4 | spaceV6
}

const (
	spaceV4 = 1
	spaceV6 = 2
)

// portFree reports whether local may be bound: no other socket holds its
// port on an overlapping address (SO_REUSEADDR lets a listener's port be
// taken only by sockets that are not listening, as on Linux).
//
//go:nosplit
func portFree(self int, local *inAddr) bool {
	me := &sockets[uint(self)%maxSockets]
	for i := range sockets {
		if i == ktabLen(ktabSockets) {
			break // the used prefix (ktab.go)
		}
		k := &sockets[i]
		if i == self || k.state == sockFree || !k.bound || k.local.port != local.port || k.dgram != me.dgram {
			continue
		}
		if !isAny(&k.local.addr) && !isAny(&local.addr) {
			if k.local.addr != local.addr {
				continue
			}
		} else if k.space(&k.local.addr)&me.space(&local.addr) == 0 {
			continue
		}
		if k.reuseAddr && me.reuseAddr && k.state != sockListening {
			continue
		}
		return false
	}
	return true
}

// ephemeralPort returns a free port for local's address, or 0.
//
//go:nosplit
func ephemeralPort(self int, addr *[16]byte) uint16 {
	a := inAddr{addr: *addr}
	for n := 0; n <= ephemeralHi-ephemeralLo; n++ {
		p := nextPort
		nextPort++
		if nextPort > ephemeralHi {
			nextPort = ephemeralLo
		}
		if a.port = p; portFree(self, &a) {
			return p
		}
	}
	return 0
}

// sockRelease releases socket s and the sockets still queued on it.
//
//go:nosplit
func sockRelease(s int) {
	k := &sockets[s]
	for c := int(k.qhead); k.nq > 0; k.nq-- {
		next := int(sockets[c].qnext)
		sockets[c].parent = -1
		releaseOne(c) // queued sockets have no descriptor and no queue
		c = next
	}
	releaseOne(s)
}

// releaseOne frees socket s, through the component if it knows s.
//
//go:nosplit
func releaseOne(s int) {
	k := &sockets[s]
	if k.known {
		k.closing = true
		netNeed(s, NetOpClose)
		return
	}
	*k = socket{}
}

// sockClose drops a descriptor's reference to s.
//
//go:nosplit
func sockClose(s int) {
	k := &sockets[s]
	if k.fds > 0 {
		k.fds--
	}
	if k.fds == 0 && k.parent < 0 {
		sockRelease(s)
	}
}
