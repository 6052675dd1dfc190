// Package netstack is the Unigo kernel's network component: gVisor's netstack
// running as ordinary goroutines inside the program, behind the kernel's half
// of each socket (guest/kernel/socket.go). unigo build links it only into
// programs that use the net package.
//
// One dispatcher goroutine waits on the kernel's doorbell eventfd through the
// Go runtime's netpoller and takes the kernel's commands; each connection has
// a reader goroutine, which moves received bytes into the kernel's receive
// ring, and a writer goroutine, which sends what the program put in the send
// ring. The stack has the loopback interface and eth0, the virtio-net device
// (virtio.go), configured by DHCP or the command line (dhcp.go, link.go).
package netstack

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"unigo.dev/unigo/guest/kernel"
)

const (
	loopNIC = 1

	// A TCP connection's rings start at ringMin bytes each and double, up
	// to ringMax, each time one is found full (sock.read, sock.write): an
	// HTTP keep-alive connection's requests and answers fit in the first
	// size, and 64 connections take 0.5 MiB of rings instead of 8. A UDP
	// socket's are ringMax from the start: a datagram must fit whole.
	ringMin = 4 << 10
	ringMax = 64 << 10
)

var st *stack.Stack

func init() {
	if err := start(); err != nil {
		os.Stderr.WriteString("unigo: network: " + err.Error() + "\n")
	}
}

// quiet drops netstack's log lines: they would land on the program's stderr.
type quiet struct{}

func (quiet) Emit(int, log.Level, time.Time, string, ...any) {}

// loopRoutes are the loopback interface's routes: 127/8 and ::1.
func loopRoutes() []tcpip.Route {
	sub, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{127, 0, 0, 0}), tcpip.MaskFromBytes([]byte{255, 0, 0, 0}))
	return []tcpip.Route{{Destination: sub, NIC: loopNIC}, {Destination: header.IPv6Loopback.WithPrefix().Subnet(), NIC: loopNIC}}
}

func start() error {
	log.SetTarget(quiet{})
	st = stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol,
			// No duplicate address detection: eth0's link-local address is
			// derived from the device's MAC, and DAD would hold it back ~1 s.
			ipv6.NewProtocolWithOptions(ipv6.Options{DADConfigs: stack.DADConfigurations{DupAddrDetectTransmits: 0},
				NDPConfigs: ndpConfig, NDPDisp: ndpDispatcher{}})},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol,
			icmp.NewProtocol4, icmp.NewProtocol6}, // ICMP: pings are answered
	})
	// Go sets TCP_NODELAY on every TCP connection; make it the default, and
	// keep SACK on (Linux's defaults).
	nodelay, sack := tcpip.TCPDelayEnabled(false), tcpip.TCPSACKEnabled(true)
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &nodelay)
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	if err := st.CreateNIC(loopNIC, loopback.New()); err != nil {
		return fmt.Errorf("create the loopback interface: %s", err)
	}
	lo := tcpip.AddrFrom4([4]byte{127, 0, 0, 1})
	if err := st.AddProtocolAddress(loopNIC, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: lo, PrefixLen: 8},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("address the loopback interface: %s", err)
	}
	if err := st.AddProtocolAddress(loopNIC, tcpip.ProtocolAddress{
		Protocol:          ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom16([16]byte{15: 1}), PrefixLen: 128},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("address the loopback interface: %s", err)
	}
	setRoutes()
	go applyLearned()

	efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		return fmt.Errorf("doorbell eventfd: %v", e)
	}
	if _, _, e := syscall.RawSyscall(kernel.SysNetAttach, efd, 0, 0); e != 0 {
		return fmt.Errorf("attach to the kernel: %v", e)
	}
	go dispatch(os.NewFile(efd, "unigo-net-doorbell"))
	if err := startVsock(); err != nil {
		os.Stderr.WriteString("unigo: network: socket device: " + err.Error() + "\n")
	}
	return startEth()
}

// dispatch takes the kernel's commands and hands them to the sockets. It
// waits for the doorbell through the netpoller but never reads it:
// SysNetCommands quiets it when it hands out the last command, so a round
// costs that one system call and the wait, where reading the eventfd cost
// two more (one that found it empty, one after the wake), each ~3-30 µs on
// a paging-based KVM.
func dispatch(doorbell *os.File) {
	rc, err := doorbell.SyscallConn()
	if err != nil {
		os.Stderr.WriteString("unigo: network: doorbell: " + err.Error() + "\n")
		return
	}
	var cmds [64]kernel.NetCommand
	var e syscall.Errno
	for {
		err := rc.Read(func(uintptr) bool {
			for {
				var n uintptr
				n, _, e = syscall.RawSyscall(kernel.SysNetCommands, uintptr(unsafe.Pointer(&cmds[0])), uintptr(len(cmds)), 0)
				if e != 0 {
					return true
				}
				for _, c := range cmds[:n] {
					command(c.Sock, c.Ops)
				}
				if len(direct) > 0 {
					vsdev.sendDirect(direct)
					clear(direct)
					direct = direct[:0]
				}
				if n < uintptr(len(cmds)) {
					return false // all taken, the doorbell quiet: wait for its next ring
				}
			}
		})
		if err == nil && e != 0 {
			err = e
		}
		if err != nil {
			os.Stderr.WriteString("unigo: network: commands: " + err.Error() + "\n")
			return
		}
	}
}
