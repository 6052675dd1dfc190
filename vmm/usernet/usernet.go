// Package usernet is the own monitor's user-mode network: a small virtual
// LAN between the guest and the monitor process, which needs no root and no
// tap device. The monitor's end runs gVisor's netstack as the gateway
// (Gateway): TCP connections the guest opens to any address are made from
// the monitor with ordinary sockets (the gateway's own address reaches the
// host's loopback, as 10.0.2.2 does under QEMU), and host ports given with
// -p are forwarded to the guest, like docker run -p. The addresses are
// QEMU's user-mode network's, IPv4 and IPv6 (ndp.go), so a guest sees the
// same network under both monitors.
package usernet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// The LAN's addresses.
const (
	GuestAddr = "10.0.2.15/24"
	Gateway   = "10.0.2.2"
	DNS       = "10.0.2.3"
)

var (
	guestIP   = tcpip.AddrFrom4([4]byte{10, 0, 2, 15})
	gatewayIP = tcpip.AddrFrom4([4]byte{10, 0, 2, 2})
	dnsIP     = tcpip.AddrFrom4([4]byte{10, 0, 2, 3})
	// gatewayMAC is the gateway's Ethernet address (locally administered).
	gatewayMAC = tcpip.LinkAddress([]byte{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02})
)

const nic = 1

// Forward is a host port forwarded to a guest port, "tcp" or "udp".
type Forward struct {
	Host, Guest int
	Proto       string
}

// Network is the monitor's end of the LAN.
type Network struct {
	st       *stack.Stack
	ch       *channel.Endpoint
	forwards []Forward
	lns      []io.Closer // a net.Listener, or a net.PacketConn for udp
	once     sync.Once
	up       chan struct{} // closed at the guest's first frame past DHCP: its eth0 is up
	in       chan []byte   // frames from the guest, for inject
	upOnce   sync.Once
	deliver  func(frame []byte) // to the guest
	streams  atomic.Pointer[func(guestPort int, c net.Conn) bool]
	built    chan struct{} // closed once build has made st and ch
	buildErr error
}

// quiet drops netstack's log lines.
type quiet struct{}

func (quiet) Emit(int, log.Level, time.Time, string, ...any) {}

// New listens on the forwarded host ports, so that a port in use is an
// error before the guest boots, and prepares the network. Building gVisor's
// stack takes ~0.7-1 ms here, and nothing needs it before the guest's first
// frame: it is built on a goroutine, beside the VM's set-up, and Start waits
// for it.
func New(forwards []Forward) (*Network, error) {
	n := &Network{forwards: forwards, up: make(chan struct{}), in: make(chan []byte, 512), built: make(chan struct{})}
	for _, f := range forwards {
		var ln io.Closer
		var err error
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(f.Host))
		if f.Proto == "udp" {
			ln, err = net.ListenPacket("udp", addr)
		} else {
			ln, err = net.Listen("tcp", addr)
		}
		if err != nil {
			for _, ln := range n.lns {
				ln.Close()
			}
			return nil, fmt.Errorf("-p %d:%d/%s: %w", f.Host, f.Guest, f.Proto, err)
		}
		n.lns = append(n.lns, ln)
	}
	go func() {
		defer close(n.built)
		n.buildErr = n.build()
	}()
	return n, nil
}

// build makes the gateway's stack: its interface, addresses and forwarders.
func (n *Network) build() error {
	log.SetTarget(quiet{})
	st := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol6},
	})
	// Go sets TCP_NODELAY on every TCP connection; make it the default, and
	// keep SACK on (Linux's defaults).
	nodelay, sack := tcpip.TCPDelayEnabled(false), tcpip.TCPSACKEnabled(true)
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &nodelay)
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	n.st, n.ch = st, channel.New(512, 1500+header.EthernetMinimumSize, gatewayMAC)
	if err := st.CreateNIC(nic, ethernet.New(n.ch)); err != nil {
		return fmt.Errorf("create the gateway's interface: %s", err)
	}
	if err := st.AddProtocolAddress(nic, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: gatewayIP, PrefixLen: 24},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("address the gateway: %s", err)
	}
	if err := st.AddProtocolAddress(nic, tcpip.ProtocolAddress{ // the DNS forwarder answers ARP too
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: dnsIP, PrefixLen: 24},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("address the DNS forwarder: %s", err)
	}
	for _, a := range []tcpip.Address{routerLL, gateway6, dns6} { // they answer neighbor solicitations
		if err := st.AddProtocolAddress(nic, tcpip.ProtocolAddress{
			Protocol:          ipv6.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: a, PrefixLen: 64},
		}, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("address the gateway (%v): %s", a, err)
		}
	}
	// The gateway takes connections to any address: it is the guest's way out.
	st.SetPromiscuousMode(nic, true)
	st.SetSpoofing(nic, true)
	st.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nic}, {Destination: header.IPv6EmptySubnet, NIC: nic}})
	fwd := tcp.NewForwarder(st, 0, 1024, n.outbound)
	st.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	st.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(st, n.outboundUDP).HandlePacket)
	return nil
}

