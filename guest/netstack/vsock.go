package netstack

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"unigo.dev/unigo/guest/kernel"
)

// A virtio-vsock driver (virtio 1.2 §5.10) for the own monitor's socket
// device, which brings the TCP connections to -p ports: each is a stream
// from the host (context ID 2) to a guest port, which the component queues
// on the listening socket of that port for accept4 (acceptStream), as it
// does a connection netstack accepted. The bytes then move between the
// kernel's socket rings and the device's packets with no TCP/IP stack on
// either side: netstack's TCP work and usernet's are gone from the path,
// and so is the stall two netstacks could get into (COMPAT.md). Flow
// control is by credit (§5.10.6.3): each side tells the other the buffer
// it gives the connection (buf_alloc) and how much of it was consumed
// (fwd_cnt), and never sends past the other's.

const (
	vsockDeviceID  = 19
	vsockFeatStrm  = 1 << 0 // VIRTIO_VSOCK_F_STREAM
	vsockHdrLen    = 44     // struct virtio_vsock_hdr
	vsockHostCID   = 2
	vsockTypeStrm  = 1
	vsockRxNum     = 128
	vsockTxNum     = 64
	vsockBufSize   = 4096
	vsockMaxData   = vsockBufSize - vsockHdrLen
	vsockBufAlloc  = ringMax // what a connection buffers of the host's bytes (buf_alloc)
	vsockEventNum  = 8       // event buffers (§5.10.6.1: the driver fills the event queue)
	vsockEventSize = 8

	vsOpRequest       = 1
	vsOpResponse      = 2
	vsOpRst           = 3
	vsOpShutdown      = 4
	vsOpRW            = 5
	vsOpCreditUpdate  = 6
	vsOpCreditRequest = 7
	vsShutRcv         = 1
	vsShutSend        = 2
)

type vsockDev struct {
	t          transport
	rx, tx, ev virtq
	cid        uint64
	mu         sync.Mutex            // the transmit ring and every connection's state
	conns      map[uint64]*vsockConn // by local port<<32 | peer port
	irq        chan struct{}         // an interrupt: packets received
	txq        chan struct{}         // an interrupt: transmit descriptors free
	kicks      chan struct{}         // packets were put: the kicker notifies
	pend       []*vsockConn          // connections the packets being taken brought bytes for (deliver)
	// deliver's and sendDirect's scratch, under mu, kept between calls so
	// that a batch allocates nothing: the system call's entries, and for
	// each its connection, socket and transmit descriptor; the connections
	// owed a CREDIT_UPDATE.
	xfer    []kernel.NetXfer
	xconn   []*vsockConn
	xsock   []*sock
	xdesc   []uint16
	updates []*vsockConn
}

// vsockConn is one connection; its fields are the device's lock's.
type vsockConn struct {
	d           *vsockDev
	local, peer uint32
	sid         uint32 // the kernel's socket
	rq          []byte // received, not yet in the kernel's receive ring
	held        bool   // the reader goroutine holds bytes it has not put in the ring yet
	pend        bool   // in d.pend
	peerShut    uint32 // SHUTDOWN flags the host sent
	reset       bool   // the host reset the connection
	closed      bool   // Close was called
	wshut       bool   // CloseWrite was called
	peerAlloc   uint32 // the host's buf_alloc and fwd_cnt, from its latest packet
	peerFwd     uint32
	txCnt       uint32 // bytes sent
	fwdCnt      uint32 // bytes read by the component
	advFwd      uint32 // fwd_cnt as last told to the host
	readable    chan struct{}
	writable    chan struct{}
}

var vsdev *vsockDev

