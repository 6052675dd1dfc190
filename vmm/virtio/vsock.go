package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// The socket device (virtio 1.2 §5.10, virtio-vsock): stream connections
// between the host (context ID 2) and the guest, with credit-based flow
// control (§5.10.6.3). The own monitor uses it for the TCP connections to
// -p ports: the host's socket is joined to the guest's listening socket
// without a TCP/IP stack on either side, where otherwise usernet's netstack
// and the guest's would speak TCP to each other over virtio-net.
const (
	vsockDeviceID = 19
	featStream    = 1 << 0 // VIRTIO_VSOCK_F_STREAM
	vsockOffered  = featStream | featVersion1

	vsockHdrLen     = 44 // struct virtio_vsock_hdr (§5.10.6)
	vsockTypeStream = 1

	opRequest       = 1
	opResponse      = 2
	opRst           = 3
	opShutdown      = 4
	opRW            = 5
	opCreditUpdate  = 6
	opCreditRequest = 7

	shutRcv  = 1 // VIRTIO_VSOCK_SHUTDOWN_RCV: the sender will receive no more
	shutSend = 2 // VIRTIO_VSOCK_SHUTDOWN_SEND: the sender will send no more

	// vsockBufAlloc is the buffer the device gives each connection for
	// the guest's bytes on their way to the host socket: the guest sends
	// at most this much beyond what the host socket took (buf_alloc).
	vsockBufAlloc = 256 << 10
	// vsockMaxPacket bounds a packet the guest sends: header and payload.
	vsockMaxPacket = vsockHdrLen + 64<<10
	// vsockMaxOut bounds the packets waiting for the guest's receive
	// buffers. Data is bounded by the guest's credit; a guest that asks
	// for answers (CREDIT_REQUEST) without ever giving buffers is not.
	vsockMaxOut = 1 << 16
	// A request the guest refuses on a port where it has not yet accepted
	// a connection is asked again, every vsockRetry, for vsockHold: the
	// program may still be starting, and its client should get the answer
	// once it listens rather than a reset (a port it has served refuses at
	// once, as Linux does).
	vsockHold  = 2 * time.Second
	vsockRetry = 2 * time.Millisecond
)

// Vsock is a virtio-vsock device whose connections the host starts
// (Connect); a connection the guest starts is refused with a reset: the
// guest reaches the host through its TCP/IP stack. Its interrupt is an
// event per batch of used buffers, as Net's.
type Vsock struct {
	transport
	guestCID uint64
	raise    func()
	fail     func(error)

	fence    uint32
	out      []vpacket         // packets for the guest, waiting for receive buffers, in order
	conns    map[uint32]*vconn // by the host's port
	nextPort uint32
	served   map[uint32]bool // guest ports where the guest accepted a connection

	Counters VsockCounters
}

// VsockCounters count a socket device's connections and the bytes they
// carried. Safe to read while it runs.
type VsockCounters struct {
	Conns            atomic.Uint64 // connections the guest accepted
	RxBytes, TxBytes atomic.Uint64 // to the guest, from it
}

// vpacket is a packet for the guest. Its header is made when it is put
// into a receive buffer, with the connection's credit as it is then; a
// payload larger than the buffer is split.
type vpacket struct {
	c     *vconn
	op    uint16
	flags uint32
	data  []byte
}

// vconn is one connection: a host socket and a guest port. Its fields are
// the device's lock's.
type vconn struct {
	host, guest uint32 // ports
	sock        net.Conn
	open        bool      // the guest answered the request
	asked       time.Time // when the first request went to the guest
	dead        bool      // reset or closed: the goroutines stop
	peerAlloc   uint32    // the guest's buf_alloc and fwd_cnt, from its latest packet
	peerFwd     uint32
	txCnt       uint32        // bytes sent to the guest
	rxCnt       uint32        // bytes received from the guest
	fwdCnt      uint32        // of those, bytes the host socket took
	advFwd      uint32        // fwd_cnt as last told to the guest
	wq          [][]byte      // the guest's bytes for the host socket
	guestShut   uint32        // SHUTDOWN flags the guest sent
	credit      chan struct{} // the guest's credit grew, or the connection ended
	work        chan struct{} // bytes or a shutdown for the writer, or the end
}

