package kernel

// A polled virtqueue over virtio-mmio version 2 (virtio 1.2 §4.2.3, §2.7),
// for the drivers that run in trap context (9P, block): queue 0 of vqLen
// entries in one page (descriptors at 0, the available ring at 128, the
// used ring at 256), one request in flight, whose chain always starts at
// descriptor 0. The driver asks for no interrupts and polls the used ring:
// the own monitor answers within the notifying write, QEMU from its own
// threads.

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

// virtq is one device's queue.
type virtq struct {
	base     uintptr // the transport's registers; 0 once given up
	ring     uintptr
	lastUsed uint16
}

// vqOpen resets the device at base, accepts the feature bits feat of the
// low word (and VERSION_1), and readies queue 0; false if the device does
// not do virtio 1 or the queue cannot be had.
//
//go:nosplit
func vqOpen(q *virtq, base uintptr, feat uint32) bool {
	store32(base+vmStatus, 0)
	store32(base+vmStatus, vsAcknowledge|vsDriver)
	store32(base+vmDeviceFeatSel, 1)
	if load32(base+vmDeviceFeatures)&1 == 0 { // VIRTIO_F_VERSION_1 (bit 32)
		return false
	}
	store32(base+vmDeviceFeatSel, 0)
	feat &= load32(base + vmDeviceFeatures)
	store32(base+vmDriverFeatSel, 0)
	store32(base+vmDriverFeatures, feat)
	store32(base+vmDriverFeatSel, 1)
	store32(base+vmDriverFeatures, 1)
	store32(base+vmStatus, vsAcknowledge|vsDriver|vsFeaturesOK)
	if load32(base+vmStatus)&vsFeaturesOK == 0 {
		return false
	}
	store32(base+vmQueueSel, 0)
	if load32(base+vmQueueNumMax) < vqLen {
		return false
	}
	ring := allocFrame()
	if ring == 0 {
		return false
	}
	*q = virtq{base: base, ring: ring}
	store32(base+vmQueueNum, vqLen)
	for _, r := range [3]struct{ lo, hi, off uintptr }{{vmQueueDescLo, vmQueueDescHi, 0}, {vmQueueDriverLo, vmQueueDriverHi, 128}, {vmQueueDeviceLo, vmQueueDeviceHi, 256}} {
		store32(base+r.lo, uint32(ring+r.off))
		store32(base+r.hi, uint32(uint64(ring+r.off)>>32))
	}
	store32(ring+128, 1) // avail flags: VIRTQ_AVAIL_F_NO_INTERRUPT (we poll), idx 0
	store32(base+vmQueueReady, 1)
	store32(base+vmStatus, vsAcknowledge|vsDriver|vsFeaturesOK|vsDriverOK)
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
	if q.base == 0 {
		return 0, false
	}
	avail := q.ring + 128
	idx := uint16(load32(avail) >> 16)
	e := avail + 4 + uintptr(idx%vqLen)*2 // the entry: head descriptor 0
	store8(e, 0)
	store8(e+1, 0)
	store32(avail, 1|uint32(idx+1)<<16) // flags and the index in one store: never seen torn
	store32(q.base+vmQueueNotify, 0)
	used := q.ring + 256
	deadline := nanotime() + vqTimeout
	for uint16(load32(used)>>16) == q.lastUsed {
		if nanotime() > deadline {
			// The device is gone or stuck: the call fails rather than
			// hangs (trap context cannot print from this deep).
			q.base = 0
			return 0, false
		}
		spinPause()
	}
	slot := used + 4 + uintptr(q.lastUsed%vqLen)*8
	q.lastUsed++
	return load32(slot + 4), true
}
