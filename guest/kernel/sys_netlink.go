package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Route netlink sockets (netlink(7), rtnetlink(7)), enough for Go's
// net.Interfaces and net.InterfaceAddrs (syscall.NetlinkRIB): a dump request
// for RTM_GETLINK or RTM_GETADDR is answered with the interfaces, lo and, when
// the network component brought it up, eth0, then NLMSG_DONE.

const (
	afNetlink    = 16
	sockRaw      = 3
	netlinkRoute = 0
	nlPid        = 1 // the port ID of the socket, as getsockname reports it

	rtmNewLink = 16
	rtmGetLink = 18
	rtmNewAddr = 20
	rtmGetAddr = 22
	nlmsgDone  = 3
	nlmFMulti  = 2

	iflaAddress = 1
	iflaIfname  = 3
	iflaMTU     = 4
	ifaAddress  = 1
	ifaLocal    = 2
	ifaLabel    = 3

	iffUp        = 0x1
	iffBroadcast = 0x2
	iffLoopback  = 0x8
	iffRunning   = 0x40
	iffMulticast = 0x1000
)

// eth0 as the component reported it (SysNetIface).
var (
	ethUp     bool
	ethMAC    [6]byte
	ethAddr   [4]byte
	ethPrefix uint8
	ethMTU    uint32
)

// nlBuf is where a reply is built: trap context, one system call at a time.
var (
	nlBuf [2048]byte
	nlLen int
)

//go:nosplit
func nlPut16(v uint16) { nlBuf[nlLen], nlBuf[nlLen+1] = byte(v), byte(v>>8); nlLen += 2 }

//go:nosplit
func nlPut32(v uint32) { nlPut16(uint16(v)); nlPut16(uint16(v >> 16)) }

//go:nosplit
func nlPad() {
	for nlLen%4 != 0 {
		nlBuf[nlLen] = 0
		nlLen++
	}
}

// nlHeader starts a message of type typ; nlEnd writes its length.
//
//go:nosplit
func nlHeader(typ, flags uint16, seq uint32) int {
	start := nlLen
	nlPut32(0)
	nlPut16(typ)
	nlPut16(flags)
	nlPut32(seq)
	nlPut32(nlPid)
	return start
}

//go:nosplit
func nlEnd(start int) {
	n := uint32(nlLen - start)
	nlBuf[start], nlBuf[start+1], nlBuf[start+2], nlBuf[start+3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
}

//go:nosplit
func nlAttr(typ uint16, data []byte) {
	nlPut16(uint16(4 + len(data)))
	nlPut16(typ)
	for _, b := range data {
		nlBuf[nlLen] = b
		nlLen++
	}
	nlPad()
}

//go:nosplit
func nlAttr32(typ uint16, v uint32) {
	b := [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	nlAttr(typ, b[:])
}

// nlReply builds the answer to a dump request of type req.
//
//go:nosplit
func nlReply(req uint16, seq uint32) {
	nlLen = 0
	for i := 1; i <= 2; i++ {
		if i == 2 && !ethUp {
			break
		}
		lo := i == 1
		name := "eth0"
		if lo {
			name = "lo"
		}
		var nameZ [8]byte
		copy(nameZ[:], name)
		if req == rtmGetLink {
			h := nlHeader(rtmNewLink, nlmFMulti, seq)
			typ, flags, mtu := uint16(1), uint32(iffUp|iffBroadcast|iffRunning|iffMulticast), ethMTU // ARPHRD_ETHER
			if lo {
				typ, flags, mtu = 772, iffUp|iffLoopback|iffRunning, 65536 // ARPHRD_LOOPBACK
			}
			nlBuf[nlLen], nlBuf[nlLen+1] = 0, 0 // ifinfomsg: family, pad
			nlLen += 2
			nlPut16(typ)
			nlPut32(uint32(i))
			nlPut32(flags)
			nlPut32(0xffffffff)
			mac := ethMAC
			if lo {
				mac = [6]byte{}
			}
			nlAttr(iflaAddress, mac[:])
			nlAttr(iflaIfname, nameZ[:len(name)+1])
			nlAttr32(iflaMTU, mtu)
			nlEnd(h)
		} else {
			h := nlHeader(rtmNewAddr, nlmFMulti, seq)
			addr, prefix, scope := ethAddr, ethPrefix, uint8(0) // RT_SCOPE_UNIVERSE
			if lo {
				addr, prefix, scope = [4]byte{127, 0, 0, 1}, 8, 254 // RT_SCOPE_HOST
			}
			nlBuf[nlLen], nlBuf[nlLen+1], nlBuf[nlLen+2], nlBuf[nlLen+3] = linux.AF_INET, prefix, 0, scope
			nlLen += 4
			nlPut32(uint32(i))
			nlAttr(ifaAddress, addr[:])
			nlAttr(ifaLocal, addr[:])
			nlAttr(ifaLabel, nameZ[:len(name)+1])
			nlEnd(h)
		}
	}
	h := nlHeader(nlmsgDone, nlmFMulti, seq)
	nlPut32(0)
	nlEnd(h)
}

// netlinkSend takes a request (sendto(2) on a netlink socket).
//
//go:nosplit
func netlinkSend(fl *file, buf, n uintptr) uintptr {
	if n < 16 || !userRange(buf, n) {
		return errno(linux.EINVAL)
	}
	typ := uint16(load16u(buf + 4))
	if typ != rtmGetLink && typ != rtmGetAddr {
		return errno(linux.EOPNOTSUPP)
	}
	fl.count = uint64(typ) | uint64(load32u(buf+8))<<16 // the request and its sequence number
	fl.sema = true                                      // a reply is waiting
	return n
}

// netlinkRecv returns the reply to the last request (recvfrom(2)).
//
//go:nosplit
func netlinkRecv(fl *file, buf, n, from, fromLen uintptr) uintptr {
	if !fl.sema {
		return errno(linux.EAGAIN)
	}
	nlReply(uint16(fl.count), uint32(fl.count>>16))
	if uintptr(nlLen) > n || !userRange(buf, uintptr(nlLen)) {
		return errno(linux.EINVAL)
	}
	memmove(buf, uintptr(unsafe.Pointer(&nlBuf[0])), uintptr(nlLen))
	fl.sema = false
	if e := writeSockaddrNl(from, fromLen, 0); e != 0 {
		return e
	}
	return uintptr(nlLen)
}

// writeSockaddrNl writes a sockaddr_nl with port ID pid.
//
//go:nosplit
func writeSockaddrNl(buf, lenp uintptr, pid uint32) uintptr {
	if buf == 0 || lenp == 0 {
		return 0
	}
	sa := [3]uint32{afNetlink, pid, 0}
	size := uint32(12)
	if !userRange(lenp, 4) || !copyOut(buf, unsafe.Pointer(&sa), min(uintptr(uint32(load64u(lenp))), 12)) ||
		!copyOut(lenp, unsafe.Pointer(&size), 4) {
		return errno(linux.EFAULT)
	}
	return 0
}
