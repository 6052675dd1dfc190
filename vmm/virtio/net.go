package virtio

import (
	"encoding/binary"
	"sync/atomic"
)

// The network device (§5.1).
const (
	netDeviceID   = 1
	featCSUM      = 1 << 0 // VIRTIO_NET_F_CSUM: the driver may leave checksums to the device
	featGuestCSUM = 1 << 1 // VIRTIO_NET_F_GUEST_CSUM: the device may say a checksum is valid
	featMAC       = 1 << 5
	featMrgRxbuf  = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF: a frame may span receive buffers
	netOffered    = featCSUM | featGuestCSUM | featMAC | featMrgRxbuf | featVersion1

	hdrNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM (§5.1.6)
	hdrDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID
	netHdrLen    = 12
	maxFrame     = 65535 + netHdrLen
)

// Net is a virtio-net device. Its interrupt is an event, not a line: it is
// raised for every batch of used buffers the driver asked to hear of,
// whether or not the driver acknowledged the last one. InterruptStatus and
// InterruptACK work as the spec says (§4.2.2), for a driver that uses them;
// Unigo's kernel skips them, two VM exits per interrupt.
type Net struct {
	transport
	send  func(frame []byte) // to the network
	raise func()             // interrupt the guest
	fail  func(error)        // the device stopped

	fence     uint32   // for the memory barrier in Receive
	held      [][]byte // frames waiting for receive buffers, in order
	heldBytes int
	Dropped   uint64 // frames received past maxHeld, or too big for the buffers given, or sent malformed

	Counters NetCounters

	// ValidChecksums says the network's frames carry correct checksums
	// (an in-process network, not a LAN): the driver is told so
	// (VIRTIO_NET_HDR_F_DATA_VALID) and need not check them again.
	ValidChecksums bool
}

// NetCounters count the frames a network device carried, and their bytes
// (Ethernet frames, without the virtio header). Safe to read while it runs.
type NetCounters struct {
	RxFrames, RxBytes, TxFrames, TxBytes atomic.Uint64
}

// NewNet returns a device with MAC address mac whose transmitted frames go
// to send; raise interrupts the guest, fail reports a device that stopped.
func NewNet(mem Memory, mac [6]byte, send func([]byte), raise func(), fail func(error)) *Net {
	d := &Net{send: send, raise: raise, fail: fail}
	d.transport = transport{mem: mem, name: "virtio-net", id: netDeviceID, offered: netOffered, config: mac[:], q: make([]queue, 2)} // 0 receive, 1 transmit
	return d
}

// Write takes a guest write of v at register offset off.
func (d *Net) Write(off uint64, v uint32) {
	d.mu.Lock()
	notify := d.writeLocked(off, v)
	if off == regQueueReady && d.queueSel == 0 && d.q[0].ready {
		// The device takes receive buffers when a frame comes: it needs
		// no notification of new ones (VIRTQ_USED_F_NO_NOTIFY).
		if err := d.putU16(d.q[0].device, usedNoNotify); err != nil {
			d.stop(err)
		}
	}
	if off == regStatus && v == 0 {
		d.held, d.heldBytes = nil, 0 // a reset
	}
	var frames [][]byte
	var err error
	raise := false
	if notify == 1 && d.live() {
		frames, raise, err = d.transmitLocked()
	}
	if notify == 0 && d.live() && d.q[0].ready {
		// New receive buffers, asked for while frames are held.
		var put bool
		put, err = d.flushLocked(&d.q[0])
		raise = err == nil && put && d.interruptLocked(&d.q[0])
	}
	d.mu.Unlock()
	for _, f := range frames {
		d.send(f)
	}
	d.after(err, raise)
}

// after reports a failure or raises the interrupt, outside the lock.
func (d *Net) after(err error, interrupt bool) {
	if err != nil {
		d.fail(err)
	}
	if interrupt {
		d.raise()
	}
}