// Start begins handing the gateway's frames to deliver, and serving the
// forwarded ports.
func (n *Network) Start(deliver func(frame []byte)) error {
	<-n.built
	if n.buildErr != nil {
		return n.buildErr
	}
	n.deliver = deliver
	go n.inject()
	go func() {
		for {
			pkt := n.ch.ReadContext(context.Background())
			if pkt == nil {
				return
			}
			var f []byte
			for _, s := range pkt.AsSlices() {
				f = append(f, s...)
			}
			pkt.DecRef()
			deliver(f)
		}
	}()
	for i, ln := range n.lns {
		if pc, ok := ln.(net.PacketConn); ok {
			go n.serveUDP(pc, n.forwards[i])
		} else {
			go n.serve(ln.(net.Listener), n.forwards[i])
		}
	}
	return nil
}

// ChecksumsValid reports that the frames for the guest come from this
// process's netstack, with correct checksums: the guest need not check.
func (n *Network) ChecksumsValid() bool { return true }

// Send takes a frame from the guest. The netstack processes it on its own
// goroutine: the vCPU thread goes back to the guest at once.
func (n *Network) Send(frame []byte) {
	n.in <- frame
}

// inject hands the guest's frames to the DHCP server or the netstack, in
// order.
func (n *Network) inject() {
	for frame := range n.in {
		if n.serveDHCP(frame) || n.serveRS(frame) {
			continue
		}
		n.upOnce.Do(func() { close(n.up) }) // it has its address
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		n.ch.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// Close stops the forwards.
func (n *Network) Close() {
	n.once.Do(func() {
		for _, ln := range n.lns {
			ln.Close()
		}
		<-n.built
		if n.ch != nil {
			n.ch.Close()
		}
	})
}

// StreamPorts reports whether a TCP port is forwarded: the monitor then
// gives the guest a socket device for them (see SetStreams).
func (n *Network) StreamPorts() bool {
	for _, f := range n.forwards {
		if f.Proto != "udp" {
			return true
		}
	}
	return false
}

// SetStreams gives the network the monitor's way to hand a forwarded
// connection straight to the guest's socket (vmm/virtio.Vsock): no
// netstack on either side, where otherwise the gateway's would speak TCP
// to the guest's. It reports false when the guest has no driver for it;
// the gateway then forwards the connection itself.
func (n *Network) SetStreams(connect func(guestPort int, c net.Conn) bool) {
	n.streams.Store(&connect)
}

// serve forwards the connections to a host port into the guest.
func (n *Network) serve(ln net.Listener, f Forward) {
	// Connections wait in the host's backlog until the guest's interface is
	// up: a SYN sent earlier would be lost and retried only a second later.
	<-n.up
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if connect := n.streams.Load(); connect != nil && (*connect)(f.Guest, c) {
			continue
		}
		go func() {
			g, err := gonet.DialTCP(n.st, tcpip.FullAddress{NIC: nic, Addr: guestIP, Port: uint16(f.Guest)}, ipv4.ProtocolNumber)
			if err != nil {
				c.Close() // nothing listens there in the guest: the client sees the close
				return
			}
			splice(c, g)
		}()
	}
}

// serveUDP forwards the datagrams to a host port into the guest: each
// client address gets its own flow from the gateway, whose answers go back
// to that client, until udpIdle passes without one.
func (n *Network) serveUDP(pc net.PacketConn, f Forward) {
	<-n.up
	var mu sync.Mutex
	flows := map[string]*gonet.UDPConn{}
	buf := make([]byte, 65536)
	for {
		k, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		mu.Lock()
		g := flows[from.String()]
		if g == nil {
			g, err = gonet.DialUDP(n.st, &tcpip.FullAddress{NIC: nic, Addr: gatewayIP},
				&tcpip.FullAddress{NIC: nic, Addr: guestIP, Port: uint16(f.Guest)}, ipv4.ProtocolNumber)
			if err != nil {
				mu.Unlock()
				continue
			}
			flows[from.String()] = g
			go func(g *gonet.UDPConn, from net.Addr) {
				b := make([]byte, 65536)
				for {
					g.SetReadDeadline(time.Now().Add(udpIdle))
					m, err := g.Read(b)
					if err != nil {
						break
					}
					pc.WriteTo(b[:m], from)
				}
				mu.Lock()
				delete(flows, from.String())
				mu.Unlock()
				g.Close()
			}(g, from)
		}
		mu.Unlock()
		g.Write(buf[:k])
	}
}

// outbound makes the connection the guest asked for from the host.
func (n *Network) outbound(req *tcp.ForwarderRequest) {
	id := req.ID()
	dst := hostAddr(id.LocalAddress)
	go func() {
		c, err := net.Dial("tcp", netip.AddrPortFrom(dst, id.LocalPort).String())
		if err != nil {
			req.Complete(true) // refused, unreachable: the guest sees a reset
			return
		}
		var wq waiter.Queue
		ep, terr := req.CreateEndpoint(&wq)
		if terr != nil {
			req.Complete(true)
			c.Close()
			return
		}
		req.Complete(false)
		splice(c, gonet.NewTCPConn(&wq, ep))
	}()
}

// hostAddr is where the monitor connects for a guest's connection to a: the
// host's loopback for the gateway (10.0.2.2, fec0::2), else a itself.
func hostAddr(a tcpip.Address) netip.Addr {
	switch {
	case a == gatewayIP:
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case a == gateway6:
		return netip.IPv6Loopback()
	case a.Len() == 16:
		return netip.AddrFrom16(a.As16())
	}
	return netip.AddrFrom4(a.As4())
}

// splice copies both ways and closes both ends when done, passing each
// direction's end of stream on.
func splice(a net.Conn, b *gonet.TCPConn) {
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(b, a)
		b.CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		io.Copy(a, b)
		if tc, ok := a.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
	a.Close()
	b.Close()
}

// hostDNS returns the host's first name server (/etc/resolv.conf), the
// address the guest's DNS server 10.0.2.3 forwards to.
func hostDNS() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
				if a, err := netip.ParseAddr(f[1]); err == nil {
					return netip.AddrPortFrom(a, 53).String()
				}
			}
		}
	}
	return "127.0.0.1:53"
}

