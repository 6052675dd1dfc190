package netstack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"unigo.dev/unigo/guest/kernel"
)

// stream is a connection's byte stream: a netstack TCP connection
// (*gonet.TCPConn), or one the socket device brought (*vsockConn).
type stream interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// sock is the component's side of one kernel socket.
type sock struct {
	id      uint32
	ep      tcpip.Endpoint // the netstack endpoint, for options
	ln      tcpip.Endpoint // a listener's endpoint
	lnAddr  kernel.NetAddr // a listener's address
	lnIPv4  bool           // a listener takes IPv4 peers
	conn    stream
	vsock   *vsockConn // conn, when the socket device brought it
	udp     *gonet.UDPConn
	rx, tx  []byte        // the kernel's rings for this socket: kept alive here
	kick    chan struct{} // the writer has work: data, a shutdown or a close
	room    chan struct{} // the receive ring has room again
	closed  chan struct{} // closed when the program closed the socket
	mu      sync.Mutex
	txMu    sync.Mutex // held by whoever takes bytes out of the send ring: write, or sendDirect
	shut    bool       // NetOpShutdown seen
	closing bool       // NetOpClose seen
	dialing bool       // a connect is under way
}

var (
	mu    sync.Mutex
	socks = map[uint32]*sock{}
)

func lookup(id uint32) *sock {
	mu.Lock()
	defer mu.Unlock()
	s := socks[id]
	if s == nil {
		s = &sock{id: id, kick: make(chan struct{}, 1), room: make(chan struct{}, 1), closed: make(chan struct{})}
		socks[id] = s
	}
	return s
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// direct collects the sockets of one round of commands whose data the
// socket device sends at once (sendDirect); the dispatcher's only.
var direct []*sock

// command acts on the kernel's NetOp bits for socket id.
func command(id, ops uint32) {
	if id == kernel.NetSockDevice {
		if dev != nil && ops&kernel.NetOpIRQ != 0 {
			signal(dev.irq)
			signal(dev.txq)
		}
		if vsdev != nil && ops&kernel.NetOpIRQ != 0 {
			signal(vsdev.irq)
			signal(vsdev.txq)
		}
		return
	}
	s := lookup(id)
	if ops&kernel.NetOpBind != 0 && s.udp == nil {
		s.openUDP()
	}
	if ops&kernel.NetOpListen != 0 {
		s.listen()
	}
	if ops&kernel.NetOpOpts != 0 {
		s.applyOpts()
	}
	if ops&kernel.NetOpConnect != 0 {
		s.mu.Lock()
		s.dialing = true
		s.mu.Unlock()
		go s.connect()
	}
	if ops&kernel.NetOpRxSpace != 0 {
		signal(s.room)
	}
	s.mu.Lock()
	if ops&kernel.NetOpShutdown != 0 {
		s.shut = true
	}
	closing := ops&kernel.NetOpClose != 0 && !s.closing
	if closing {
		s.closing = true
		close(s.closed)
	}
	busy, ln, vs := s.conn != nil || s.dialing || s.udp != nil, s.ln, s.vsock
	s.mu.Unlock()
	switch {
	case ops&(kernel.NetOpShutdown|kernel.NetOpClose) != 0:
		signal(s.kick)
	case ops&kernel.NetOpTx != 0 && vs != nil:
		direct = append(direct, s)
	case ops&kernel.NetOpTx != 0:
		signal(s.kick)
	}
	if closing && !busy {
		if ln != nil {
			ln.Close()
		}
		s.release() // a listener, or a socket whose connect has not succeeded
	}
}

// release tells the kernel the socket is done with; its number may be reused.
func (s *sock) release() {
	mu.Lock()
	delete(socks, s.id)
	mu.Unlock()
	event(s.id, kernel.NetEvReleased, 0)
}

// event reports ev with its argument: an errno, or for NetEvConnected the
// local address.
func event(id uint32, ev int, arg uintptr) {
	syscall.RawSyscall(kernel.SysNetEvent, uintptr(id), uintptr(ev), arg)
}

// addrs returns the socket's local and remote addresses from the kernel.
func addrs(id uint32) (local, remote kernel.NetAddr) {
	var v [2]kernel.NetAddr
	syscall.RawSyscall(kernel.SysNetAddrs, uintptr(id), uintptr(unsafe.Pointer(&v)), 0)
	return v[0], v[1]
}

// family is what the kernel says of socket id: its network protocol, and
// whether an IPv6 socket refuses IPv4-mapped peers.
func family(id uint32) (tcpip.NetworkProtocolNumber, bool) {
	info, _, _ := syscall.RawSyscall(kernel.SysNetInfo, uintptr(id), 0, 0)
	if info&kernel.NetInfoIPv6 != 0 {
		return ipv6.ProtocolNumber, info&kernel.NetInfoV6Only != 0
	}
	return ipv4.ProtocolNumber, false
}

// full turns a kernel address (IPv4 as IPv4-mapped) into netstack's: an
// AF_INET socket's as 4 bytes; an AF_INET6 socket's as 16, which a
// dual-stack endpoint maps back itself; the wildcard as no address.
func full(a kernel.NetAddr, proto tcpip.NetworkProtocolNumber) tcpip.FullAddress {
	ip := netip.AddrFrom16(a.Addr)
	if ip.Unmap().IsUnspecified() {
		return tcpip.FullAddress{Port: a.Port}
	}
	if proto == ipv4.ProtocolNumber {
		return tcpip.FullAddress{Addr: tcpip.AddrFrom4(ip.Unmap().As4()), Port: a.Port}
	}
	return tcpip.FullAddress{Addr: tcpip.AddrFrom16(a.Addr), Port: a.Port}
}

// kernelAddr turns a net.Addr of gonet's into the kernel's form.
func kernelAddr(a net.Addr) kernel.NetAddr {
	var ip net.IP
	var port int
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, port = a.IP, a.Port
	case *net.UDPAddr:
		ip, port = a.IP, a.Port
	}
	var k kernel.NetAddr
	if v := ip.To16(); v != nil {
		k.Addr = [16]byte(v)
	}
	k.Port = uint16(port)
	return k
}

