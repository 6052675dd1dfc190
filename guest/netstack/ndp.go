package netstack

import (
	"sync"
	"syscall"
	"time"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"unigo.dev/unigo/guest/kernel"
)

// IPv6 beyond the link: router advertisements (RFC 4861 §6.3.4) give eth0
// a default router and on-link prefixes, and stateless address
// autoconfiguration (RFC 4862 §5.5) an address in each advertised prefix.
// Netstack does the protocol; ndpDispatcher takes what it learns into the
// route table and tells the kernel of the addresses (netlink, bind).

// ndpConfig asks for routers at start (a few solicitations, soon) and
// acts on their advertisements.
var ndpConfig = ipv6.NDPConfigurations{
	MaxRtrSolicitations:     3,
	RtrSolicitationInterval: time.Second,
	MaxRtrSolicitationDelay: 0,
	HandleRAs:               ipv6.HandlingRAsAlwaysEnabled,
	DiscoverDefaultRouters:  true,
	DiscoverOnLinkPrefixes:  true,
	AutoGenGlobalAddresses:  true,
}

// learned are the routes router advertisements gave; route table changes
// go through routeUpdates, since the dispatcher may not call the stack.
var learned struct {
	sync.Mutex
	routes map[tcpip.Route]bool
}

var routeUpdates = make(chan struct{}, 1)

type ndpDispatcher struct{}

func learn(r tcpip.Route, valid bool) {
	learned.Lock()
	if learned.routes == nil {
		learned.routes = map[tcpip.Route]bool{}
	}
	if valid {
		learned.routes[r] = true
	} else {
		delete(learned.routes, r)
	}
	learned.Unlock()
	signal(routeUpdates)
}

func (ndpDispatcher) OnDuplicateAddressDetectionResult(tcpip.NICID, tcpip.Address, stack.DADResult) {}

func (ndpDispatcher) OnOffLinkRouteUpdated(nic tcpip.NICID, sub tcpip.Subnet, router tcpip.Address, _ header.NDPRoutePreference) {
	learn(tcpip.Route{Destination: sub, Gateway: router, NIC: nic}, true)
}

func (ndpDispatcher) OnOffLinkRouteInvalidated(nic tcpip.NICID, sub tcpip.Subnet, router tcpip.Address) {
	learn(tcpip.Route{Destination: sub, Gateway: router, NIC: nic}, false)
}

func (ndpDispatcher) OnOnLinkPrefixDiscovered(nic tcpip.NICID, sub tcpip.Subnet) {
	learn(tcpip.Route{Destination: sub, NIC: nic}, true)
}

func (ndpDispatcher) OnOnLinkPrefixInvalidated(nic tcpip.NICID, sub tcpip.Subnet) {
	learn(tcpip.Route{Destination: sub, NIC: nic}, false)
}

func (ndpDispatcher) OnAutoGenAddress(_ tcpip.NICID, a tcpip.AddressWithPrefix) stack.AddressDispatcher {
	b := a.Address.As16()
	syscall.RawSyscall(kernel.SysNetIface6, uintptr(unsafe.Pointer(&b)), uintptr(a.PrefixLen), 0)
	return nil
}

func (ndpDispatcher) OnAutoGenAddressDeprecated(tcpip.NICID, tcpip.AddressWithPrefix)        {}
func (ndpDispatcher) OnAutoGenAddressInvalidated(tcpip.NICID, tcpip.AddressWithPrefix)       {}
func (ndpDispatcher) OnRecursiveDNSServerOption(tcpip.NICID, []tcpip.Address, time.Duration) {}
func (ndpDispatcher) OnDNSSearchListOption(tcpip.NICID, []string, time.Duration)             {}
func (ndpDispatcher) OnDHCPv6Configuration(tcpip.NICID, ipv6.DHCPv6ConfigurationFromNDPRA)   {}

// eth4Routes are eth0's IPv4 routes, as configure last set them.
var eth4Routes struct {
	sync.Mutex
	routes []tcpip.Route
}

var routesMu sync.Mutex

// setRoutes makes the route table: loopback, eth0's IPv4 routes, its
// link-local prefix, and what router advertisements gave.
func setRoutes() {
	routesMu.Lock() // one composition at a time, so the last one written is the newest
	defer routesMu.Unlock()
	routes := loopRoutes()
	eth4Routes.Lock()
	routes = append(routes, eth4Routes.routes...)
	eth4Routes.Unlock()
	if dev != nil {
		routes = append(routes, linkLocalRoute())
	}
	learned.Lock()
	for r := range learned.routes {
		routes = append(routes, r)
	}
	learned.Unlock()
	st.SetRouteTable(routes)
}

// applyLearned keeps the route table up to date with the advertisements.
func applyLearned() {
	for range routeUpdates {
		setRoutes()
	}
}
