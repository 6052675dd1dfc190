// Package virtio is the own monitor's virtio-net device over the virtio-mmio
// transport, version 2 (Virtual I/O Device (VIRTIO) Version 1.2: §4.2.2
// registers, §2.7 split virtqueues, §5.1 network device). The guest is
// hostile: every address, length and index it writes goes through the
// monitor's one checked helper (Memory.Slice), descriptor chains are bounded
// and a malformed one stops the device with an error, never a read or write
// outside guest memory.
package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Memory is guest memory as the monitor exposes it.
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// Registers (§4.2.2) and constants.
const (
	regMagic          = 0x000
	regVersion        = 0x004
	regDeviceID       = 0x008
	regVendorID       = 0x00c
	regDeviceFeatures = 0x010
	regDeviceFeatSel  = 0x014
	regDriverFeatures = 0x020
	regDriverFeatSel  = 0x024
	regQueueSel       = 0x030
	regQueueNumMax    = 0x034
	regQueueNum       = 0x038
	regQueueReady     = 0x044
	regQueueNotify    = 0x050
	regIntStatus      = 0x060
	regIntACK         = 0x064
	regStatus         = 0x070
	regQueueDescLo    = 0x080
	regQueueDescHi    = 0x084
	regQueueDriverLo  = 0x090
	regQueueDriverHi  = 0x094
	regQueueDeviceLo  = 0x0a0
	regQueueDeviceHi  = 0x0a4
	regConfigGen      = 0x0fc
	regConfig         = 0x100

	magic         = 0x74726976 // "virt"
	vendor        = 0x4f474e55 // "UNGO"
	netDeviceID   = 1
	featCSUM      = 1 << 0 // VIRTIO_NET_F_CSUM: the driver may leave checksums to the device
	featGuestCSUM = 1 << 1 // VIRTIO_NET_F_GUEST_CSUM: the device may say a checksum is valid
	featMAC       = 1 << 5
	featMrgRxbuf  = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF: a frame may span receive buffers
	featVersion1  = 1 << 32
	offered       = featCSUM | featGuestCSUM | featMAC | featMrgRxbuf | featVersion1

	hdrNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM (§5.1.6)
	hdrDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID
	statusFailed = 0x80
	statusReset  = 0x40 // DEVICE_NEEDS_RESET
	queueMax     = 256
	netHdrLen    = 12
	maxFrame     = 65535 + netHdrLen
	descWrite    = 2
	descNext     = 1
	descIndirect = 4

	availNoInterrupt = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT
	usedNoNotify     = 1 // VIRTQ_USED_F_NO_NOTIFY
)

type queue struct {
	num                  uint32
	ready                bool
	desc, driver, device uint64
	lastAvail            uint16
}

// Net is a virtio-net device.
type Net struct {
	mem   Memory
	mac   [6]byte
	send  func(frame []byte) // to the network
	raise func()             // interrupt the guest
	fail  func(error)        // the device stopped

	mu        sync.Mutex
	featSel   uint32
	drvSel    uint32
	driver    uint64
	queueSel  uint32
	q         [2]queue // 0 receive, 1 transmit
	status    uint32
	intStatus uint32
	broken    bool
	fence     uint32 // for the memory barrier in Receive
	Dropped   uint64 // frames received with no buffer to put them in, or sent malformed

	// ValidChecksums says the network's frames carry correct checksums
	// (an in-process network, not a LAN): the driver is told so
	// (VIRTIO_NET_HDR_F_DATA_VALID) and need not check them again.
	ValidChecksums bool
}

// NewNet returns a device with MAC address mac whose transmitted frames go
// to send; raise interrupts the guest, fail reports a device that stopped.
func NewNet(mem Memory, mac [6]byte, send func([]byte), raise func(), fail func(error)) *Net {
	return &Net{mem: mem, mac: mac, send: send, raise: raise, fail: fail}
}

