//go:build !unigo_nodrivers

package kernel

// A polled virtqueue for the drivers that run in trap context (9P, block),
// over virtio-mmio version 2 (virtio 1.2 §4.2.3) or the PCI transport
// (§4.1: the common, notify and device structures that vendor capabilities
// place in memory BARs): queue 0 of vqLen entries in one page (descriptors
// at 0, the available ring at 128, the used ring at 256, §2.7), one request
// in flight, whose chain always starts at descriptor 0. The driver asks for
// no interrupts (no MSI-X vector either) and polls the used ring: the own
// monitor answers within the notifying write, QEMU from its own threads.

// virtio-mmio registers (§4.2.2) and the status bits (§2.1).
const (
	vmDeviceFeatures = 0x010
	vmDeviceFeatSel  = 0x014
	vmDriverFeatures = 0x020
	vmDriverFeatSel  = 0x024
	vmQueueSel       = 0x030
	vmQueueNumMax    = 0x034
	vmQueueNum       = 0x038
	vmQueueReady     = 0x044
	vmQueueNotify    = 0x050
	vmStatus         = 0x070
	vmQueueDescLo    = 0x080
	vmQueueDescHi    = 0x084
	vmQueueDriverLo  = 0x090
	vmQueueDriverHi  = 0x094
	vmQueueDeviceLo  = 0x0a0
	vmQueueDeviceHi  = 0x0a4
	vmConfig         = 0x100

	vsAcknowledge = 1
	vsDriver      = 2
	vsDriverOK    = 4
	vsFeaturesOK  = 8

	vqLen     = 8
	vqTimeout = 30e9 // ns: a device that has not answered by then is given up

	vqDescNext  = 1
	vqDescWrite = 2
)

// The PCI transport's common configuration (§4.1.4.3) and capabilities.
const (
	pcDeviceFeatureSel = 0x00
	pcDeviceFeature    = 0x04
	pcDriverFeatureSel = 0x08
	pcDriverFeature    = 0x0c
	pcConfigMSIX       = 0x10 // u16
	pcStatus           = 0x14 // u8
	pcQueueSelect      = 0x16 // u16
	pcQueueSize        = 0x18 // u16
	pcQueueMSIX        = 0x1a // u16
	pcQueueEnable      = 0x1c // u16
	pcQueueNotifyOff   = 0x1e // u16
	pcQueueDesc        = 0x20 // u64 as two u32 (§4.1.3.1); driver at 0x28, device at 0x30

	pciCapVendor = 0x09
	pciNoVector  = 0xffff // VIRTIO_MSI_NO_VECTOR
)

// virtq is one device's queue, on either transport.
type virtq struct {
	base     uintptr // virtio-mmio: the registers
	common   uintptr // PCI: the common configuration, the queue's notify address and the device configuration
	notify   uintptr
	devcfg   uintptr
	ring     uintptr
	lastUsed uint16
	dead     bool // given up: the device did not answer
}

//go:nosplit
func (q *virtq) setStatus(s uint32) {
	if q.common != 0 {
		store8(q.common+pcStatus, uint8(s))
		return
	}
	store32(q.base+vmStatus, s)
}

//go:nosplit
func (q *virtq) status() uint32 {
	if q.common != 0 {
		return uint32(ioLoad8(q.common + pcStatus))
	}
	return load32(q.base + vmStatus)
}

// features returns feature word sel (0: bits 0-31, 1: 32-63).
//
//go:nosplit
func (q *virtq) features(sel uint32) uint32 {
	if q.common != 0 {
		store32(q.common+pcDeviceFeatureSel, sel)
		return load32(q.common + pcDeviceFeature)
	}
	store32(q.base+vmDeviceFeatSel, sel)
	return load32(q.base + vmDeviceFeatures)
}

//go:nosplit
func (q *virtq) setFeatures(sel, v uint32) {
	if q.common != 0 {
		store32(q.common+pcDriverFeatureSel, sel)
		store32(q.common+pcDriverFeature, v)
		return
	}
	store32(q.base+vmDriverFeatSel, sel)
	store32(q.base+vmDriverFeatures, v)
}

// config32 reads the device configuration's 32 bits at off.
//
//go:nosplit
func (q *virtq) config32(off uintptr) uint32 {
	if q.common != 0 {
		return load32(q.devcfg + off)
	}
	return load32(q.base + vmConfig + off)
}

// vqOpenMMIO and vqOpenPCI find a device's transport; vqOpen then resets
// it, accepts the feature bits feat of the low word (and VERSION_1), and
// readies queue 0. They report false for a device that does not do
// virtio 1 or a queue that cannot be had.
//
//go:nosplit
func vqOpenMMIO(q *virtq, base uintptr, feat uint32) bool {
	*q = virtq{base: base}
	return vqOpen(q, feat)
}

