// Package virtio is the own monitor's virtio devices over the virtio-mmio
// transport, version 2 (Virtual I/O Device (VIRTIO) Version 1.2: §4.2.2
// registers, §2.7 split virtqueues): network (§5.1) and 9P file sharing
// (§5.11). The guest is hostile: every address, length and index it writes
// goes through the monitor's one checked helper (Memory.Slice), descriptor
// chains are bounded and a malformed one stops the device with an error,
// never a read or write outside guest memory.
package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// LateWrites are the register ranges, as offsets in a device's page, whose
// writes a device may apply late, as long as it applies them before it
// answers the next access: the feature and queue selectors, the driver's
// features, and the queue's size and addresses (§4.2.2). A coalesced MMIO
// zone can hold them, so that a driver's set-up costs fewer exits.
var LateWrites = [][2]uint64{{regDeviceFeatSel, regDriverFeatSel + 4}, {regQueueSel, regQueueNum + 4}, {regQueueDescLo, regQueueDeviceHi + 4}}

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

	magic        = 0x74726976 // "virt"
	vendor       = 0x4f474e55 // "UNGO"
	featVersion1 = 1 << 32

	statusFailed = 0x80
	statusReset  = 0x40 // DEVICE_NEEDS_RESET
	queueMax     = 256
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

// transport is the state every virtio-mmio device has: features, status,
// queues and the interrupt status, and the rings in guest memory.
type transport struct {
	mem     Memory
	name    string // for errors: "virtio-net"
	id      uint32 // device ID (§5)
	offered uint64 // feature bits
	config  []byte // the device-specific configuration space

	mu        sync.Mutex
	featSel   uint32
	drvSel    uint32
	driver    uint64
	queueSel  uint32
	q         []queue
	status    uint32
	intStatus uint32
	broken    bool
}

