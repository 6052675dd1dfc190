package dhcp

import (
	"encoding/binary"
	"net/netip"
)

// DHCP travels in UDP over IPv4 over Ethernet before the client has an
// address, so both ends build and read those headers themselves: Ethernet II
// (14 bytes), IPv4 without options (RFC 791, 20 bytes), UDP (RFC 768, 8).

// Broadcast is the Ethernet broadcast address.
var Broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

const (
	ethLen     = 14
	ipLen      = 20
	udpLen     = 8
	etherIPv4  = 0x0800
	protoUDP   = 17
	defaultTTL = 64
)

// Frame returns an Ethernet frame carrying payload in a UDP datagram from
// src to dst (IPv4 addresses).
func Frame(srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, payload []byte) []byte {
	f := make([]byte, ethLen+ipLen+udpLen+len(payload))
	copy(f[0:], dstMAC[:])
	copy(f[6:], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:], etherIPv4)
	ip := f[ethLen:]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+udpLen+len(payload)))
	ip[8], ip[9] = defaultTTL, protoUDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip[:ipLen], 0)))
	udp := ip[ipLen:]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	copy(udp[udpLen:], payload)
	// The UDP checksum covers a pseudo-header of the addresses, the
	// protocol and the UDP length (RFC 768); 0 would mean "none", so a
	// computed 0 is sent as 0xffff.
	c := ^fold(sum(udp, sum(ip[12:20], uint32(protoUDP)+uint32(udpLen+len(payload)))))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return f
}

// ParseFrame returns the UDP payload of an Ethernet frame carrying an
// unfragmented IPv4 UDP datagram, with its source and destination, its
// Ethernet source and whether it parsed. Checksums are not checked: the
// frame comes from a virtual link.
func ParseFrame(f []byte) (srcMAC [6]byte, src, dst netip.AddrPort, payload []byte, ok bool) {
	if len(f) < ethLen+ipLen+udpLen || binary.BigEndian.Uint16(f[12:]) != etherIPv4 {
		return
	}
	ip := f[ethLen:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ihl < ipLen || ip[9] != protoUDP || total > len(ip) || total < ihl+udpLen {
		return
	}
	if frag := binary.BigEndian.Uint16(ip[6:]); frag&0x3fff != 0 { // more fragments, or an offset
		return
	}
	udp := ip[ihl:total]
	n := int(binary.BigEndian.Uint16(udp[4:]))
	if n < udpLen || n > len(udp) {
		return
	}
	srcMAC = [6]byte(f[6:12])
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp[0:]))
	dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:]))
	return srcMAC, src, dst, udp[udpLen:n], true
}

// sum adds b as big-endian 16-bit words to c (RFC 1071).
func sum(b []byte, c uint32) uint32 {
	for ; len(b) >= 2; b = b[2:] {
		c += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		c += uint32(b[0]) << 8
	}
	return c
}

func fold(c uint32) uint16 {
	for c > 0xffff {
		c = c&0xffff + c>>16
	}
	return uint16(c)
}