//go:nosplit
func vqOpenPCI(q *virtq, d *pciDev, feat uint32) bool {
	*q = virtq{}
	cmd := pciRead32(d.bus, d.dev, d.fn, 0x04)
	if cmd&(1<<20) == 0 { // no capability list
		return false
	}
	pciWrite32(d.bus, d.dev, d.fn, 0x04, cmd&0xffff|1<<1|1<<2) // memory space, bus master
	var notifyBase uintptr
	var mult uint32
	for c, n := uint16(pciRead32(d.bus, d.dev, d.fn, 0x34)&0xfc), 0; c != 0 && n < 48; n++ {
		w := pciRead32(d.bus, d.dev, d.fn, c)
		if w&0xff == pciCapVendor {
			typ := uint8(w >> 24)
			w1 := pciRead32(d.bus, d.dev, d.fn, c+4)
			a := pciBAR(d, uint8(w1)) + uintptr(pciRead32(d.bus, d.dev, d.fn, c+8))
			switch {
			case a < 4096:
			case typ == 1 && q.common == 0:
				q.common = a
			case typ == 2 && notifyBase == 0:
				notifyBase, mult = a, pciRead32(d.bus, d.dev, d.fn, c+16)
			case typ == 4 && q.devcfg == 0:
				q.devcfg = a
			}
		}
		c = uint16(w>>8) & 0xfc
	}
	if q.common == 0 || notifyBase == 0 || q.devcfg == 0 {
		return false
	}
	ioStore16(q.common+pcQueueSelect, 0)
	q.notify = notifyBase + uintptr(ioLoad16(q.common+pcQueueNotifyOff))*uintptr(mult)
	return vqOpen(q, feat)
}

// pciBAR returns the address of memory BAR i below 4 GiB (the identity
// map), or 0.
//
//go:nosplit
func pciBAR(d *pciDev, i uint8) uintptr {
	if i > 5 {
		return 0
	}
	off := 0x10 + 4*uint16(i)
	lo := pciRead32(d.bus, d.dev, d.fn, off)
	if lo&1 != 0 {
		return 0 // an I/O BAR
	}
	if lo>>1&3 == 2 && pciRead32(d.bus, d.dev, d.fn, off+4) != 0 {
		return 0 // above 4 GiB
	}
	return uintptr(lo &^ 0xf)
}

//go:nosplit
func vqOpen(q *virtq, feat uint32) bool {
	q.setStatus(0)
	q.setStatus(vsAcknowledge | vsDriver)
	if q.features(1)&1 == 0 { // VIRTIO_F_VERSION_1 (bit 32)
		return false
	}
	feat &= q.features(0)
	q.setFeatures(0, feat)
	q.setFeatures(1, 1)
	q.setStatus(vsAcknowledge | vsDriver | vsFeaturesOK)
	if q.status()&vsFeaturesOK == 0 {
		return false
	}
	ring := allocFrame()
	if ring == 0 {
		return false
	}
	q.ring = ring
	store32(ring+128, 1) // avail flags: VIRTQ_AVAIL_F_NO_INTERRUPT (we poll), idx 0
	if q.common != 0 {
		c := q.common
		ioStore16(c+pcConfigMSIX, pciNoVector)
		ioStore16(c+pcQueueSelect, 0)
		if ioLoad16(c+pcQueueSize) < vqLen {
			return false
		}
		ioStore16(c+pcQueueSize, vqLen)
		ioStore16(c+pcQueueMSIX, pciNoVector)
		for i := uintptr(0); i < 3; i++ {
			store32(c+pcQueueDesc+8*i, uint32(ring+128*i)) // descriptors, available ring, used ring
			store32(c+pcQueueDesc+8*i+4, 0)
		}
		ioStore16(c+pcQueueEnable, 1)
	} else {
		base := q.base
		store32(base+vmQueueSel, 0)
		if load32(base+vmQueueNumMax) < vqLen {
			return false
		}
		store32(base+vmQueueNum, vqLen)
		for i := uintptr(0); i < 3; i++ {
			store32(base+vmQueueDescLo+0x10*i, uint32(ring+128*i))
			store32(base+vmQueueDescHi+0x10*i, 0)
		}
		store32(base+vmQueueReady, 1)
	}
	q.setStatus(vsAcknowledge | vsDriver | vsFeaturesOK | vsDriverOK)
	return true
}

// vqDesc sets descriptor i: n bytes at the physical address addr.
//
//go:nosplit
func vqDesc(q *virtq, i uintptr, addr uintptr, n uint32, flags uint16, next uint16) {
	d := q.ring + i*16
	store64(d, uint64(addr))
	store32(d+8, n)
	store32(d+12, uint32(flags)|uint32(next)<<16)
}

// vqRun publishes the chain at descriptor 0, notifies the device and waits
// for it to be used: the bytes the device wrote, or false for a device
// that did not answer within vqTimeout (given up from then on).
//
//go:nosplit
func vqRun(q *virtq) (uint32, bool) {
	if q.dead || q.ring == 0 {
		return 0, false
	}
	avail := q.ring + 128
	idx := uint16(load32(avail) >> 16)
	e := avail + 4 + uintptr(idx%vqLen)*2 // the entry: head descriptor 0
	store8(e, 0)
	store8(e+1, 0)
	store32(avail, 1|uint32(idx+1)<<16) // flags and the index in one store: never seen torn
	if q.common != 0 {
		ioStore16(q.notify, 0)
	} else {
		store32(q.base+vmQueueNotify, 0)
	}
	used := q.ring + 256
	deadline := nanotime() + vqTimeout
	for uint16(load32(used)>>16) == q.lastUsed {
		if nanotime() > deadline {
			// The device is gone or stuck: the call fails rather than
			// hangs (trap context cannot print from this deep).
			q.dead = true
			return 0, false
		}
		spinPause()
	}
	slot := used + 4 + uintptr(q.lastUsed%vqLen)*8
	q.lastUsed++
	return load32(slot + 4), true
}