// endpoint makes a netstack endpoint of transport tp for socket id.
func endpoint(id uint32, tp tcpip.TransportProtocolNumber, wq *waiter.Queue) (tcpip.Endpoint, tcpip.NetworkProtocolNumber, error) {
	proto, v6only := family(id)
	ep, err := st.NewEndpoint(tp, proto, wq)
	if err != nil {
		return nil, 0, errors.New(err.String())
	}
	if v6only {
		ep.SocketOptions().SetV6Only(true)
	}
	return ep, proto, nil
}

func (s *sock) listen() {
	local, _ := addrs(s.id)
	var wq waiter.Queue
	ep, proto, err := endpoint(s.id, tcp.ProtocolNumber, &wq)
	if err == nil {
		if e := ep.Bind(full(local, proto)); e != nil {
			err = errors.New("bind: " + e.String())
		} else if e := ep.Listen(4096); e != nil { // the kernel keeps the program's backlog
			err = errors.New(e.String())
		}
		if err != nil {
			ep.Close()
		}
	}
	if err != nil {
		os.Stderr.WriteString("unigo: network: listen: " + err.Error() + "\n")
		return
	}
	v6, v6only := family(s.id)
	s.mu.Lock()
	s.ln, s.ep = ep, ep
	s.lnAddr, s.lnIPv4 = local, v6 != ipv6.ProtocolNumber || !v6only
	s.mu.Unlock()
	s.applyOpts() // accepted endpoints inherit them
	go s.accept(ep, &wq)
}