// startVsock sets up the socket device, if the monitor gave one.
func startVsock() error {
	t, err := findVirtio(vsockDeviceID)
	if err != nil || t == nil {
		return err
	}
	d := &vsockDev{t: t, conns: map[uint64]*vsockConn{}, irq: make(chan struct{}, 1),
		txq: make(chan struct{}, 1), kicks: make(chan struct{}, 1)}
	t.setStatus(0)
	t.setStatus(statusAck)
	t.setStatus(statusAck | statusDriver)
	feats := t.features()
	if feats&featVersion1 == 0 {
		return fmt.Errorf("%v does not offer VIRTIO_F_VERSION_1", t)
	}
	t.setFeatures(feats & (featVersion1 | vsockFeatStrm))
	t.setStatus(statusAck | statusDriver | statusFeaturesOK)
	if t.status()&statusFeaturesOK == 0 {
		return fmt.Errorf("%v refused the features", t)
	}
	d.cid = uint64(t.config32(0)) | uint64(t.config32(4))<<32 // struct virtio_vsock_config: le64 guest_cid
	if err := d.rx.setup(t, 0, vsockRxNum, vsockBufSize); err != nil {
		return err
	}
	if err := d.tx.setup(t, 1, vsockTxNum, vsockBufSize); err != nil {
		return err
	}
	if err := d.ev.setup(t, 2, vsockEventNum, vsockEventSize); err != nil {
		return err
	}
	for _, q := range []*virtq{&d.rx, &d.ev} { // every receive and event buffer to the device
		for i := uint16(0); i < q.num; i++ {
			q.desc[2*i] = uint64(q.bufs) + uint64(i)*uint64(q.size)
			q.desc[2*i+1] = uint64(q.size) | descFlagWrite<<32
			q.avail[2+i] = i
		}
		q.publish(q.num)
	}
	for i := uint16(0); i < vsockTxNum; i++ {
		d.tx.free = append(d.tx.free, i)
	}
	d.tx.flags = 1 // no interrupts for sent packets, but to wait for descriptors
	d.tx.publish(0)
	if err := t.routeIRQ(); err != nil {
		return err
	}
	t.setStatus(statusAck | statusDriver | statusFeaturesOK | statusDriverOK)
	vsdev = d
	go func() {
		for range d.irq {
			d.receive()
		}
	}()
	go d.kicker()
	signal(d.irq)
	return nil
}

// kicker notifies the device of the packets put since it last did, after
// letting the other runnable goroutines put theirs: a notification is a VM
// exit, as for the network device's frames (sendFrames).
func (d *vsockDev) kicker() {
	for range d.kicks {
		runtime.Gosched()
		d.t.notify(1)
	}
}

// receive takes every packet the device put, then gives the buffers back.
func (d *vsockDev) receive() {
	q := &d.rx
	n := 0
	q.flags = 1 // no interrupts while emptying the ring; then one more look
	q.publish(q.availIdx())
	for {
		for q.lastUsed != q.usedIdx() {
			e := q.lastUsed % q.num
			id, ln := uint16(q.used[1+2*e]), q.used[2+2*e]
			if ln >= vsockHdrLen && uintptr(ln) <= q.size {
				d.packet(q.buf(id)[:ln])
			}
			q.give(id)
			q.lastUsed++
			n++
		}
		if q.flags == 0 {
			break
		}
		q.flags = 0
		q.publish(q.availIdx())
	}
	d.deliver()
	if n > 0 && atomic.LoadUint32(&q.used[0])&1 == 0 { // VIRTQ_USED_F_NO_NOTIFY clear: it waits for buffers
		d.t.notify(0)
	}
}