// Read answers a guest read of size bytes at register offset off.
func (d *Net) Read(off uint64, size int) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= regConfig {
		i := off - regConfig
		var v uint32
		for k := 0; k < size && k < 4; k++ {
			if i+uint64(k) < 6 {
				v |= uint32(d.mac[i+uint64(k)]) << (8 * k)
			}
		}
		return v
	}
	q := d.sel()
	switch off {
	case regMagic:
		return magic
	case regVersion:
		return 2
	case regDeviceID:
		return netDeviceID
	case regVendorID:
		return vendor
	case regDeviceFeatures:
		f := uint64(offered)
		if d.featSel == 0 {
			return uint32(f)
		} else if d.featSel == 1 {
			return uint32(f >> 32)
		}
	case regQueueNumMax:
		if q != nil {
			return queueMax
		}
	case regQueueReady:
		if q != nil && q.ready {
			return 1
		}
	case regIntStatus:
		return d.intStatus
	case regStatus:
		return d.status
	case regConfigGen:
		return 0
	}
	return 0
}

func (d *Net) sel() *queue {
	if d.queueSel < uint32(len(d.q)) {
		return &d.q[d.queueSel]
	}
	return nil
}

// Write takes a guest write of v at register offset off.
func (d *Net) Write(off uint64, v uint32) {
	d.mu.Lock()
	q := d.sel()
	setLo := func(p *uint64) { *p = *p&^0xffffffff | uint64(v) }
	setHi := func(p *uint64) { *p = *p&0xffffffff | uint64(v)<<32 }
	notify := -1
	switch off {
	case regDeviceFeatSel:
		d.featSel = v
	case regDriverFeatSel:
		d.drvSel = v
	case regDriverFeatures:
		if d.drvSel < 2 {
			d.driver = d.driver&^(0xffffffff<<(32*d.drvSel)) | uint64(v)<<(32*d.drvSel)
		}
	case regQueueSel:
		d.queueSel = v
	case regQueueNum:
		if q != nil && v <= queueMax && v&(v-1) == 0 {
			q.num = v
		}
	case regQueueReady:
		if q != nil {
			q.ready = v == 1 && q.num != 0
			if q.ready && d.queueSel == 0 {
				// The device takes receive buffers when a frame comes: it
				// needs no notification of new ones (VIRTQ_USED_F_NO_NOTIFY).
				if err := d.putU16(q.device, usedNoNotify); err != nil {
					d.stop(err)
				}
			}
		}
	case regQueueDescLo, regQueueDescHi, regQueueDriverLo, regQueueDriverHi, regQueueDeviceLo, regQueueDeviceHi:
		if q != nil {
			p := map[uint64]*uint64{regQueueDescLo: &q.desc, regQueueDescHi: &q.desc, regQueueDriverLo: &q.driver,
				regQueueDriverHi: &q.driver, regQueueDeviceLo: &q.device, regQueueDeviceHi: &q.device}[off]
			if off&4 == 0 {
				setLo(p)
			} else {
				setHi(p)
			}
		}
	case regQueueNotify:
		notify = int(v)
	case regIntACK:
		d.intStatus &^= v
	case regStatus:
		if v == 0 { // reset (§4.2.3.1); the lock stays held
			d.featSel, d.drvSel, d.driver, d.queueSel = 0, 0, 0, 0
			d.q = [2]queue{}
			d.status, d.intStatus, d.broken = 0, 0, false
		} else {
			d.status = v
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

func (d *Net) live() bool { return !d.broken && d.status&4 != 0 } // DRIVER_OK

func (d *Net) stop(err error) error {
	d.broken = true
	d.status |= statusReset
	return fmt.Errorf("virtio-net: %w; the device stopped", err)
}

// ring accessors: the avail ring is flags, idx, ring[num]; the used ring
// flags, idx, {id, len}[num] (§2.7.6, §2.7.8).
func (d *Net) u16(gpa uint64) (uint16, error) {
	b, err := d.mem.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (d *Net) putU16(gpa uint64, v uint16) error {
	b, err := d.mem.Slice(gpa, 2)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(b, v)
	return nil
}

type desc struct {
	addr  uint64
	len   uint32
	flags uint16
	next  uint16
}

func (d *Net) desc(q *queue, i uint16) (desc, error) {
	if uint32(i) >= q.num {
		return desc{}, fmt.Errorf("descriptor index %d beyond the queue's %d", i, q.num)
	}
	b, err := d.mem.Slice(q.desc+uint64(i)*16, 16)
	if err != nil {
		return desc{}, err
	}
	return desc{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint16(b[12:]), binary.LittleEndian.Uint16(b[14:])}, nil
}

// chain returns the buffers of the descriptor chain at head, writable or not.
func (d *Net) chain(q *queue, head uint16, writable bool) ([][]byte, error) {
	var bufs [][]byte
	total := uint64(0)
	i := head
	for n := uint32(0); ; n++ {
		if n >= q.num {
			return nil, errors.New("a descriptor chain loops or is longer than the queue")
		}
		ds, err := d.desc(q, i)
		if err != nil {
			return nil, err
		}
		if ds.flags&descIndirect != 0 {
			return nil, errors.New("an indirect descriptor, which was not negotiated")
		}
		if (ds.flags&descWrite != 0) != writable {
			return nil, fmt.Errorf("descriptor %d has the wrong direction", i)
		}
		total += uint64(ds.len)
		if total > maxFrame {
			return nil, fmt.Errorf("a descriptor chain of more than %d bytes", maxFrame)
		}
		b, err := d.mem.Slice(ds.addr, uint64(ds.len))
		if err != nil {
			return nil, err
		}
		bufs = append(bufs, b)
		if ds.flags&descNext == 0 {
			return bufs, nil
		}
		i = ds.next
	}
}

// pop takes the next available chain of q, if any.
func (d *Net) pop(q *queue) (head uint16, ok bool, err error) {
	idx, err := d.u16(q.driver + 2)
	if err != nil {
		return 0, false, err
	}
	if idx == q.lastAvail {
		return 0, false, nil
	}
	if uint16(idx-q.lastAvail) > uint16(q.num) {
		return 0, false, fmt.Errorf("the available index moved %d entries in a queue of %d", uint16(idx-q.lastAvail), q.num)
	}
	head, err = d.u16(q.driver + 4 + uint64(q.lastAvail%uint16(q.num))*2)
	if err != nil {
		return 0, false, err
	}
	q.lastAvail++
	return head, true, nil
}

// push returns chain head to the driver with n bytes written.
func (d *Net) push(q *queue, head uint16, n uint32) error {
	return d.pushAll(q, []uint16{head}, []uint32{n})
}

// pushAll returns chains to the driver at once: the used index moves past
// all of them in one store, so a driver never sees part of a frame that
// spans buffers (§5.1.6.4).
func (d *Net) pushAll(q *queue, heads []uint16, lens []uint32) error {
	idx, err := d.u16(q.device + 2)
	if err != nil {
		return err
	}
	for i, head := range heads {
		b, err := d.mem.Slice(q.device+4+uint64((idx+uint16(i))%uint16(q.num))*8, 8)
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(b, uint32(head))
		binary.LittleEndian.PutUint32(b[4:], lens[i])
	}
	return d.putU16(q.device+2, idx+uint16(len(heads)))
}

// transmitLocked takes every frame the driver queued for sending, and
// reports whether to interrupt: not if the driver asked for no interrupts
// (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7) or one is already pending.
func (d *Net) transmitLocked() ([][]byte, bool, error) {
	q := &d.q[1]
	if !q.ready {
		return nil, false, nil
	}
	pending := d.intStatus&1 != 0
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
		bufs, err := d.chain(q, head, false)
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
	return frames, !pending, nil
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
	pending := d.intStatus&1 != 0
	err := d.receiveLocked(q, frame)
	raise := err == nil && !pending && d.intStatus&1 != 0
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
	d.after(err, raise) // one interrupt until the driver acknowledges it
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
		bufs, err := d.chain(q, head, true)
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
