package netstack

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"unsafe"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"unigo.dev/unigo/guest/kernel"
)

// The network interface eth0: the virtio-net device, with the address,
// gateway and DNS server the command line gives (net.ip=A/N net.gw=G
// net.dns=D). DHCP comes later.

const ethNIC = 2

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

// startEth brings up eth0 if there is a virtio-net device and an address.
func startEth() error {
	cfg := netConfig()
	base, irq := findVirtioNet()
	if base == 0 {
		return nil // no device: loopback only
	}
	if cfg["ip"] == "" {
		return fmt.Errorf("a virtio-net device at %#x but no address: give net.ip=A.B.C.D/N on the command line (DHCP is not there yet)", base)
	}
	pfx, err := netip.ParsePrefix(cfg["ip"])
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("net.ip=%s: want an IPv4 address with its prefix length, such as 10.0.2.15/24", cfg["ip"])
	}
	d, err := newVirtioNet(base, irq)
	if err != nil {
		return err
	}
	dev = d
	ch := channel.New(512, 1500+header.EthernetMinimumSize, d.mac)
	if err := st.CreateNIC(ethNIC, ethernet.New(ch)); err != nil {
		return fmt.Errorf("create eth0: %s", err)
	}
	if err := st.AddProtocolAddress(ethNIC, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(pfx.Addr().As4()), PrefixLen: pfx.Bits()},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("address eth0: %s", err)
	}
	routes := st.GetRouteTable()
	sub, err := tcpip.NewSubnet(tcpip.AddrFrom4(pfx.Masked().Addr().As4()), tcpip.MaskFromBytes(maskBytes(pfx.Bits())))
	if err != nil {
		return err
	}
	routes = append(routes, tcpip.Route{Destination: sub, NIC: ethNIC})
	gw, err := netip.ParseAddr(cfg["gw"])
	if err == nil && gw.Is4() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: ethNIC})
	}
	st.SetRouteTable(routes)

	go func() { // transmit
		for {
			pkt := ch.ReadContext(context.Background())
			if pkt == nil {
				return
			}
			// Every descriptor busy: the first failure clears the ring's
			// no-interrupt flag, the second look catches what the device
			// returned before it saw that; then wait for its interrupt.
			for !d.transmit(pkt.AsSlices()) && !d.transmit(pkt.AsSlices()) {
				<-d.txq
			}
			pkt.DecRef()
		}
	}()
	go func() { // receive
		for range d.irq {
			d.receive(func(frame []byte) {
				pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
				ch.InjectInbound(0, pkt)
				pkt.DecRef()
			})
		}
	}()
	signal(d.irq) // frames may have come before the interrupt was routed
	var mac uint64
	for _, b := range []byte(d.mac) {
		mac = mac<<8 | uint64(b)
	}
	a := pfx.Addr().As4()
	syscall.RawSyscall(kernel.SysNetIface, uintptr(mac),
		uintptr(uint64(a[0])<<24|uint64(a[1])<<16|uint64(a[2])<<8|uint64(a[3])|uint64(pfx.Bits())<<32), 1500)
	if gw.Is4() {
		// Resolve the gateway now: the ARP request also tells the network
		// that eth0 is up, and the first connection does not wait for it.
		st.GetLinkAddress(ethNIC, tcpip.AddrFrom4(gw.As4()), tcpip.Address{}, ipv4.ProtocolNumber, nil)
	}
	return nil
}

func maskBytes(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}