// outboundUDP relays a UDP flow the guest started through a host socket:
// to the host's name server for 10.0.2.3:53, to the host's loopback for
// 10.0.2.2, elsewhere as addressed. A flow ends after udpIdle without
// traffic.
func (n *Network) outboundUDP(req *udp.ForwarderRequest) bool {
	id := req.ID()
	dst := netip.AddrPortFrom(hostAddr(id.LocalAddress), id.LocalPort).String()
	if (id.LocalAddress == dnsIP || id.LocalAddress == dns6) && id.LocalPort == 53 {
		dst = hostDNS()
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		return false
	}
	g := gonet.NewUDPConn(&wq, ep)
	h, err := net.Dial("udp", dst)
	if err != nil {
		g.Close()
		return true
	}
	go func() {
		defer g.Close()
		defer h.Close()
		go func() {
			buf := make([]byte, 65536)
			for {
				h.SetReadDeadline(time.Now().Add(udpIdle))
				k, err := h.Read(buf)
				if err != nil {
					g.Close()
					return
				}
				g.Write(buf[:k])
			}
		}()
		buf := make([]byte, 65536)
		for {
			g.SetReadDeadline(time.Now().Add(udpIdle))
			k, err := g.Read(buf)
			if err != nil {
				h.Close()
				return
			}
			h.Write(buf[:k])
		}
	}()
	return true
}

const udpIdle = 60 * time.Second