// transmitLocked takes every frame the driver queued for sending, and
// reports whether to interrupt: not if the driver asked for no interrupts
// (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7).
func (d *Net) transmitLocked() ([][]byte, bool, error) {
	q := &d.q[1]
	if !q.ready {
		return nil, false, nil
	}
	flags, err := d.u16(q.driver)
	if err != nil {
		return nil, false, d.stop(err)
	}
	var frames [][]byte
	for {
		head, ok, err := d.pop(q)
		if err != nil {
			return frames, false, d.stop(err)
		}
		if !ok {
			break
		}
		bufs, err := d.chain(q, head, false, maxFrame)
		if err != nil {
			return frames, false, d.stop(err)
		}
		var f []byte
		for _, b := range bufs {
			f = append(f, b...)
		}
		if len(f) > netHdrLen {
			if frame, ok := d.completeChecksum(f); ok {
				frames = append(frames, frame)
				d.Counters.TxFrames.Add(1)
				d.Counters.TxBytes.Add(uint64(len(frame)))
			} else {
				d.Dropped++
			}
		}
		if err := d.push(q, head, 0); err != nil {
			return frames, false, d.stop(err)
		}
	}
	if len(frames) == 0 || flags&availNoInterrupt != 0 {
		return frames, false, nil
	}
	d.intStatus |= 1
	return frames, true, nil
}

// Receive puts a frame from the network into the guest's next receive
// buffer. With none free it holds the frame, up to maxHeld bytes, and asks
// the driver to notify it of new buffers; past that it drops the frame, as
// a NIC with a full queue does. The network here is mostly this process's
// own (usernet), where a dropped frame would only cost a TCP
// retransmission later: a 100 MiB echo through -p took 2.0 s with drops,
// 1.4 s with holding.
func (d *Net) Receive(frame []byte) {
	d.mu.Lock()
	q := &d.q[0]
	if !d.live() || !q.ready {
		d.mu.Unlock()
		return
	}
	put, err := d.flushLocked(q) // what is held goes first, in order
	if err == nil {
		ok := false
		if len(d.held) == 0 {
			ok, err = d.receiveLocked(q, frame)
			put = put || ok
		}
		if err == nil && !ok {
			err = d.holdLocked(q, append([]byte(nil), frame...)) // the caller's buffer is reused
		}
	}
	raise := err == nil && put && d.interruptLocked(q)
	d.mu.Unlock()
	d.after(err, raise)
}

// maxHeld bounds the bytes of frames the device holds for want of receive
// buffers: some 2,700 full-sized frames, more than a TCP window of the
// guest's.
const maxHeld = 4 << 20

// holdLocked keeps frame until the driver gives buffers. The first frame
// held clears VIRTQ_USED_F_NO_NOTIFY (§2.7.10), so that the driver
// notifies queue 0 when it gives buffers back, and then looks again at the
// available ring for buffers given before the driver could see the flag.
func (d *Net) holdLocked(q *queue, frame []byte) error {
	if d.heldBytes+len(frame) > maxHeld {
		d.Dropped++
		return nil
	}
	d.held = append(d.held, frame)
	d.heldBytes += len(frame)
	if len(d.held) > 1 {
		return nil
	}
	if err := d.putU16(q.device, 0); err != nil {
		return d.stop(err)
	}
	atomic.AddUint32(&d.fence, 0) // the flag before the available index
	_, err := d.flushLocked(q)
	return err
}

// flushLocked puts held frames into the buffers the driver gave, in order,
// and reports whether it put any. With none left held, the device again
// needs no notification of new buffers.
func (d *Net) flushLocked(q *queue) (bool, error) {
	if len(d.held) == 0 {
		return false, nil
	}
	put := false
	for len(d.held) > 0 {
		ok, err := d.receiveLocked(q, d.held[0])
		if err != nil || !ok {
			return put, err
		}
		put = true
		d.heldBytes -= len(d.held[0])
		d.held[0] = nil
		d.held = d.held[1:]
	}
	d.held = nil
	if err := d.putU16(q.device, usedNoNotify); err != nil {
		return put, d.stop(err)
	}
	return put, nil
}

