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

// eth0 as the component reported it (SysNetIface, SysNetIface6).
var (
	ethUp     bool
	ethMAC    [6]byte
	ethAddr   [4]byte
	ethPrefix uint8
	ethMTU    uint32
	eth6      [maxEth6]struct {
		addr   [16]byte
		prefix uint8
	}
	nEth6 int
)

const (
	ethIndex = 2 // eth0's interface index; lo is 1
	maxEth6  = 4
)

// netIface6 records an IPv6 address of eth0 (its link-local one, say).
//
//go:nosplit
func netIface6(p, prefix uintptr) uintptr {
	var a [16]byte
	if !copyIn(unsafe.Pointer(&a), p, 16) || prefix > 128 {
		return errno(linux.EINVAL)
	}
	for i := 0; i < nEth6; i++ {
		if eth6[i].addr == a {
			eth6[i].prefix = uint8(prefix)
			return 0
		}
	}
	if nEth6 == maxEth6 {
		return errno(linux.ENOSPC)
	}
	eth6[nEth6].addr, eth6[nEth6].prefix = a, uint8(prefix)
	nEth6++
	return 0
}

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
			addr, prefix, scope := ethAddr, ethPrefix, uint8(0) // RT_SCOPE_UNIVERSE
			if lo {
				addr, prefix, scope = [4]byte{127, 0, 0, 1}, 8, 254 // RT_SCOPE_HOST
			}
			if lo || ethAddr != [4]byte{} {
				h := nlHeader(rtmNewAddr, nlmFMulti, seq)
				nlIfaddr(linux.AF_INET, prefix, scope, uint32(i))
				nlAttr(ifaAddress, addr[:])
				nlAttr(ifaLocal, addr[:])
				nlAttr(ifaLabel, nameZ[:len(name)+1])
				nlEnd(h)
			}
			if lo {
				nlAddr6(&[16]byte{15: 1}, 128, 254, 1, seq)
			} else {
				for j := 0; j < nEth6; j++ {
					scope := uint8(0)
					if isLinkLocal(&eth6[j].addr) {
						scope = 253 // RT_SCOPE_LINK
					}
					nlAddr6(&eth6[j].addr, eth6[j].prefix, scope, ethIndex, seq)
				}
			}
		}
	}
	h := nlHeader(nlmsgDone, nlmFMulti, seq)
	nlPut32(0)
	nlEnd(h)
}

// nlIfaddr appends struct ifaddrmsg.
//
//go:nosplit
func nlIfaddr(family, prefix, scope uint8, index uint32) {
	nlBuf[nlLen], nlBuf[nlLen+1], nlBuf[nlLen+2], nlBuf[nlLen+3] = family, prefix, 0, scope
	nlLen += 4
	nlPut32(index)
}

// nlAddr6 appends an RTM_NEWADDR message for IPv6 address a.
//
//go:nosplit
func nlAddr6(a *[16]byte, prefix, scope uint8, index, seq uint32) {
	h := nlHeader(rtmNewAddr, nlmFMulti, seq)
	nlIfaddr(linux.AF_INET6, prefix, scope, index)
	nlAttr(ifaAddress, a[:])
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