// deliver puts the bytes the packets just taken brought into the kernel's
// receive rings, with one system call for all their connections (a batch
// under load holds many). What a ring does not take is left to the
// connection's reader goroutine (sock.read), which grows the ring or waits
// for room; so are the bytes of a connection whose reader holds some it
// has not put in the ring yet, which must go first.
func (d *vsockDev) deliver() {
	d.mu.Lock()
	x, cs := d.xfer[:0], d.xconn[:0]
	for _, c := range d.pend {
		c.pend = false
		switch {
		case c.closed || len(c.rq) == 0:
		case c.held:
			signal(c.readable)
		default:
			x = append(x, kernel.NetXfer{Sock: c.sid, Buf: uint64(uintptr(unsafe.Pointer(&c.rq[0]))), Len: uint32(len(c.rq))})
			cs = append(cs, c)
		}
	}
	d.pend = d.pend[:0]
	if len(x) > 0 {
		syscall.RawSyscall(kernel.SysNetRxv, uintptr(unsafe.Pointer(&x[0])), uintptr(len(x)), 0)
	}
	up := d.updates[:0]
	for i, c := range cs {
		k := x[i].Done
		c.consumed(k)
		if c.fwdCnt-c.advFwd >= vsockBufAlloc/4 && !c.reset {
			up = append(up, c)
		}
		if len(c.rq) > 0 {
			signal(c.readable)
		}
		cs[i] = nil
	}
	d.xfer, d.xconn, d.updates = x, cs, up
	d.mu.Unlock()
	for i, c := range up {
		d.control(c, vsOpCreditUpdate, 0)
		up[i] = nil
	}
}

// consumed drops the first n bytes of c's received ones, which went to the
// kernel's ring. Under the device's lock.
func (c *vsockConn) consumed(n uint32) {
	if c.rq = c.rq[n:]; len(c.rq) == 0 {
		c.rq = nil
	}
	c.fwdCnt += n
}

// packet acts on one packet from the device.
func (d *vsockDev) packet(b []byte) {
	le := binary.LittleEndian
	src, dst := le.Uint64(b), le.Uint64(b[8:])
	sport, dport, n := le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[24:])
	typ, op, flags := le.Uint16(b[28:]), le.Uint16(b[30:]), le.Uint32(b[32:])
	alloc, fwd := le.Uint32(b[36:]), le.Uint32(b[40:])
	if uint64(n) > uint64(len(b)-vsockHdrLen) {
		return
	}
	data := b[vsockHdrLen : vsockHdrLen+n]
	key := uint64(dport)<<32 | uint64(sport)
	d.mu.Lock()
	c := d.conns[key]
	if src != vsockHostCID || dst != d.cid || typ != vsockTypeStrm || (c == nil && op != vsOpRequest) {
		d.mu.Unlock()
		if op != vsOpRst {
			d.control(&vsockConn{d: d, local: dport, peer: sport}, vsOpRst, 0)
		}
		return
	}
	if op == vsOpRequest {
		d.mu.Unlock()
		d.accept(dport, sport, alloc, fwd, c != nil)
		return
	}
	if alloc != c.peerAlloc || fwd != c.peerFwd {
		c.peerAlloc, c.peerFwd = alloc, fwd
		signal(c.writable)
	}
	var answer uint16
	switch op {
	case vsOpRW:
		switch {
		case c.closed:
		case len(c.rq)+len(data) > vsockBufAlloc:
			c.gone()
			answer = vsOpRst // past the credit given
		default:
			c.rq = append(c.rq, data...)
			if !c.pend {
				c.pend = true
				d.pend = append(d.pend, c)
			}
		}
	case vsOpShutdown:
		c.peerShut |= flags & (vsShutRcv | vsShutSend)
		signal(c.readable)
		signal(c.writable)
	case vsOpRst:
		c.gone()
	case vsOpCreditRequest:
		answer = vsOpCreditUpdate
	}
	d.mu.Unlock()
	if answer != 0 {
		d.control(c, answer, 0)
	}
}

// gone marks c reset and forgets it. Under the device's lock.
func (c *vsockConn) gone() {
	c.reset = true
	delete(c.d.conns, uint64(c.local)<<32|uint64(c.peer))
	signal(c.readable)
	signal(c.writable)
}