// acceptStream queues a connection the socket device brought, from the
// gateway's port peer to eth0's port port, on the listening socket that
// would have taken it had it come by TCP/IP: bound to port on eth0's IPv4
// address or the wildcard, taking IPv4 peers. It returns that new socket,
// or nil.
func acceptStream(port, peer uint16) *sock {
	addr, gw := ethLease()
	if !addr.IsValid() {
		return nil
	}
	mapped := netip.AddrFrom16(addr.Addr().As16()) // the kernel's form: IPv4-mapped
	mu.Lock()
	var ln *sock
	for _, s := range socks {
		s.mu.Lock()
		a := netip.AddrFrom16(s.lnAddr.Addr)
		if s.ln != nil && !s.closing && s.lnIPv4 && s.lnAddr.Port == port && (a.Unmap().IsUnspecified() || a == mapped) {
			ln = s
		}
		s.mu.Unlock()
		if ln != nil {
			break
		}
	}
	mu.Unlock()
	if ln == nil {
		return nil
	}
	return ln.queueAccepted([2]kernel.NetAddr{{Addr: mapped.As16(), Port: port}, {Addr: gw.As16(), Port: peer}})
}

// queueAccepted queues a new connection with local and remote addresses
// ends, and its first rings, on listener s for accept4, and returns its
// socket; nil when the backlog is full or the listener went away.
func (s *sock) queueAccepted(ends [2]kernel.NetAddr) *sock {
	rx, tx := make([]byte, ringMin), make([]byte, ringMin)
	id, _, e := syscall.Syscall6(kernel.SysNetAccepted, uintptr(s.id), uintptr(unsafe.Pointer(&ends)),
		uintptr(unsafe.Pointer(&rx[0])), uintptr(unsafe.Pointer(&tx[0])), ringMin, 0)
	if e != 0 {
		return nil
	}
	c := lookup(uint32(id))
	c.mu.Lock()
	c.rx, c.tx = rx, tx
	c.mu.Unlock()
	return c
}

// accept takes the listener's connections and queues them in the kernel for
// accept4, until the listener closes.
func (s *sock) accept(ep tcpip.Endpoint, wq *waiter.Queue) {
	we, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	for {
		n, nwq, err := ep.Accept(nil)
		if _, ok := err.(*tcpip.ErrWouldBlock); ok {
			select {
			case <-ready:
				continue
			case <-s.closed:
				return
			}
		}
		if err != nil {
			return // closed
		}
		tc := gonet.NewTCPConn(nwq, n)
		c := s.queueAccepted([2]kernel.NetAddr{kernelAddr(tc.LocalAddr()), kernelAddr(tc.RemoteAddr())})
		if c == nil {
			tc.Close() // the backlog is full or the listener went away
			continue
		}
		c.mu.Lock()
		c.ep = n
		c.mu.Unlock()
		c.applyOpts() // what the program set since accept4, if it was that quick
		c.run(tc)
	}
}

// applyOpts applies the options the program set on the socket (setsockopt)
// to its endpoint.
func (s *sock) applyOpts() {
	s.mu.Lock()
	ep := s.ep
	s.mu.Unlock()
	if ep == nil {
		return // no endpoint yet: it takes them when it is made
	}
	var o kernel.NetOpts
	syscall.RawSyscall(kernel.SysNetOpts, uintptr(s.id), uintptr(unsafe.Pointer(&o)), 0)
	so := ep.SocketOptions()
	if o.Set&kernel.NetOptKeepAlive != 0 {
		so.SetKeepAlive(o.KeepAlive != 0)
	}
	if o.Set&kernel.NetOptNoDelay != 0 {
		so.SetDelayOption(o.NoDelay == 0)
	}
	if o.Set&kernel.NetOptLinger != 0 {
		so.SetLinger(tcpip.LingerOption{Enabled: o.Linger >= 0, Timeout: time.Duration(max(o.Linger, 0)) * time.Second})
	}
	if o.Set&kernel.NetOptKeepIdle != 0 {
		v := tcpip.KeepaliveIdleOption(time.Duration(o.KeepIdle) * time.Second)
		ep.SetSockOpt(&v)
	}
	if o.Set&kernel.NetOptKeepIntvl != 0 {
		v := tcpip.KeepaliveIntervalOption(time.Duration(o.KeepIntvl) * time.Second)
		ep.SetSockOpt(&v)
	}
	if o.Set&kernel.NetOptKeepCnt != 0 {
		ep.SetSockOptInt(tcpip.KeepaliveCountOption, int(o.KeepCnt))
	}
	// Linux doubles the buffer sizes it is given (socket(7)).
	if o.Set&kernel.NetOptSndBuf != 0 {
		so.SetSendBufferSize(2*int64(o.SndBuf), true)
	}
	if o.Set&kernel.NetOptRcvBuf != 0 {
		so.SetReceiveBufferSize(2*int64(o.RcvBuf), true)
	}
}