// interruptLocked reports whether the driver wants to hear of the frames
// just put: not while it empties the ring (VIRTQ_AVAIL_F_NO_INTERRUPT).
func (d *Net) interruptLocked(q *queue) bool {
	// The used index must be visible before the flags are read, or a
	// driver that just re-enabled interrupts and looked would be missed
	// (x86 may reorder a store with a later load; a locked add orders them).
	atomic.AddUint32(&d.fence, 0)
	if flags, err := d.u16(q.driver); err == nil && flags&availNoInterrupt != 0 {
		d.intStatus &^= 1
		return false // the driver is emptying the ring and will look again
	}
	return true
}

// receiveLocked puts frame into the driver's next buffers and reports
// whether it took the frame (it drops one that does not fit whole); false
// when the driver has given no buffer.
func (d *Net) receiveLocked(q *queue, frame []byte) (bool, error) {
	var hdr [netHdrLen]byte
	if d.ValidChecksums && d.driver&featGuestCSUM != 0 {
		hdr[0] = hdrDataValid
	}
	src := append(hdr[:], frame...)
	// Without VIRTIO_NET_F_MRG_RXBUF a frame takes one buffer chain; with
	// it, as many as it needs, their count in num_buffers (§5.1.6.4).
	var heads [8]uint16
	var lens [8]uint32
	var first [][]byte // the first chain's buffers: num_buffers goes there
	nb, n := 0, 0
	for n < len(src) {
		if nb == len(heads) || (nb == 1 && d.driver&featMrgRxbuf == 0) {
			break
		}
		head, ok, err := d.pop(q)
		if err != nil {
			return false, d.stop(err)
		}
		if !ok {
			break
		}
		bufs, err := d.chain(q, head, true, maxFrame)
		if err != nil {
			return false, d.stop(err)
		}
		k := 0
		for _, b := range bufs {
			k += copy(b, src[n+k:])
		}
		if nb == 0 {
			first = bufs
		}
		heads[nb], lens[nb] = head, uint32(k)
		nb, n = nb+1, n+k
	}
	if nb == 0 {
		return false, nil
	}
	if n < len(src) {
		d.Dropped++ // no room for the whole frame: the buffers go back empty
		for i := range lens[:nb] {
			lens[i] = 0
		}
	} else {
		putAt(first, 10, []byte{byte(nb), byte(nb >> 8)}) // num_buffers
	}
	if err := d.pushAll(q, heads[:nb], lens[:nb]); err != nil {
		return false, d.stop(err)
	}
	d.Counters.RxFrames.Add(1)
	d.Counters.RxBytes.Add(uint64(len(frame)))
	d.intStatus |= 1
	return true, nil
}

// putAt writes b at offset off of the bytes bufs hold in turn.
func putAt(bufs [][]byte, off int, b []byte) {
	for _, buf := range bufs {
		for ; len(b) > 0 && off < len(buf); off++ {
			buf[off], b = b[0], b[1:]
		}
		if len(b) == 0 {
			return
		}
		off -= len(buf)
	}
}

// completeChecksum returns the frame of a transmitted buffer (header and
// frame), with the checksum the driver left to the device filled in
// (VIRTIO_NET_HDR_F_NEEDS_CSUM, §5.1.6.2: the one's complement sum from
// csum_start to the end, stored at csum_start+csum_offset, over the
// pseudo-header sum the driver put there); false for a header that points
// outside the frame.
func (d *Net) completeChecksum(b []byte) ([]byte, bool) {
	frame := b[netHdrLen:]
	if b[0]&hdrNeedsCsum == 0 || d.driver&featCSUM == 0 {
		return frame, true
	}
	start := int(binary.LittleEndian.Uint16(b[6:]))
	at := start + int(binary.LittleEndian.Uint16(b[8:]))
	if start > len(frame) || at+2 > len(frame) {
		return nil, false
	}
	var sum uint32
	p := frame[start:]
	for ; len(p) >= 2; p = p[2:] {
		sum += uint32(p[0])<<8 | uint32(p[1])
	}
	if len(p) == 1 {
		sum += uint32(p[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(frame[at:], ^uint16(sum))
	return frame, true
}
