package netstack

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"unigo.dev/unigo/proto/dhcp"
)

// eth0's DHCP client (RFC 2131 §4.4): DISCOVER, OFFER, REQUEST, ACK, then
// a renewal at half the lease (T1). It speaks in whole Ethernet frames on
// the device, ahead of the netstack, which has no address to speak from
// yet; its replies are taken off the receive path (take).

// lease is what a DHCP server gave.
type lease struct {
	addr   netip.Prefix
	router netip.Addr
	dns    []netip.Addr
	server netip.Addr
	time   time.Duration // dhcp.Infinite: no renewal
}

type dhcpClient struct {
	mac  [6]byte
	send func(frame []byte)
	in   chan *dhcp.Message
}

func newDHCPClient(mac [6]byte, send func([]byte)) *dhcpClient {
	return &dhcpClient{mac: mac, send: send, in: make(chan *dhcp.Message, 8)}
}

// take reports whether frame is a DHCP reply for this client, and queues it.
// It runs on the receive goroutine: it never waits.
func (c *dhcpClient) take(frame []byte) bool {
	_, _, dst, payload, ok := dhcp.ParseFrame(frame)
	if !ok || dst.Port() != dhcp.ClientPort {
		return false
	}
	if m, err := dhcp.Parse(payload); err == nil && m.Reply && m.CHAddr == c.mac {
		select {
		case c.in <- m:
		default: // a burst of replies: the retransmission asks again
		}
	}
	return true
}

// exchange broadcasts m from src until a reply of type want (or a NAK) with
// m's transaction ID comes, retransmitting after 1, 2, 4, 8, 8... seconds
// (RFC 2131 §4.1 asks for 4 s first; a virtual LAN answers in
// microseconds or not at all), for at most limit.
func (c *dhcpClient) exchange(m *dhcp.Message, src netip.Addr, want byte, limit time.Duration) *dhcp.Message {
	frame := dhcp.Frame(c.mac, dhcp.Broadcast, netip.AddrPortFrom(src, dhcp.ClientPort),
		netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcp.ServerPort), m.Marshal())
	deadline := time.Now().Add(limit)
	for wait := time.Second; time.Now().Before(deadline); wait = min(2*wait, 8*time.Second) {
		c.send(frame)
		t := time.NewTimer(min(wait, time.Until(deadline)))
		for done := false; !done; {
			select {
			case r := <-c.in:
				if r.XID == m.XID && (r.Type == want || r.Type == dhcp.Nak) {
					t.Stop()
					return r
				}
			case <-t.C:
				done = true
			}
		}
	}
	return nil
}

// acquire asks for a lease until one comes or limit passes.
func (c *dhcpClient) acquire(limit time.Duration) (lease, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		xid := rand.Uint32()
		offer := c.exchange(&dhcp.Message{XID: xid, Flags: dhcp.BroadcastFlag, CHAddr: c.mac, Type: dhcp.Discover},
			netip.IPv4Unspecified(), dhcp.Offer, time.Until(deadline))
		if offer == nil || offer.Type != dhcp.Offer {
			continue
		}
		ack := c.exchange(&dhcp.Message{XID: xid, Flags: dhcp.BroadcastFlag, CHAddr: c.mac, Type: dhcp.Request,
			RequestedIP: offer.YIAddr, ServerID: offer.ServerID}, netip.IPv4Unspecified(), dhcp.Ack, time.Until(deadline))
		if l, ok := leaseOf(ack); ok {
			return l, true
		}
	}
	return lease{}, false
}

// renew asks the server to extend l (RFC 2131 §4.3.2: ciaddr set, no
// server ID, no requested address). It broadcasts, as rebinding does: the
// client does not resolve the server's Ethernet address.
func (c *dhcpClient) renew(l lease, limit time.Duration) (lease, bool) {
	ack := c.exchange(&dhcp.Message{XID: rand.Uint32(), CIAddr: l.addr.Addr(), CHAddr: c.mac, Type: dhcp.Request},
		l.addr.Addr(), dhcp.Ack, limit)
	return leaseOf(ack)
}

func leaseOf(ack *dhcp.Message) (lease, bool) {
	if ack == nil || ack.Type != dhcp.Ack || !ack.YIAddr.Is4() || ack.YIAddr.IsUnspecified() {
		return lease{}, false
	}
	bits := ack.PrefixLen
	if bits == 0 {
		bits = 24 // no subnet mask option: assume the common /24
	}
	l := lease{addr: netip.PrefixFrom(ack.YIAddr, bits), router: ack.Router, dns: ack.DNS, server: ack.ServerID, time: ack.Lease}
	if l.time == 0 {
		l.time = time.Hour // RFC 2131 makes option 51 mandatory in an ACK; be lenient
	}
	return l, true
}

// keep renews l at T1 for as long as the program runs, applying what the
// server answers with apply; a refused renewal starts over with DISCOVER.
func (c *dhcpClient) keep(l lease, apply func(lease)) {
	for l.time != dhcp.Infinite {
		time.Sleep(l.time / 2)
		if nl, ok := c.renew(l, l.time/2); ok {
			if nl.addr != l.addr {
				apply(nl)
			}
			l = nl
			continue
		}
		nl, _ := c.acquire(1<<62 - 1)
		apply(nl)
		l = nl
	}
}