// NewVsock returns a device for the guest with context ID cid; raise
// interrupts the guest, fail reports a device that stopped.
func NewVsock(mem Memory, cid uint64, raise func(), fail func(error)) *Vsock {
	d := &Vsock{guestCID: cid, raise: raise, fail: fail, conns: map[uint32]*vconn{}, nextPort: 1024, served: map[uint32]bool{}}
	cfg := make([]byte, 8) // struct virtio_vsock_config: le64 guest_cid
	binary.LittleEndian.PutUint64(cfg, cid)
	d.transport = transport{mem: mem, name: "virtio-vsock", id: vsockDeviceID, offered: vsockOffered, config: cfg, q: make([]queue, 3)} // 0 receive, 1 transmit, 2 event
	return d
}

// Connect asks the guest to accept sock on guest port port, and reports
// whether the device took it: not before a driver set the device up. The
// device owns sock from then on and closes it when the connection ends; a
// guest with no listener there resets the connection, and sock is closed.
func (d *Vsock) Connect(port uint32, sock net.Conn) bool {
	d.mu.Lock()
	if !d.live() || !d.q[0].ready || !d.q[1].ready {
		d.mu.Unlock()
		return false
	}
	hp, ok := d.portLocked(sock.RemoteAddr())
	if !ok {
		d.mu.Unlock()
		return false
	}
	c := &vconn{host: hp, guest: port, sock: sock, asked: time.Now(), credit: make(chan struct{}, 1), work: make(chan struct{}, 1)}
	d.conns[hp] = c
	raise, err := d.queueLocked(vpacket{c: c, op: opRequest})
	d.mu.Unlock()
	go d.write(c)
	d.after(err, raise)
	return true
}

// askAgain sends c's request to the guest once more (vsockHold).
func (d *Vsock) askAgain(c *vconn) {
	d.mu.Lock()
	if c.dead || d.conns[c.host] != c || !d.live() || !d.q[0].ready {
		d.mu.Unlock()
		return
	}
	raise, err := d.queueLocked(vpacket{c: c, op: opRequest})
	d.mu.Unlock()
	d.after(err, raise)
}

