package usernet

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// IPv6 on the LAN, with QEMU's user-mode network's addresses: the prefix
// fec0::/64 (IPv6Prefix), the gateway fec0::2 (the host itself, as
// 10.0.2.2), DNS at fec0::3, and the router's link-local fe80::2. The guest
// autoconfigures from router advertisements (RFC 4861 §6.2.6, RFC 4862),
// which the monitor sends in answer to a router solicitation, at the
// Ethernet level as it answers DHCP.

const IPv6Prefix = "fec0::/64"

var (
	routerLL   = tcpip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: 2})
	gateway6   = tcpip.AddrFrom16([16]byte{0: 0xfe, 1: 0xc0, 15: 2})
	dns6       = tcpip.AddrFrom16([16]byte{0: 0xfe, 1: 0xc0, 15: 3})
	allNodes   = tcpip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 1})
	allNodesL2 = [6]byte{0x33, 0x33, 0, 0, 0, 1} // RFC 2464 §7
)

// serveRS answers frame if it is a router solicitation, and reports whether
// it was one.
func (n *Network) serveRS(frame []byte) bool {
	if len(frame) < header.EthernetMinimumSize+header.IPv6MinimumSize+header.ICMPv6MinimumSize {
		return false
	}
	eth := header.Ethernet(frame)
	ip := header.IPv6(frame[header.EthernetMinimumSize:])
	if eth.Type() != header.IPv6ProtocolNumber || ip.TransportProtocol() != header.ICMPv6ProtocolNumber ||
		header.ICMPv6(ip.Payload()).Type() != header.ICMPv6RouterSolicit {
		return false
	}
	dst, dstMAC := ip.SourceAddress(), [6]byte([]byte(eth.SourceAddress()))
	if dst.Unspecified() {
		dst, dstMAC = allNodes, allNodesL2 // RFC 4861 §6.2.6
	}
	n.deliver(routerAdvert(dstMAC, dst))
	return true
}

// routerAdvert builds a router advertisement (RFC 4861 §4.2) for dst: this
// router as default for 30 minutes, its link-layer address, and fec0::/64
// on-link and for autoconfiguration.
func routerAdvert(dstMAC [6]byte, dst tcpip.Address) []byte {
	const raLen = header.ICMPv6HeaderSize + header.NDPRAMinimumSize + 8 + 32
	f := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+raLen)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: gatewayMAC, DstAddr: tcpip.LinkAddress(dstMAC[:]), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{PayloadLength: raLen, TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 255, // NDP's (§6.1.2)
		SrcAddr: routerLL, DstAddr: dst})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6RouterAdvert)
	ra := icmp[header.ICMPv6HeaderSize:]
	ra[0] = 64                                // current hop limit
	binary.BigEndian.PutUint16(ra[2:], 30*60) // router lifetime, s
	opts := ra[header.NDPRAMinimumSize:]
	opts[0], opts[1] = 1, 1 // source link-layer address, 8 bytes
	copy(opts[2:8], []byte(gatewayMAC))
	pi := opts[8:]
	pi[0], pi[1], pi[2], pi[3] = 3, 4, 64, 0xc0 // prefix information, 32 bytes, /64, on-link and autonomous
	binary.BigEndian.PutUint32(pi[4:], 86400)   // valid lifetime
	binary.BigEndian.PutUint32(pi[8:], 14400)   // preferred lifetime
	p := netip.MustParsePrefix(IPv6Prefix).Addr().As16()
	copy(pi[16:], p[:])
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: routerLL, Dst: dst}))
	return f
}