func (s *sock) connect() {
	c, err := s.dial()
	if err != nil {
		event(s.id, kernel.NetEvFailed, uintptr(errnoOf(err)))
		s.mu.Lock()
		closing := s.closing
		s.dialing = false
		s.mu.Unlock()
		if closing {
			s.release()
		}
		return
	}
	s.rx, s.tx = make([]byte, ringMin), make([]byte, ringMin)
	syscall.RawSyscall6(kernel.SysNetRings, uintptr(s.id), uintptr(unsafe.Pointer(&s.rx[0])), uintptr(unsafe.Pointer(&s.tx[0])), ringMin, 0, 0)
	la := kernelAddr(c.LocalAddr())
	event(s.id, kernel.NetEvConnected, uintptr(unsafe.Pointer(&la)))
	s.run(c)
}

// dial makes the socket's endpoint, with the options the program set, and
// connects it (as gonet.DialTCPWithBind does, keeping the endpoint).
func (s *sock) dial() (*gonet.TCPConn, error) {
	local, remote := addrs(s.id)
	var wq waiter.Queue
	ep, proto, err := endpoint(s.id, tcp.ProtocolNumber, &wq)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ep = ep
	s.mu.Unlock()
	s.applyOpts()
	we, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	if l := full(local, proto); l != (tcpip.FullAddress{}) {
		if e := ep.Bind(l); e != nil {
			ep.Close()
			return nil, errors.New("bind: " + e.String())
		}
	}
	e := ep.Connect(full(remote, proto))
	if _, ok := e.(*tcpip.ErrConnectStarted); ok {
		<-ready
		e = ep.LastError()
	}
	if e != nil {
		ep.Close()
		return nil, errors.New(e.String())
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// run starts the connection's reader and writer.
func (s *sock) run(c stream) {
	s.mu.Lock()
	s.conn, s.dialing = c, false
	s.vsock, _ = c.(*vsockConn)
	closing := s.closing
	s.mu.Unlock()
	done := make(chan struct{})
	go s.read(c, done)
	go s.write(c, done)
	if closing {
		signal(s.kick)
	}
}

// read moves received bytes into the kernel's receive ring, growing it
// when it is found full. Its buffer is as large as the ring.
func (s *sock) read(c stream, done chan struct{}) {
	defer close(done)
	buf := make([]byte, len(s.rx))
	for {
		n, err := c.Read(buf)
		for off := 0; off < n; {
			k, _, e := syscall.RawSyscall(kernel.SysNetRx, uintptr(s.id), uintptr(unsafe.Pointer(&buf[off])), uintptr(n-off))
			if e != 0 {
				return
			}
			off += int(k)
			if off < n && s.grow(kernel.NetRingRx) {
				continue
			}
			if off < n {
				select {
				case <-s.room:
				case <-s.closed:
					return
				}
			}
		}
		if len(buf) < len(s.rx) {
			buf = make([]byte, len(s.rx))
		}
		if err != nil {
			select {
			case <-s.closed:
			default:
				if errors.Is(err, io.EOF) {
					event(s.id, kernel.NetEvEOF, 0)
				} else {
					event(s.id, kernel.NetEvReset, uintptr(errnoOf(err)))
				}
			}
			return
		}
	}
}

// write sends what the program put in the send ring, then shuts down or
// closes the connection when the program asked. A ring found full is
// grown; the buffer is as large as the ring.
func (s *sock) write(c stream, readDone chan struct{}) {
	var buf []byte
	shutDone := false
	for range s.kick {
		s.txMu.Lock()
		if len(buf) < len(s.tx) { // sendDirect may have grown the ring
			buf = make([]byte, len(s.tx))
		}
		for {
			n, _, e := syscall.RawSyscall(kernel.SysNetTx, uintptr(s.id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			if e != 0 || n == 0 {
				break
			}
			full := int(n) == len(s.tx)
			if _, err := c.Write(buf[:n]); err != nil {
				event(s.id, kernel.NetEvReset, uintptr(errnoOf(err)))
				break
			}
			if full && s.grow(kernel.NetRingTx) {
				buf = make([]byte, len(s.tx))
			} else if int(n) < len(buf) {
				// The ring is empty: what the program writes next raises
				// NetOpTx again, so no call to find it empty.
				break
			}
		}
		s.txMu.Unlock()
		s.mu.Lock()
		shut, closing := s.shut, s.closing
		s.mu.Unlock()
		if shut && !shutDone {
			c.CloseWrite()
			shutDone = true
		}
		if closing {
			c.Close()
			<-readDone
			s.release()
			return
		}
	}
}

// grow doubles the receive or send ring of a connection, up to ringMax,
// and reports whether it did. Only the goroutine that moves that ring's
// bytes (read or write) calls it.
func (s *sock) grow(which int) bool {
	r := &s.rx
	if which == kernel.NetRingTx {
		r = &s.tx
	}
	if len(*r) >= ringMax {
		return false
	}
	b := make([]byte, 2*len(*r))
	if _, _, e := syscall.RawSyscall6(kernel.SysNetGrow, uintptr(s.id), uintptr(which), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0); e != 0 {
		return false
	}
	*r = b // the old ring is the garbage collector's now
	return true
}

// errnoOf maps a netstack error to the errno Linux gives for it.
func errnoOf(err error) syscall.Errno {
	m := err.Error()
	switch {
	case strings.Contains(m, "refused"):
		return syscall.ECONNREFUSED
	case strings.Contains(m, "timed out"):
		return syscall.ETIMEDOUT
	case strings.Contains(m, "unreachable"):
		return syscall.ENETUNREACH
	case strings.Contains(m, "broken pipe"):
		return syscall.EPIPE
	}
	return syscall.ECONNRESET
}

// openUDP opens the netstack endpoint of a UDP socket at its bound address,
// with its rings and its reader and writer.
func (s *sock) openUDP() {
	local, _ := addrs(s.id)
	var wq waiter.Queue
	ep, proto, err := endpoint(s.id, udp.ProtocolNumber, &wq)
	if err != nil {
		os.Stderr.WriteString("unigo: network: udp endpoint: " + err.Error() + "\n")
		return
	}
	if err := ep.Bind(full(local, proto)); err != nil {
		os.Stderr.WriteString("unigo: network: udp bind: " + err.String() + "\n")
		ep.Close()
		return
	}
	c := gonet.NewUDPConn(&wq, ep)
	s.rx, s.tx = make([]byte, ringMax), make([]byte, ringMax)
	s.mu.Lock()
	s.udp, s.ep = c, ep
	s.mu.Unlock()
	s.applyOpts()
	done := make(chan struct{})
	go func() { // receive
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if n > 0 {
				fa := kernelAddr(from)
				syscall.RawSyscall6(kernel.SysNetRxDgram, uintptr(s.id), uintptr(unsafe.Pointer(&buf[0])), uintptr(n), uintptr(unsafe.Pointer(&fa)), 0, 0)
			}
		}
	}()
	go func() { // send
		buf := make([]byte, 65536)
		for range s.kick {
			for {
				var to kernel.NetAddr
				n, _, e := syscall.RawSyscall6(kernel.SysNetTxDgram, uintptr(s.id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&to)), 0, 0)
				if e != 0 || n == 0 {
					break
				}
				a := full(to, proto)
				c.WriteTo(buf[:n], &net.UDPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)})
			}
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				c.Close()
				<-done
				s.release()
				return
			}
		}
	}()
	syscall.RawSyscall6(kernel.SysNetRings, uintptr(s.id), uintptr(unsafe.Pointer(&s.rx[0])), uintptr(unsafe.Pointer(&s.tx[0])), ringMax, 0, 0)
	signal(s.kick) // datagrams may be waiting
}
