package netstack

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"unigo.dev/unigo/guest/kernel"
)

// The network interface eth0: the virtio-net device, with the address,
// gateway and DNS server the command line gives (net.ip=A/N net.gw=G
// net.dns=D), or else those a DHCP server gives (dhcp.go).

const ethNIC = 2

// dhcpWait is how long the program's start waits for a first lease; the
// client keeps asking after that.
const dhcpWait = 5 * time.Second

var dev *virtioNet

// netConfig reads the command line's net.* words.
func netConfig() map[string]string {
	b := make([]byte, 256)
	n, _, e := syscall.RawSyscall(kernel.SysNetConfig, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0)
	cfg := map[string]string{}
	if e != 0 {
		return cfg
	}
	for _, w := range strings.Fields(string(b[:n])) {
		k, v, _ := strings.Cut(strings.TrimPrefix(w, "net."), "=")
		cfg[k] = v
	}
	return cfg
}

// startEth brings up eth0 if there is a virtio-net device.
func startEth() error {
	cfg := netConfig()
	t, err := findVirtio(virtioNetDeviceID)
	if err != nil {
		return err
	}
	if t == nil {
		return nil // no device: loopback only
	}
	var static lease
	if cfg["ip"] != "" {
		pfx, err := netip.ParsePrefix(cfg["ip"])
		if err != nil || !pfx.Addr().Is4() {
			return fmt.Errorf("net.ip=%s: want an IPv4 address with its prefix length, such as 10.0.2.15/24", cfg["ip"])
		}
		static.addr = pfx
		if gw, err := netip.ParseAddr(cfg["gw"]); err == nil && gw.Is4() {
			static.router = gw
		}
		if dns, err := netip.ParseAddr(cfg["dns"]); err == nil && dns.Is4() {
			static.dns = []netip.Addr{dns}
		}
	}
	d, err := newVirtioNet(t)
	if err != nil {
		return err
	}
	dev = d
	ch := channel.New(512, 1500+header.EthernetMinimumSize, d.mac)
	if err := st.CreateNIC(ethNIC, ethernet.New(ch)); err != nil {
		return fmt.Errorf("create eth0: %s", err)
	}
	// IPv6 on the link: the link-local address from the MAC (RFC 4291
	// §2.5.6, modified EUI-64), with neighbor discovery.
	if err := st.AddProtocolAddress(ethNIC, tcpip.ProtocolAddress{
		Protocol:          ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: header.LinkLocalAddr(d.mac), PrefixLen: 64},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("link-local address of eth0: %s", err)
	}
	setRoutes()
	tellKernel(lease{}) // eth0 is up, with no IPv4 address yet
	var client *dhcpClient
	if !static.addr.IsValid() {
		client = newDHCPClient([6]byte([]byte(d.mac)), func(frame []byte) {
			// A full ring drops it; the client sends again. (Waiting on
			// txq here could take the transmit goroutine's wake-up.)
			_ = d.transmit([][]byte{frame}) || d.transmit([][]byte{frame})
		})
		early.holding = true
	}

	go sendFrames(d, ch)
	inject := func(frame []byte) {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		ch.InjectInbound(0, pkt)
		pkt.DecRef()
	}
	go func() { // receive
		for range d.irq {
			d.receive(func(frame []byte) {
				if client != nil && client.take(frame) {
					return
				}
				if !early.hold(frame) {
					inject(frame)
				}
			})
		}
	}()
	signal(d.irq) // frames may have come before the interrupt was routed
	if client == nil {
		return configure(static)
	}
	defer early.release(inject)
	l, ok := client.acquire(dhcpWait)
	if !ok {
		os.Stderr.WriteString("unigo: network: eth0 has no address: no DHCP server answered in " + dhcpWait.String() +
			" (still asking; give unigo run --ip A.B.C.D/N for a static address)\n")
		early.release(inject)
		go func() {
			l, _ := client.acquire(1<<62 - 1)
			configure(l)
			client.keep(l, func(l lease) { configure(l) })
		}()
		return nil
	}
	go client.keep(l, func(l lease) { configure(l) })
	return configure(l)
}

// sendFrames moves the stack's outgoing frames to the device until ch
// closes. It puts every frame that waits, once letting the other runnable
// goroutines (other connections' writers, the stack's processors) add
// theirs, and then kicks once: under load the frames of many connections
// share one notification, a VM exit, the costliest step of a send on a
// paging-based KVM (BENCHMARKS.md, HTTP).
func sendFrames(d *virtioNet, ch *channel.Endpoint) {
	for {
		pkt := ch.ReadContext(context.Background())
		if pkt == nil {
			return
		}
		yielded := false
		for pkt != nil {
			d.send(pkt.AsSlices())
			pkt.DecRef()
			if pkt = ch.Read(); pkt == nil && !yielded {
				runtime.Gosched()
				yielded = true
				pkt = ch.Read()
			}
		}
		d.kick()
	}
}