// portLocked picks the host's port of a new connection, which the guest
// sees as its peer's TCP port, so 16 bits: the client's own port where
// free, so that the guest's logs name it, else the next free one.
func (d *Vsock) portLocked(client net.Addr) (uint32, bool) {
	if a, ok := client.(*net.TCPAddr); ok && a.Port > 0 && a.Port <= 0xffff && d.conns[uint32(a.Port)] == nil {
		return uint32(a.Port), true
	}
	for range 0xffff - 1024 {
		if d.nextPort++; d.nextPort < 1024 || d.nextPort > 0xffff {
			d.nextPort = 1024
		}
		if d.conns[d.nextPort] == nil {
			return d.nextPort, true
		}
	}
	return 0, false
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// endLocked ends c: its goroutines stop and its socket closes.
func (d *Vsock) endLocked(c *vconn) {
	if c.dead {
		return
	}
	c.dead = true
	delete(d.conns, c.host)
	c.sock.Close()
	wake(c.credit)
	wake(c.work)
}

// resetLocked ends c and tells the guest so.
func (d *Vsock) resetLocked(c *vconn) (bool, error) {
	dead := c.dead
	d.endLocked(c)
	if dead {
		return false, nil
	}
	return d.queueLocked(vpacket{c: c, op: opRst})
}

// pump moves what the host socket sends to the guest, as far as the
// guest's credit allows (§5.10.6.3: the sender must not send more than
// buf_alloc - (tx_cnt - fwd_cnt) bytes).
func (d *Vsock) pump(c *vconn) {
	buf := make([]byte, 64<<10)
	for {
		d.mu.Lock()
		free := c.peerAlloc - (c.txCnt - c.peerFwd)
		if c.peerAlloc < c.txCnt-c.peerFwd {
			free = 0
		}
		dead := c.dead
		d.mu.Unlock()
		if dead {
			return
		}
		if free == 0 {
			<-c.credit
			continue
		}
		n, err := c.sock.Read(buf[:min(int(free), len(buf))])
		d.mu.Lock()
		var raise bool
		var qerr error
		if n > 0 && !c.dead {
			c.txCnt += uint32(n)
			d.Counters.RxBytes.Add(uint64(n))
			raise, qerr = d.queueLocked(vpacket{c: c, op: opRW, data: append([]byte(nil), buf[:n]...)})
		}
		if err != nil && !c.dead {
			var r bool
			if errors.Is(err, io.EOF) {
				r, qerr = d.queueLocked(vpacket{c: c, op: opShutdown, flags: shutSend})
			} else {
				r, qerr = d.resetLocked(c)
			}
			raise = raise || r
		}
		d.mu.Unlock()
		d.after(qerr, raise)
		if err != nil {
			return
		}
	}
}

// write moves the guest's bytes to the host socket, passes its shutdowns
// on, and tells the guest of the room it made (CREDIT_UPDATE) once a
// quarter of the buffer is free again that the guest has not heard of.
func (d *Vsock) write(c *vconn) {
	halfShut := false
	for range c.work {
		for {
			d.mu.Lock()
			wq, shut, dead := c.wq, c.guestShut, c.dead
			c.wq = nil
			d.mu.Unlock()
			if dead {
				return
			}
			n := 0
			var err error
			for _, b := range wq {
				var k int
				k, err = c.sock.Write(b)
				n += k
				if err != nil {
					break
				}
			}
			d.mu.Lock()
			var raise bool
			var qerr error
			c.fwdCnt += uint32(n)
			switch {
			case c.dead:
			case err != nil:
				raise, qerr = d.resetLocked(c)
			case len(wq) == 0 && shut&(shutRcv|shutSend) == shutRcv|shutSend:
				// The guest closed: everything it sent is written. The
				// reset answers its shutdown (§5.10.6.5).
				raise, qerr = d.resetLocked(c)
			case c.fwdCnt-c.advFwd >= vsockBufAlloc/4:
				raise, qerr = d.queueLocked(vpacket{c: c, op: opCreditUpdate})
			}
			dead = c.dead
			d.mu.Unlock()
			d.after(qerr, raise)
			if dead {
				return
			}
			if len(wq) == 0 {
				if shut&shutSend != 0 && !halfShut {
					halfShut = true
					if tc, ok := c.sock.(interface{ CloseWrite() error }); ok {
						tc.CloseWrite()
					}
				}
				break
			}
		}
	}
}

// Write takes a guest write of v at register offset off.
func (d *Vsock) Write(off uint64, v uint32) {
	d.mu.Lock()
	notify := d.writeLocked(off, v)
	if off == regQueueReady && d.queueSel == 0 && d.q[0].ready {
		// Receive buffers are taken when a packet comes: no notification
		// of new ones is needed while none waits (VIRTQ_USED_F_NO_NOTIFY).
		if err := d.putU16(d.q[0].device, usedNoNotify); err != nil {
			d.stop(err)
		}
	}
	if off == regStatus && v == 0 {
		d.resetDeviceLocked()
	}
	var err error
	var raise bool
	var start []*vconn
	if notify == 1 && d.live() && d.q[1].ready {
		start, raise, err = d.transmitLocked()
	}
	if notify == 0 && d.live() && d.q[0].ready && err == nil {
		var r bool
		r, err = d.flushLocked()
		raise = raise || r
	}
	d.mu.Unlock()
	for _, c := range start {
		go d.pump(c)
	}
	d.after(err, raise)
}

// resetDeviceLocked ends every connection: the driver reset the device.
func (d *Vsock) resetDeviceLocked() {
	for _, c := range d.conns {
		d.endLocked(c)
	}
	d.out = nil
}

func (d *Vsock) after(err error, raise bool) {
	if err != nil {
		d.fail(err)
	}
	if raise {
		d.raise()
	}
}

// transmitLocked takes every packet the guest queued, and returns the
// connections the guest accepted, whose pumps may start; and whether to
// interrupt the guest for the answers it queued.
func (d *Vsock) transmitLocked() ([]*vconn, bool, error) {
	q := &d.q[1]
	var start []*vconn
	raise, took := false, false
	pkt := make([]byte, 0, 4096)
	for {
		head, ok, err := d.pop(q)
		if err != nil {
			return start, raise, d.stop(err)
		}
		if !ok {
			break
		}
		bufs, err := d.chain(q, head, false, vsockMaxPacket)
		if err != nil {
			return start, raise, d.stop(err)
		}
		pkt = pkt[:0]
		for _, b := range bufs {
			pkt = append(pkt, b...)
		}
		if err := d.push(q, head, 0); err != nil {
			return start, raise, d.stop(err)
		}
		r, c, err := d.packetLocked(pkt)
		if err != nil {
			return start, raise, err
		}
		raise = raise || r
		if c != nil {
			start = append(start, c)
		}
		took = true
	}
	// A driver that waits for transmit descriptors cleared
	// VIRTQ_AVAIL_F_NO_INTERRUPT; Unigo's never needs to, since the
	// device takes every packet within the notifying write.
	if took {
		if flags, err := d.u16(q.driver); err != nil {
			return start, raise, d.stop(err)
		} else if flags&availNoInterrupt == 0 {
			raise = true
		}
	}
	return start, raise, nil
}

// vhdr is a decoded struct virtio_vsock_hdr.
type vhdr struct {
	srcCID, dstCID          uint64
	srcPort, dstPort, len   uint32
	typ, op                 uint16
	flags, bufAlloc, fwdCnt uint32
}

func parseHdr(b []byte) vhdr {
	le := binary.LittleEndian
	return vhdr{le.Uint64(b), le.Uint64(b[8:]), le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[24:]),
		le.Uint16(b[28:]), le.Uint16(b[30:]), le.Uint32(b[32:]), le.Uint32(b[36:]), le.Uint32(b[40:])}
}