// readLocked answers a guest read of size bytes at register offset off.
func (t *transport) readLocked(off uint64, size int) uint32 {
	if off >= regConfig {
		i := off - regConfig
		var v uint32
		for k := 0; k < size && k < 4; k++ {
			if i+uint64(k) < uint64(len(t.config)) {
				v |= uint32(t.config[i+uint64(k)]) << (8 * k)
			}
		}
		return v
	}
	q := t.sel()
	switch off {
	case regMagic:
		return magic
	case regVersion:
		return 2
	case regDeviceID:
		return t.id
	case regVendorID:
		return vendor
	case regDeviceFeatures:
		if t.featSel < 2 {
			return uint32(t.offered >> (32 * t.featSel))
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
		return t.intStatus
	case regStatus:
		return t.status
	}
	return 0
}

func (t *transport) sel() *queue {
	if t.queueSel < uint32(len(t.q)) {
		return &t.q[t.queueSel]
	}
	return nil
}

// writeLocked takes a guest write of v at register offset off; it returns
// the queue notified, or -1.
func (t *transport) writeLocked(off uint64, v uint32) int {
	q := t.sel()
	switch off {
	case regDeviceFeatSel:
		t.featSel = v
	case regDriverFeatSel:
		t.drvSel = v
	case regDriverFeatures:
		if t.drvSel < 2 {
			t.driver = t.driver&^(0xffffffff<<(32*t.drvSel)) | uint64(v)<<(32*t.drvSel)
		}
	case regQueueSel:
		t.queueSel = v
	case regQueueNum:
		if q != nil && v <= queueMax && v&(v-1) == 0 {
			q.num = v
		}
	case regQueueReady:
		if q != nil {
			q.ready = v == 1 && q.num != 0
		}
	case regQueueDescLo, regQueueDescHi, regQueueDriverLo, regQueueDriverHi, regQueueDeviceLo, regQueueDeviceHi:
		if q != nil {
			p := map[uint64]*uint64{regQueueDescLo: &q.desc, regQueueDescHi: &q.desc, regQueueDriverLo: &q.driver,
				regQueueDriverHi: &q.driver, regQueueDeviceLo: &q.device, regQueueDeviceHi: &q.device}[off]
			if off&4 == 0 {
				*p = *p&^0xffffffff | uint64(v)
			} else {
				*p = *p&0xffffffff | uint64(v)<<32
			}
		}
	case regQueueNotify:
		return int(v)
	case regIntACK:
		t.intStatus &^= v
	case regStatus:
		if v == 0 { // reset (§4.2.3.1)
			t.featSel, t.drvSel, t.driver, t.queueSel = 0, 0, 0, 0
			t.q = make([]queue, len(t.q))
			t.status, t.intStatus, t.broken = 0, 0, false
		} else {
			t.status = v
		}
	}
	return -1
}

func (t *transport) live() bool { return !t.broken && t.status&4 != 0 } // DRIVER_OK

func (t *transport) stop(err error) error {
	t.broken = true
	t.status |= statusReset
	return fmt.Errorf("%s: %w; the device stopped", t.name, err)
}

// ring accessors: the avail ring is flags, idx, ring[num]; the used ring
// flags, idx, {id, len}[num] (§2.7.6, §2.7.8).
func (t *transport) u16(gpa uint64) (uint16, error) {
	b, err := t.mem.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (t *transport) putU16(gpa uint64, v uint16) error {
	b, err := t.mem.Slice(gpa, 2)
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

func (t *transport) desc(q *queue, i uint16) (desc, error) {
	if uint32(i) >= q.num {
		return desc{}, fmt.Errorf("descriptor index %d beyond the queue's %d", i, q.num)
	}
	b, err := t.mem.Slice(q.desc+uint64(i)*16, 16)
	if err != nil {
		return desc{}, err
	}
	return desc{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint16(b[12:]), binary.LittleEndian.Uint16(b[14:])}, nil
}

// chain returns the buffers of the descriptor chain at head, writable or
// not, at most max bytes in all.
func (t *transport) chain(q *queue, head uint16, writable bool, max uint64) ([][]byte, error) {
	out, in, err := t.chainBoth(q, head, max)
	if err != nil {
		return nil, err
	}
	if writable && len(out) > 0 || !writable && len(in) > 0 {
		return nil, fmt.Errorf("descriptor chain %d has the wrong direction", head)
	}
	if writable {
		return in, nil
	}
	return out, nil
}

// chainBoth returns the device-readable buffers of the chain at head and
// then its device-writable ones (§2.7.4.2: readable ones come first), each
// side at most max bytes.
func (t *transport) chainBoth(q *queue, head uint16, max uint64) (out, in [][]byte, err error) {
	var nout, nin uint64
	i := head
	for n := uint32(0); ; n++ {
		if n >= q.num {
			return nil, nil, errors.New("a descriptor chain loops or is longer than the queue")
		}
		ds, err := t.desc(q, i)
		if err != nil {
			return nil, nil, err
		}
		if ds.flags&descIndirect != 0 {
			return nil, nil, errors.New("an indirect descriptor, which was not negotiated")
		}
		b, err := t.mem.Slice(ds.addr, uint64(ds.len))
		if err != nil {
			return nil, nil, err
		}
		if ds.flags&descWrite != 0 {
			if nin += uint64(ds.len); nin > max {
				return nil, nil, fmt.Errorf("a descriptor chain of more than %d bytes", max)
			}
			in = append(in, b)
		} else {
			if len(in) > 0 {
				return nil, nil, fmt.Errorf("descriptor chain %d has a readable buffer after a writable one", head)
			}
			if nout += uint64(ds.len); nout > max {
				return nil, nil, fmt.Errorf("a descriptor chain of more than %d bytes", max)
			}
			out = append(out, b)
		}
		if ds.flags&descNext == 0 {
			return out, in, nil
		}
		i = ds.next
	}
}

// pop takes the next available chain of q, if any.
func (t *transport) pop(q *queue) (head uint16, ok bool, err error) {
	idx, err := t.u16(q.driver + 2)
	if err != nil {
		return 0, false, err
	}
	if idx == q.lastAvail {
		return 0, false, nil
	}
	if uint16(idx-q.lastAvail) > uint16(q.num) {
		return 0, false, fmt.Errorf("the available index moved %d entries in a queue of %d", uint16(idx-q.lastAvail), q.num)
	}
	head, err = t.u16(q.driver + 4 + uint64(q.lastAvail%uint16(q.num))*2)
	if err != nil {
		return 0, false, err
	}
	q.lastAvail++
	return head, true, nil
}

// push returns chain head to the driver with n bytes written.
func (t *transport) push(q *queue, head uint16, n uint32) error {
	return t.pushAll(q, []uint16{head}, []uint32{n})
}

// pushAll returns chains to the driver at once: the used index moves past
// all of them in one store, so a driver never sees part of a frame that
// spans buffers (§5.1.6.4).
func (t *transport) pushAll(q *queue, heads []uint16, lens []uint32) error {
	idx, err := t.u16(q.device + 2)
	if err != nil {
		return err
	}
	for i, head := range heads {
		b, err := t.mem.Slice(q.device+4+uint64((idx+uint16(i))%uint16(q.num))*8, 8)
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(b, uint32(head))
		binary.LittleEndian.PutUint32(b[4:], lens[i])
	}
	return t.putU16(q.device+2, idx+uint16(len(heads)))
}

// interruptLocked decides, after requests of q were served, whether to
// interrupt the driver: not when none was, when the driver asked for no
// interrupts (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7), or when one is pending.
func (t *transport) interruptLocked(q *queue, served, pending bool) (bool, error) {
	if !served {
		return false, nil
	}
	flags, err := t.u16(q.driver)
	if err != nil {
		return false, t.stop(err)
	}
	if flags&availNoInterrupt != 0 {
		return false, nil
	}
	t.intStatus |= 1
	return !pending, nil
}

// Read answers a guest read of size bytes at register offset off.
func (t *transport) Read(off uint64, size int) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readLocked(off, size)
}

// writeRequests takes a guest write of v at register offset off for a
// device whose queue 0 carries requests: on a notify, handle carries out
// each queued one (its chain's readable and writable buffers, at most max
// bytes each way) and returns the bytes it wrote; then, outside the lock,
// fail reports a device that stopped and raise interrupts the driver.
func (t *transport) writeRequests(off uint64, v uint32, max uint64, handle func(out, in [][]byte) (uint32, error), raise func(), fail func(error)) {
	t.mu.Lock()
	notify := t.writeLocked(off, v)
	var err error
	interrupt := false
	if notify == 0 && t.live() && t.q[0].ready {
		interrupt, err = t.serveLocked(&t.q[0], max, handle)
	}
	t.mu.Unlock()
	if err != nil {
		fail(err)
	}
	if interrupt {
		raise()
	}
}

// serveLocked carries out every request queued on q and reports whether to
// interrupt the driver.
func (t *transport) serveLocked(q *queue, max uint64, handle func(out, in [][]byte) (uint32, error)) (bool, error) {
	pending := t.intStatus&1 != 0
	served := false
	for {
		head, ok, err := t.pop(q)
		if err != nil {
			return false, t.stop(err)
		}
		if !ok {
			break
		}
		out, in, err := t.chainBoth(q, head, max)
		if err != nil {
			return false, t.stop(err)
		}
		n, err := handle(out, in)
		if err != nil {
			return false, t.stop(err)
		}
		if err := t.push(q, head, n); err != nil {
			return false, t.stop(err)
		}
		served = true
	}
	return t.interruptLocked(q, served, pending)
}
