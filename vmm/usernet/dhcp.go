package usernet

import (
	"net/netip"
	"time"

	"unigo.dev/unigo/proto/dhcp"
)

// The LAN's DHCP server (RFC 2131): the one guest gets GuestAddr, with the
// gateway as router and the DNS forwarder as name server, the lease QEMU's
// user-mode network gives. It answers at the Ethernet level, ahead of the
// netstack: the guest has no address to be answered at yet.

const leaseTime = 24 * time.Hour

var (
	gatewayAddr = netip.MustParseAddr(Gateway)
	dnsAddr     = netip.MustParseAddr(DNS)
	guestPrefix = netip.MustParsePrefix(GuestAddr)
)

// serveDHCP answers frame if it is a DHCP message to the server port, and
// reports whether it was one.
func (n *Network) serveDHCP(frame []byte) bool {
	_, _, dst, payload, ok := dhcp.ParseFrame(frame)
	if !ok || dst.Port() != dhcp.ServerPort {
		return false
	}
	m, err := dhcp.Parse(payload)
	if err != nil || m.Reply {
		return true // nobody else on this LAN serves port 67
	}
	r := &dhcp.Message{Reply: true, XID: m.XID, Flags: m.Flags, CHAddr: m.CHAddr, ServerID: gatewayAddr}
	switch m.Type {
	case dhcp.Discover:
		r.Type = dhcp.Offer
	case dhcp.Request:
		want := m.RequestedIP
		if !want.IsValid() || want.IsUnspecified() {
			want = m.CIAddr // renewing: the address is in ciaddr (RFC 2131 §4.3.2)
		}
		r.Type = dhcp.Ack
		if want != guestPrefix.Addr() {
			r.Type = dhcp.Nak
		}
	default:
		return true // DECLINE, RELEASE, INFORM: one fixed address, nothing to change
	}
	if r.Type != dhcp.Nak {
		r.YIAddr, r.SIAddr = guestPrefix.Addr(), gatewayAddr
		r.PrefixLen, r.Router, r.DNS, r.Lease = guestPrefix.Bits(), gatewayAddr, []netip.Addr{dnsAddr}, leaseTime
	}
	// Broadcast unless the client has its address and did not ask for a
	// broadcast (RFC 2131 §4.1).
	dstMAC, dstIP := dhcp.Broadcast, netip.AddrFrom4([4]byte{255, 255, 255, 255})
	if m.CIAddr.IsValid() && !m.CIAddr.IsUnspecified() && m.Flags&dhcp.BroadcastFlag == 0 {
		dstMAC, dstIP = m.CHAddr, m.CIAddr
	}
	n.deliver(dhcp.Frame([6]byte([]byte(gatewayMAC)), dstMAC,
		netip.AddrPortFrom(gatewayAddr, dhcp.ServerPort), netip.AddrPortFrom(dstIP, dhcp.ClientPort), r.Marshal()))
	return true
}