// packetLocked acts on one packet from the guest; it returns whether to
// interrupt the guest, and the connection whose pump may start.
func (d *Vsock) packetLocked(pkt []byte) (bool, *vconn, error) {
	if len(pkt) < vsockHdrLen {
		return false, nil, d.stop(fmt.Errorf("a packet of %d bytes, shorter than its header", len(pkt)))
	}
	h := parseHdr(pkt)
	data := pkt[vsockHdrLen:]
	if uint64(h.len) != uint64(len(data)) {
		return false, nil, d.stop(fmt.Errorf("a packet says %d bytes of payload and carries %d", h.len, len(data)))
	}
	c := d.conns[h.dstPort]
	if h.srcCID != d.guestCID || h.dstCID != 2 || h.typ != vsockTypeStream || c == nil || c.guest != h.srcPort {
		if h.op == opRst {
			return false, nil, nil // never answer a reset
		}
		// Not a connection of the device's (a connection the guest starts
		// among them): refused (§5.10.6.4).
		raise, err := d.queueLocked(vpacket{op: opRst, c: &vconn{host: h.dstPort, guest: h.srcPort}})
		return raise, nil, err
	}
	grew := h.bufAlloc != c.peerAlloc || h.fwdCnt != c.peerFwd
	c.peerAlloc, c.peerFwd = h.bufAlloc, h.fwdCnt
	if grew {
		wake(c.credit)
	}
	switch h.op {
	case opResponse:
		if !c.open {
			c.open = true
			d.served[c.guest] = true
			d.Counters.Conns.Add(1)
			return false, c, nil
		}
	case opRst:
		if !c.open && !d.served[c.guest] && time.Since(c.asked) < vsockHold {
			time.AfterFunc(vsockRetry, func() { d.askAgain(c) })
			break
		}
		d.endLocked(c)
	case opShutdown:
		c.guestShut |= h.flags & (shutRcv | shutSend)
		wake(c.work)
	case opRW:
		if len(data) == 0 {
			break
		}
		if c.rxCnt-c.fwdCnt+uint32(len(data)) > vsockBufAlloc {
			r, err := d.resetLocked(c) // beyond the credit the device gave
			return r, nil, err
		}
		c.rxCnt += uint32(len(data))
		d.Counters.TxBytes.Add(uint64(len(data)))
		c.wq = append(c.wq, append([]byte(nil), data...))
		wake(c.work)
	case opCreditRequest:
		r, err := d.queueLocked(vpacket{c: c, op: opCreditUpdate})
		return r, nil, err
	case opRequest:
		r, err := d.resetLocked(c) // a request on a connection that exists
		return r, nil, err
	}
	return false, nil, nil
}