// accept answers a connection request for guest port port: it is queued on
// the listening socket there, or refused with a reset.
func (d *vsockDev) accept(port, peer, alloc, fwd uint32, exists bool) {
	c := &vsockConn{d: d, local: port, peer: peer, peerAlloc: alloc, peerFwd: fwd,
		readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
	if exists || port > 0xffff || peer > 0xffff {
		d.control(c, vsOpRst, 0)
		return
	}
	s := acceptStream(uint16(port), uint16(peer))
	if s == nil {
		d.control(c, vsOpRst, 0)
		return
	}
	d.mu.Lock()
	c.sid = s.id
	d.conns[uint64(port)<<32|uint64(peer)] = c
	d.mu.Unlock()
	d.control(c, vsOpResponse, 0)
	s.run(c)
}

// putLocked puts one packet of c's in the transmit ring, with c's credit,
// and reports false when every descriptor is busy.
func (d *vsockDev) putLocked(c *vsockConn, op uint16, flags uint32, data []byte) bool {
	q := &d.tx
	id, ok := q.takeFree()
	if !ok {
		return false
	}
	b := q.buf(id)
	copy(b[vsockHdrLen:], data)
	d.postLocked(c, id, op, flags, len(data))
	return true
}

// postLocked puts the header of c's packet in transmit buffer id, whose n
// bytes of payload are in place, and gives it to the device.
func (d *vsockDev) postLocked(c *vsockConn, id, op uint16, flags uint32, n int) {
	b := d.tx.buf(id)
	le := binary.LittleEndian
	le.PutUint64(b, d.cid)
	le.PutUint64(b[8:], vsockHostCID)
	le.PutUint32(b[16:], c.local)
	le.PutUint32(b[20:], c.peer)
	le.PutUint32(b[24:], uint32(n))
	le.PutUint16(b[28:], vsockTypeStrm)
	le.PutUint16(b[30:], op)
	le.PutUint32(b[32:], flags)
	le.PutUint32(b[36:], vsockBufAlloc)
	le.PutUint32(b[40:], c.fwdCnt)
	c.advFwd = c.fwdCnt
	d.tx.post(id, vsockHdrLen+n)
}

// sendDirect sends what the program wrote on these sockets' connections,
// with one system call for all that copies each send ring's bytes into a
// transmit buffer (one per connection). A connection whose writer
// goroutine (sock.write) is busy, that has no credit or closes, or when no
// buffer is free, is left to that writer, as is what a buffer did not
// take; a send ring found full is grown, as the writer would.
func (d *vsockDev) sendDirect(ss []*sock) {
	d.mu.Lock()
	x, cs, socks, ids := d.xfer[:0], d.xconn[:0], d.xsock[:0], d.xdesc[:0]
	for _, s := range ss {
		c := s.vsock
		inflight := c.txCnt - c.peerFwd
		if c.closed || c.reset || c.wshut || c.peerShut&vsShutRcv != 0 || inflight >= c.peerAlloc || !s.txMu.TryLock() {
			signal(s.kick)
			continue
		}
		id, ok := d.tx.takeFree()
		if !ok {
			s.txMu.Unlock()
			signal(s.kick)
			continue
		}
		b := d.tx.buf(id)
		x = append(x, kernel.NetXfer{Sock: s.id, Buf: uint64(uintptr(unsafe.Pointer(&b[vsockHdrLen]))), Len: uint32(min(c.peerAlloc-inflight, vsockMaxData))})
		cs, socks, ids = append(cs, c), append(socks, s), append(ids, id)
	}
	if len(x) > 0 {
		syscall.RawSyscall(kernel.SysNetTxv, uintptr(unsafe.Pointer(&x[0])), uintptr(len(x)), 0)
	}
	sent := false
	for i, c := range cs {
		s, k := socks[i], x[i].Done
		if k == 0 {
			d.tx.free = append(d.tx.free, ids[i])
		} else {
			d.postLocked(c, ids[i], vsOpRW, 0, int(k))
			c.txCnt += k
			sent = true
		}
		if x[i].Had == uint32(len(s.tx)) {
			s.grow(kernel.NetRingTx) // found full: the writer's buffer follows (sock.write)
		}
		if x[i].Had > k {
			signal(s.kick)
		}
		s.txMu.Unlock()
		cs[i], socks[i] = nil, nil
	}
	d.xfer, d.xconn, d.xsock, d.xdesc = x, cs, socks, ids
	d.mu.Unlock()
	if sent {
		signal(d.kicks)
	}
}

// room waits until the transmit ring has a free descriptor: the device
// takes the ring's packets when notified (the own monitor's, within the
// notifying write), else it interrupts once it handed some back.
func (d *vsockDev) room() {
	d.t.notify(1)
	d.mu.Lock()
	q := &d.tx
	full := len(q.free) == 0 && q.lastUsed == q.usedIdx()
	d.mu.Unlock()
	if full {
		<-d.txq
	}
}

// control sends a packet without payload for c.
func (d *vsockDev) control(c *vsockConn, op uint16, flags uint32) {
	for {
		d.mu.Lock()
		ok := d.putLocked(c, op, flags, nil)
		d.mu.Unlock()
		if ok {
			signal(d.kicks)
			return
		}
		d.room()
	}
}

// Read takes received bytes; it tells the host of the room it made once a
// quarter of the buffer is free that the host has not heard of.
func (c *vsockConn) Read(b []byte) (int, error) {
	d := c.d
	for {
		d.mu.Lock()
		c.held = false // the reader is back for more: what it took is in the ring
		if len(c.rq) > 0 {
			n := copy(b, c.rq)
			c.consumed(uint32(n))
			c.held = true
			update := c.fwdCnt-c.advFwd >= vsockBufAlloc/4 && !c.reset
			d.mu.Unlock()
			if update {
				d.control(c, vsOpCreditUpdate, 0)
			}
			return n, nil
		}
		closed, reset, eof := c.closed, c.reset, c.peerShut&vsShutSend != 0
		d.mu.Unlock()
		switch {
		case closed:
			return 0, net.ErrClosed
		case reset:
			return 0, syscall.ECONNRESET
		case eof:
			return 0, io.EOF
		}
		<-c.readable
	}
}

// Write sends b as far as the host's credit allows, waiting for more.
func (c *vsockConn) Write(b []byte) (int, error) {
	d := c.d
	sent := 0
	for len(b) > 0 {
		d.mu.Lock()
		switch {
		case c.closed:
			d.mu.Unlock()
			return sent, net.ErrClosed
		case c.reset:
			d.mu.Unlock()
			return sent, syscall.ECONNRESET
		case c.wshut || c.peerShut&vsShutRcv != 0:
			d.mu.Unlock()
			return sent, syscall.EPIPE
		}
		inflight := c.txCnt - c.peerFwd
		if inflight >= c.peerAlloc {
			d.mu.Unlock()
			<-c.writable
			continue
		}
		n := min(len(b), int(c.peerAlloc-inflight), vsockMaxData)
		ok := d.putLocked(c, vsOpRW, 0, b[:n])
		if ok {
			c.txCnt += uint32(n)
		}
		d.mu.Unlock()
		if !ok {
			d.room()
			continue
		}
		signal(d.kicks)
		b, sent = b[n:], sent+n
	}
	return sent, nil
}

// CloseWrite tells the host no more bytes come (SHUTDOWN, SEND).
func (c *vsockConn) CloseWrite() error {
	c.d.mu.Lock()
	done := c.wshut || c.closed || c.reset
	c.wshut = true
	c.d.mu.Unlock()
	if !done {
		c.d.control(c, vsOpShutdown, vsShutSend)
	}
	return nil
}

// Close ends the connection: a SHUTDOWN of both directions, which the host
// answers with a reset once it has written what it received (§5.10.6.5).
func (c *vsockConn) Close() error {
	c.d.mu.Lock()
	done := c.closed || c.reset
	c.closed = true
	c.rq = nil
	signal(c.readable)
	signal(c.writable)
	c.d.mu.Unlock()
	if !done {
		c.d.control(c, vsOpShutdown, vsShutRcv|vsShutSend)
	}
	return nil
}
