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

	fence   uint32 // for the memory barrier in Receive
	Dropped uint64 // frames received with no buffer to put them in, or sent malformed

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
	var frames [][]byte
	var err error
	raise := false
	if notify == 1 && d.live() {
		frames, raise, err = d.transmitLocked()
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
// buffer; with none free, the frame is dropped, as a NIC does.
func (d *Net) Receive(frame []byte) {
	d.mu.Lock()
	q := &d.q[0]
	if !d.live() || !q.ready {
		d.mu.Unlock()
		return
	}
	err := d.receiveLocked(q, frame)
	raise := err == nil && d.intStatus&1 != 0
	if raise {
		// The used index must be visible before the flags are read, or a
		// driver that just re-enabled interrupts and looked would be missed
		// (x86 may reorder a store with a later load; a locked add orders them).
		atomic.AddUint32(&d.fence, 0)
		if flags, ferr := d.u16(q.driver); ferr == nil && flags&availNoInterrupt != 0 {
			raise = false // the driver is emptying the ring and will look again
			d.intStatus &^= 1
		}
	}
	d.mu.Unlock()
	d.after(err, raise)
}

func (d *Net) receiveLocked(q *queue, frame []byte) error {
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
			return d.stop(err)
		}
		if !ok {
			break
		}
		bufs, err := d.chain(q, head, true, maxFrame)
		if err != nil {
			return d.stop(err)
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
		d.Dropped++
		return nil
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
		return d.stop(err)
	}
	d.Counters.RxFrames.Add(1)
	d.Counters.RxBytes.Add(uint64(len(frame)))
	d.intStatus |= 1
	return nil
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
