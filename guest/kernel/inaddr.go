package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Socket addresses. The kernel keeps every address as IPv6 (16 bytes), an
// IPv4 one as IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), so that an
// AF_INET6 socket that takes IPv4 peers needs nothing special (ipv6(7));
// sockaddr_in and sockaddr_in6 are read and written at the system call.

// inAddr is an address and port.
type inAddr struct {
	addr [16]byte
	port uint16
}

// NetAddr is an address in the private calls: the same bytes as inAddr.
type NetAddr struct {
	Addr [16]byte
	Port uint16
}

const netAddrSize = 18

var _ [unsafe.Sizeof(NetAddr{}) - netAddrSize]byte // sizes agree
var _ [unsafe.Sizeof(inAddr{}) - netAddrSize]byte

//go:nosplit
func v4(a [4]byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}
}

// halves returns a's two 64-bit halves as stored (little-endian): the
// tests below compare words, so that trap context builds no temporaries.
//
//go:nosplit
func halves(a *[16]byte) (uint64, uint64) {
	return *(*uint64)(unsafe.Pointer(&a[0])), *(*uint64)(unsafe.Pointer(&a[8]))
}

// mapped4 is the second half of ::ffff:0.0.0.0 as halves reads it.
const mapped4 = 0xffff0000

//go:nosplit
func is4(a *[16]byte) bool {
	lo, hi := halves(a)
	return lo == 0 && uint32(hi) == mapped4
}

// isAny reports the wildcard: :: or 0.0.0.0.
//
//go:nosplit
func isAny(a *[16]byte) bool {
	lo, hi := halves(a)
	return lo == 0 && (hi == 0 || hi == mapped4)
}

// isLoopback reports ::1 or 127/8.
//
//go:nosplit
func isLoopback(a *[16]byte) bool {
	lo, hi := halves(a)
	return lo == 0 && (hi == 1<<56 || (uint32(hi) == mapped4 && byte(hi>>32) == 127))
}

// setLoopback makes a the loopback address of its family.
//
//go:nosplit
func setLoopback(a *[16]byte) {
	if is4(a) {
		*a = [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}
	} else {
		*a = [16]byte{15: 1}
	}
}

//go:nosplit
func isLinkLocal(a *[16]byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }

// readSockaddr reads the n-byte socket address at a for socket k: a
// sockaddr_in for AF_INET, a sockaddr_in6 for AF_INET6 (or a sockaddr_in,
// as IPv4-mapped, unless the socket is IPV6_V6ONLY).
//
//go:nosplit
func readSockaddr(k *socket, a, n uintptr) (inAddr, uintptr) {
	if n < 2 || n > 128 || !userRange(a, 2) {
		return inAddr{}, errno(linux.EINVAL)
	}
	switch load16u(a) {
	case linux.AF_INET:
		var sa linux.SockaddrIn
		if n < unsafe.Sizeof(sa) {
			return inAddr{}, errno(linux.EINVAL)
		}
		if k.family == linux.AF_INET6 && k.v6only {
			return inAddr{}, errno(linux.EAFNOSUPPORT)
		}
		if !copyIn(unsafe.Pointer(&sa), a, unsafe.Sizeof(sa)) {
			return inAddr{}, errno(linux.EFAULT)
		}
		return inAddr{v4(sa.Addr), uint16(sa.Port[0])<<8 | uint16(sa.Port[1])}, 0
	case linux.AF_INET6:
		var sa linux.SockaddrIn6
		if k.family != linux.AF_INET6 {
			return inAddr{}, errno(linux.EAFNOSUPPORT)
		}
		if n < 24 { // SIN6_LEN_RFC2133: without the scope ID
			return inAddr{}, errno(linux.EINVAL)
		}
		if !copyIn(unsafe.Pointer(&sa), a, min(n, unsafe.Sizeof(sa))) {
			return inAddr{}, errno(linux.EFAULT)
		}
		if k.v6only && is4(&sa.Addr) {
			return inAddr{}, errno(linux.EINVAL)
		}
		return inAddr{sa.Addr, uint16(sa.Port[0])<<8 | uint16(sa.Port[1])}, 0
	}
	return inAddr{}, errno(linux.EAFNOSUPPORT)
}

// writeSockaddr writes a as socket k's kind of address at buf with its
// length at lenp, cut to the length given there (accept(2),
// getsockname(2)).
//
//go:nosplit
func writeSockaddr(k *socket, buf, lenp uintptr, a *inAddr) uintptr {
	if buf == 0 || lenp == 0 {
		return 0
	}
	if !userRange(lenp, 4) {
		return errno(linux.EFAULT)
	}
	n := uintptr(uint32(load64u(lenp)))
	port := [2]byte{byte(a.port >> 8), byte(a.port)}
	var size uint32
	if k.family == linux.AF_INET6 {
		sa := linux.SockaddrIn6{Family: linux.AF_INET6, Port: port, Addr: a.addr}
		if isLinkLocal(&a.addr) {
			sa.ScopeID = ethIndex // the only link with link-local addresses
		}
		size = uint32(unsafe.Sizeof(sa))
		if !copyOut(buf, unsafe.Pointer(&sa), min(n, unsafe.Sizeof(sa))) {
			return errno(linux.EFAULT)
		}
	} else {
		sa := linux.SockaddrIn{Family: linux.AF_INET, Port: port, Addr: [4]byte{a.addr[12], a.addr[13], a.addr[14], a.addr[15]}}
		size = uint32(unsafe.Sizeof(sa))
		if !copyOut(buf, unsafe.Pointer(&sa), min(n, unsafe.Sizeof(sa))) {
			return errno(linux.EFAULT)
		}
	}
	if !copyOut(lenp, unsafe.Pointer(&size), 4) {
		return errno(linux.EFAULT)
	}
	return 0
}

// usable reports whether addr may be bound: the wildcard, loopback, or one
// of eth0's addresses.
//
//go:nosplit
func usable(addr *[16]byte) bool {
	if isAny(addr) || isLoopback(addr) {
		return true
	}
	if ethUp && is4(addr) && [4]byte(addr[12:]) == ethAddr {
		return true
	}
	for i := 0; i < nEth6; i++ {
		if eth6[i].addr == *addr {
			return true
		}
	}
	return false
}