// early holds the frames that come while eth0 waits for its first lease,
// to be taken once it has its address: a forwarded connection's SYN that
// came early then gets its answer at once, not at the sender's first
// retransmission a second later.
var early frameHold

type frameHold struct {
	mu      sync.Mutex
	holding bool
	frames  [][]byte
}

const maxEarly = 64

// hold keeps a copy of frame while holding, and reports whether it did;
// past maxEarly frames it drops them, as a full receive queue would.
func (h *frameHold) hold(frame []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.holding {
		return false
	}
	if len(h.frames) < maxEarly {
		h.frames = append(h.frames, append([]byte(nil), frame...))
	}
	return true
}

// release stops holding and hands the held frames to inject, in order.
func (h *frameHold) release(inject func([]byte)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holding = false
	for _, f := range h.frames {
		inject(f)
	}
	h.frames = nil
}

// ethAddr is eth0's address as configure last set it, and ethGateway its
// router: the peer of connections the socket device brings (the host's
// end, as usernet's gateway would be).
// ethMu guards them for readers on other goroutines (ethLease).
var (
	ethMu      sync.Mutex
	ethAddr    netip.Prefix
	ethGateway netip.Addr
)

// ethLease returns eth0's address and router.
func ethLease() (netip.Prefix, netip.Addr) {
	ethMu.Lock()
	defer ethMu.Unlock()
	return ethAddr, ethGateway
}

// configure gives eth0 l's address and routes, and tells the kernel (for
// netlink, bind and /etc/resolv.conf).
func configure(l lease) error {
	if ethAddr.IsValid() && ethAddr != l.addr {
		st.RemoveAddress(ethNIC, tcpip.AddrFrom4(ethAddr.Addr().As4()))
	}
	if ethAddr != l.addr {
		if err := st.AddProtocolAddress(ethNIC, tcpip.ProtocolAddress{
			Protocol:          ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(l.addr.Addr().As4()), PrefixLen: l.addr.Bits()},
		}, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("address eth0: %s", err)
		}
		ethMu.Lock()
		ethAddr = l.addr
		ethMu.Unlock()
	}
	ethMu.Lock()
	ethGateway = l.router
	ethMu.Unlock()
	sub, err := tcpip.NewSubnet(tcpip.AddrFrom4(l.addr.Masked().Addr().As4()), tcpip.MaskFromBytes(maskBytes(l.addr.Bits())))
	if err != nil {
		return err
	}
	routes := []tcpip.Route{{Destination: sub, NIC: ethNIC}}
	if l.router.Is4() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(l.router.As4()), NIC: ethNIC})
	}
	eth4Routes.Lock()
	eth4Routes.routes = routes
	eth4Routes.Unlock()
	setRoutes()

	tellKernel(l)
	if l.router.Is4() {
		// Resolve the gateway now: the ARP request also tells the network
		// that eth0 is up, and the first connection does not wait for it.
		st.GetLinkAddress(ethNIC, tcpip.AddrFrom4(l.router.As4()), tcpip.Address{}, ipv4.ProtocolNumber, nil)
	}
	return nil
}

// tellKernel reports eth0 to the kernel, for netlink, bind and
// /etc/resolv.conf: its MAC, the IPv4 address and DNS server of l (none
// before a lease), and its link-local IPv6 address.
func tellKernel(l lease) {
	var mac uint64
	for _, b := range []byte(dev.mac) {
		mac = mac<<8 | uint64(b)
	}
	var a [4]byte
	if l.addr.IsValid() {
		a = l.addr.Addr().As4()
	}
	var dns uint32
	if len(l.dns) > 0 && l.dns[0].Is4() {
		v := l.dns[0].As4()
		dns = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	}
	syscall.RawSyscall6(kernel.SysNetIface, uintptr(mac),
		uintptr(uint64(a[0])<<24|uint64(a[1])<<16|uint64(a[2])<<8|uint64(a[3])|uint64(l.addr.Bits()&0xff)<<32), 1500, uintptr(dns), 0, 0)
	ll := header.LinkLocalAddr(dev.mac).As16()
	syscall.RawSyscall(kernel.SysNetIface6, uintptr(unsafe.Pointer(&ll)), 64, 0)
}

// linkLocalRoute sends fe80::/64 out of eth0.
func linkLocalRoute() tcpip.Route {
	return tcpip.Route{Destination: header.IPv6LinkLocalPrefix.Subnet(), NIC: ethNIC}
}

func maskBytes(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}
