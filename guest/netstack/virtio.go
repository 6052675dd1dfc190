package netstack

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"

	"unigo.dev/unigo/guest/kernel"
)

// A virtio-net driver over the virtio-mmio transport, version 2 (Virtual
// I/O Device (VIRTIO) Version 1.2: §4.2.2 registers, §3.1.1 initialization,
// §2.7 split virtqueues, §5.1 network device). It runs as ordinary Go code:
// the rings and buffers are DMA memory from the kernel, addressed at their
// physical addresses, and the device's interrupt arrives as a NetOpIRQ.

func physPtr(pa uintptr) unsafe.Pointer

// virtio-mmio registers (§4.2.2).
const (
	mmioDeviceFeatures    = 0x010
	mmioDeviceFeaturesSel = 0x014
	mmioDriverFeatures    = 0x020
	mmioDriverFeaturesSel = 0x024
	mmioQueueSel          = 0x030
	mmioQueueNumMax       = 0x034
	mmioQueueNum          = 0x038
	mmioQueueReady        = 0x044
	mmioQueueNotify       = 0x050
	mmioStatus            = 0x070
	mmioQueueDescLow      = 0x080
	mmioQueueDescHigh     = 0x084
	mmioQueueDriverLow    = 0x090
	mmioQueueDriverHigh   = 0x094
	mmioQueueDeviceLow    = 0x0a0
	mmioQueueDeviceHigh   = 0x0a4
	mmioConfig            = 0x100

	statusAck        = 1
	statusDriver     = 2
	statusDriverOK   = 4
	statusFeaturesOK = 8

	featMAC      = 1 << 5  // VIRTIO_NET_F_MAC
	featVersion1 = 1 << 32 // VIRTIO_F_VERSION_1

	virtioNetDeviceID = 1
	netHdrLen         = 12 // struct virtio_net_hdr with num_buffers (§5.1.6)
	queueSize         = 256
	bufSize           = 2048
	descFlagWrite     = 2 // VIRTQ_DESC_F_WRITE
)

// virtq is one split virtqueue with a buffer per descriptor.
type virtq struct {
	index    uint32
	desc     []uint64 // 2 words per descriptor: addr; len | flags<<32 | next<<48
	avail    []uint16 // flags, idx, ring[queueSize]
	used     []uint32 // flags|idx<<16, then {id, len} pairs
	bufs     uintptr  // physical address of queueSize buffers of bufSize
	lastUsed uint16
	free     []uint16 // descriptors not in the device's hands (tx)
	flags    uint16   // the avail ring's flags (VIRTQ_AVAIL_F_NO_INTERRUPT)
}

// publish makes avail ring entries up to idx visible, with the flags.
func (q *virtq) publish(idx uint16) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&q.avail[0])), uint32(idx)<<16|uint32(q.flags))
}

func (q *virtq) availIdx() uint16 {
	return uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&q.avail[0]))) >> 16)
}

type virtioNet struct {
	base uintptr
	rx   virtq
	tx   virtq
	mu   sync.Mutex    // tx
	irq  chan struct{} // an interrupt: frames received
	txq  chan struct{} // an interrupt: frames sent, descriptors free
	mac  tcpip.LinkAddress
}

func (d *virtioNet) reg(off uintptr) *uint32 { return (*uint32)(physPtr(d.base + off)) }
func (d *virtioNet) read(off uintptr) uint32 { return atomic.LoadUint32(d.reg(off)) }
func (d *virtioNet) write(off uintptr, v uint32) {
	atomic.StoreUint32(d.reg(off), v)
}

func dma(n uintptr) (uintptr, error) {
	a, _, e := syscall.RawSyscall(kernel.SysNetDMA, n, 0, 0)
	if e != 0 {
		return 0, fmt.Errorf("DMA memory: %v", e)
	}
	return a, nil
}

// findVirtioNet returns the first virtio-mmio network device, or nil.
func findVirtioNet() (base, irq uintptr) {
	for i := uintptr(0); ; i++ {
		var v [4]uint64
		if _, _, e := syscall.RawSyscall(kernel.SysNetDevice, i, uintptr(unsafe.Pointer(&v)), 0); e != 0 {
			return 0, 0
		}
		if v[3] == virtioNetDeviceID {
			return uintptr(v[0]), uintptr(v[2])
		}
	}
}