// queueLocked queues p for the guest and puts what it can into receive
// buffers; it reports whether to interrupt the guest.
func (d *Vsock) queueLocked(p vpacket) (bool, error) {
	if len(d.out) >= vsockMaxOut {
		return false, d.stop(errors.New("the driver gives no receive buffers while packets for it pile up"))
	}
	d.out = append(d.out, p)
	if len(d.out) > 1 {
		return false, nil // the ones before it wait for buffers
	}
	return d.flushLocked()
}

// flushLocked puts waiting packets into the guest's receive buffers, in
// order, and reports whether to interrupt it. With packets left waiting,
// the driver is asked to notify the device of new buffers
// (VIRTQ_USED_F_NO_NOTIFY clear, §2.7.10); with none, it need not.
func (d *Vsock) flushLocked() (bool, error) {
	q := &d.q[0]
	if !d.live() || !q.ready {
		return false, nil
	}
	var heads []uint16
	var lens []uint32
	for len(d.out) > 0 {
		head, ok, err := d.pop(q)
		if err != nil {
			return false, d.stop(err)
		}
		if !ok {
			if err := d.putU16(q.device, 0); err != nil {
				return false, d.stop(err)
			}
			atomic.AddUint32(&d.fence, 0) // the flag before the available index
			if head, ok, err = d.pop(q); err != nil {
				return false, d.stop(err)
			}
			if !ok {
				break
			}
		}
		bufs, err := d.chain(q, head, true, vsockMaxPacket)
		if err != nil {
			return false, d.stop(err)
		}
		n := d.fillLocked(bufs)
		heads, lens = append(heads, head), append(lens, n)
	}
	if len(d.out) == 0 {
		d.out = nil
		if err := d.putU16(q.device, usedNoNotify); err != nil {
			return false, d.stop(err)
		}
	}
	if len(heads) == 0 {
		return false, nil
	}
	if err := d.pushAll(q, heads, lens); err != nil {
		return false, d.stop(err)
	}
	// The used index before the flags, as in Net.interruptLocked.
	atomic.AddUint32(&d.fence, 0)
	if flags, err := d.u16(q.driver); err == nil && flags&availNoInterrupt != 0 {
		return false, nil // the driver is emptying the ring and will look again
	}
	return true, nil
}

// fillLocked writes the first waiting packet, or as much of its payload
// as fits, into the buffers of one receive chain, and returns the bytes
// written. A buffer too small even for a header gets nothing.
func (d *Vsock) fillLocked(bufs [][]byte) uint32 {
	room := 0
	for _, b := range bufs {
		room += len(b)
	}
	if room < vsockHdrLen {
		return 0
	}
	p := &d.out[0]
	k := min(len(p.data), room-vsockHdrLen)
	c := p.c
	var h [vsockHdrLen]byte
	le := binary.LittleEndian
	le.PutUint64(h[0:], 2)
	le.PutUint64(h[8:], d.guestCID)
	le.PutUint32(h[16:], c.host)
	le.PutUint32(h[20:], c.guest)
	le.PutUint32(h[24:], uint32(k))
	le.PutUint16(h[28:], vsockTypeStream)
	le.PutUint16(h[30:], p.op)
	le.PutUint32(h[32:], p.flags)
	le.PutUint32(h[36:], vsockBufAlloc)
	le.PutUint32(h[40:], c.fwdCnt)
	c.advFwd = c.fwdCnt
	putAt(bufs, 0, h[:])
	putAt(bufs, vsockHdrLen, p.data[:k])
	if k < len(p.data) {
		p.data = p.data[k:] // the rest goes in the next buffer
	} else {
		d.out[0] = vpacket{}
		d.out = d.out[1:]
	}
	return uint32(vsockHdrLen + k)
}