// newVirtioNet initializes the device (§3.1.1) with a receive and a
// transmit queue.
func newVirtioNet(base, irq uintptr) (*virtioNet, error) {
	d := &virtioNet{base: base, irq: make(chan struct{}, 1), txq: make(chan struct{}, 1)}
	if v := d.read(0x004); v != 2 {
		return nil, fmt.Errorf("virtio-mmio version %d at %#x: want 2 (QEMU: -global virtio-mmio.force-legacy=false)", v, base)
	}
	d.write(mmioStatus, 0)
	d.write(mmioStatus, statusAck)
	d.write(mmioStatus, statusAck|statusDriver)
	d.write(mmioDeviceFeaturesSel, 0)
	lo := uint64(d.read(mmioDeviceFeatures))
	d.write(mmioDeviceFeaturesSel, 1)
	feats := lo | uint64(d.read(mmioDeviceFeatures))<<32
	if feats&featVersion1 == 0 {
		return nil, fmt.Errorf("virtio-net at %#x does not offer VIRTIO_F_VERSION_1", base)
	}
	want := feats & (featVersion1 | featMAC)
	d.write(mmioDriverFeaturesSel, 0)
	d.write(mmioDriverFeatures, uint32(want))
	d.write(mmioDriverFeaturesSel, 1)
	d.write(mmioDriverFeatures, uint32(want>>32))
	d.write(mmioStatus, statusAck|statusDriver|statusFeaturesOK)
	if d.read(mmioStatus)&statusFeaturesOK == 0 {
		return nil, fmt.Errorf("virtio-net at %#x refused the features %#x", base, want)
	}
	mac := make([]byte, 6)
	if want&featMAC != 0 {
		for i := range mac {
			mac[i] = *(*byte)(physPtr(base + mmioConfig + uintptr(i)))
		}
	} else {
		copy(mac, []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
	}
	d.mac = tcpip.LinkAddress(mac)
	for i, q := range []*virtq{&d.rx, &d.tx} {
		if err := d.setupQueue(q, uint32(i)); err != nil {
			return nil, err
		}
	}
	// Every receive buffer goes to the device.
	for i := uint16(0); i < queueSize; i++ {
		d.rx.desc[2*i] = uint64(d.rx.bufs) + uint64(i)*bufSize
		d.rx.desc[2*i+1] = bufSize | descFlagWrite<<32
		d.rx.avail[2+i] = i
	}
	d.rx.publish(queueSize)
	for i := uint16(0); i < queueSize; i++ {
		d.tx.free = append(d.tx.free, i)
	}
	// Sent frames need no interrupt: their descriptors come back at the
	// next transmit. The flag is cleared only to wait for free ones.
	d.tx.flags = 1
	d.tx.publish(0)
	if _, _, e := syscall.RawSyscall(kernel.SysNetIRQ, base, irq, 0); e != 0 {
		return nil, fmt.Errorf("route the interrupt of virtio-net at %#x (irq %d): %v", base, irq, e)
	}
	d.write(mmioStatus, statusAck|statusDriver|statusFeaturesOK|statusDriverOK)
	d.write(mmioQueueNotify, 0)
	return d, nil
}

func (d *virtioNet) setupQueue(q *virtq, index uint32) error {
	d.write(mmioQueueSel, index)
	if max := d.read(mmioQueueNumMax); max < queueSize {
		return fmt.Errorf("virtio-net queue %d holds %d descriptors, want %d", index, max, queueSize)
	}
	mem, err := dma(3 * 4096)
	if err != nil {
		return err
	}
	bufs, err := dma(queueSize * bufSize)
	if err != nil {
		return err
	}
	q.index, q.bufs = index, bufs
	q.desc = unsafe.Slice((*uint64)(physPtr(mem)), 2*queueSize)
	q.avail = unsafe.Slice((*uint16)(physPtr(mem+4096)), 3+queueSize)
	q.used = unsafe.Slice((*uint32)(physPtr(mem+8192)), 1+2*queueSize)
	d.write(mmioQueueNum, queueSize)
	for _, r := range []struct {
		lo, hi uintptr
		a      uintptr
	}{{mmioQueueDescLow, mmioQueueDescHigh, mem}, {mmioQueueDriverLow, mmioQueueDriverHigh, mem + 4096}, {mmioQueueDeviceLow, mmioQueueDeviceHigh, mem + 8192}} {
		d.write(r.lo, uint32(r.a))
		d.write(r.hi, uint32(uint64(r.a)>>32))
	}
	d.write(mmioQueueReady, 1)
	return nil
}

func (q *virtq) usedIdx() uint16 { return uint16(atomic.LoadUint32(&q.used[0]) >> 16) }

func (q *virtq) buf(id uint16) []byte {
	return unsafe.Slice((*byte)(physPtr(q.bufs+uintptr(id)*bufSize)), bufSize)
}

// receive hands each frame the device filled to deliver, then gives the
// buffers back.
func (d *virtioNet) receive(deliver func([]byte)) {
	q := &d.rx
	n := 0
	// No interrupts while the ring is being emptied; after re-enabling
	// them, look once more for what came in between.
	q.flags = 1
	q.publish(q.availIdx())
	for {
		for q.lastUsed != q.usedIdx() {
			e := q.lastUsed % queueSize
			id, ln := uint16(q.used[1+2*e]), q.used[2+2*e]
			if ln > netHdrLen && ln <= bufSize {
				deliver(q.buf(id)[netHdrLen:ln])
			}
			idx := q.availIdx()
			q.avail[2+idx%queueSize] = id
			q.publish(idx + 1)
			q.lastUsed++
			n++
		}
		if q.flags == 0 {
			break
		}
		q.flags = 0
		q.publish(q.availIdx())
	}
	// VIRTQ_USED_F_NO_NOTIFY (§2.7.10): the device may not need to hear of
	// new buffers.
	if n > 0 && atomic.LoadUint32(&q.used[0])&1 == 0 {
		d.write(mmioQueueNotify, 0)
	}
}

// transmit sends one frame; it reports false when every descriptor is busy.
func (d *virtioNet) transmit(frame [][]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := &d.tx
	for q.lastUsed != q.usedIdx() { // reclaim what the device sent
		e := q.lastUsed % queueSize
		q.free = append(q.free, uint16(q.used[1+2*e]))
		q.lastUsed++
	}
	if len(q.free) == 0 {
		q.flags = 0 // interrupt when the device hands descriptors back
		q.publish(q.availIdx())
		return false
	}
	if q.flags == 0 {
		q.flags = 1
		q.publish(q.availIdx())
	}
	id := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	b := q.buf(id)
	clear(b[:netHdrLen])
	n := netHdrLen
	for _, s := range frame {
		n += copy(b[n:], s)
	}
	q.desc[2*id] = uint64(q.bufs) + uint64(id)*bufSize
	q.desc[2*id+1] = uint64(n)
	idx := q.availIdx()
	q.avail[2+idx%queueSize] = id
	q.publish(idx + 1)
	d.write(mmioQueueNotify, 1)
	return true
}
