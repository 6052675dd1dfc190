package netstack

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"unigo.dev/unigo/guest/kernel"
)

// A virtio-net driver (Virtual I/O Device (VIRTIO) Version 1.2: §3.1.1
// initialization, §2.7 split virtqueues, §5.1 network device) over either
// transport: virtio-mmio version 2 (virtio_mmio.go) or PCI with MSI-X
// (virtio_pci.go). It runs as ordinary Go code: the rings and buffers are
// DMA memory from the kernel, addressed at their physical addresses, and
// the device's interrupt arrives as a NetOpIRQ.

func physPtr(pa uintptr) unsafe.Pointer

const (
	statusAck        = 1
	statusDriver     = 2
	statusDriverOK   = 4
	statusFeaturesOK = 8

	featGuestCSUM = 1 << 1  // VIRTIO_NET_F_GUEST_CSUM: received frames may come with their checksum vouched for
	featMAC       = 1 << 5  // VIRTIO_NET_F_MAC
	featMrgRxbuf  = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF: a received frame may span buffers
	hdrNeedsCsum  = 1       // virtio_net_hdr flags (§5.1.6)
	hdrDataValid  = 2
	featVersion1  = 1 << 32 // VIRTIO_F_VERSION_1

	virtioNetDeviceID = 1
	netHdrLen         = 12 // struct virtio_net_hdr with num_buffers (§5.1.6)
	queueSize         = 256
	bufSize           = 2048
	descFlagWrite     = 2 // VIRTQ_DESC_F_WRITE
)

// virtq is one split virtqueue with a buffer per descriptor.
type virtq struct {
	index    uint32
	num      uint16   // descriptors
	size     uintptr  // bytes per buffer
	desc     []uint64 // 2 words per descriptor: addr; len | flags<<32 | next<<48
	avail    []uint16 // flags, idx, ring[num]
	used     []uint32 // flags|idx<<16, then {id, len} pairs
	bufs     uintptr  // physical address of num buffers of size bytes
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

// transport is how the driver reaches a device's registers (§4.1, §4.2).
type transport interface {
	status() uint32
	setStatus(s uint32)
	features() uint64
	setFeatures(f uint64)
	// queue sets up queue i with size descriptors at the given tables.
	queue(i, size uint32, desc, driver, device uintptr) error
	notify(i uint32)
	config(off uintptr) byte // the device-specific configuration (§5.1.4)
	// config32 reads a 32-bit field of it, or half of a 64-bit one: the
	// access width §4.1.3.1 and §4.2.2.2 ask for, one exit for four bytes.
	config32(off uintptr) uint32
	routeIRQ() error // once the queues are set up
	String() string
}

type virtioNet struct {
	t   transport
	rx  virtq
	tx  virtq
	mu  sync.Mutex    // tx
	irq chan struct{} // an interrupt: frames received
	txq chan struct{} // an interrupt: frames sent, descriptors free
	mac tcpip.LinkAddress
}

func dma(n uintptr) (uintptr, error) {
	a, _, e := syscall.RawSyscall(kernel.SysNetDMA, n, 0, 0)
	if e != 0 {
		return 0, fmt.Errorf("DMA memory: %v", e)
	}
	return a, nil
}

// findVirtio returns the transport of the first virtio device of type id
// (§5: 1 network, 19 socket), or nil.
func findVirtio(id uint64) (transport, error) {
	for i := uintptr(0); ; i++ {
		var v [4]uint64
		if _, _, e := syscall.RawSyscall(kernel.SysNetDevice, i, uintptr(unsafe.Pointer(&v)), 0); e != 0 {
			return nil, nil
		}
		if v[3] != id {
			continue
		}
		if v[1] == kernel.NetTransportPCI {
			return newPCITransport(uintptr(v[0]))
		}
		return newMMIOTransport(uintptr(v[0]), uintptr(v[2]))
	}
}

// newVirtioNet initializes the device (§3.1.1) with a receive and a
// transmit queue.
func newVirtioNet(t transport) (*virtioNet, error) {
	d := &virtioNet{t: t, irq: make(chan struct{}, 1), txq: make(chan struct{}, 1)}
	t.setStatus(0)
	t.setStatus(statusAck)
	t.setStatus(statusAck | statusDriver)
	feats := t.features()
	if feats&featVersion1 == 0 {
		return nil, fmt.Errorf("%v does not offer VIRTIO_F_VERSION_1", t)
	}
	// Checksum offload for received frames, and merged receive buffers,
	// where offered. With VIRTIO_NET_F_GUEST_CSUM the device may pass on a
	// frame whose checksum a host left partial (NEEDS_CSUM: a tap's host
	// stack offloading it), which the driver completes. Netstack still
	// checks every checksum: its NIC takes checksum validation from the
	// link's capabilities, not per frame, so DATA_VALID saves nothing
	// here. Sent frames keep netstack's checksums: with TX offload it
	// leaves them empty, also in IPv6 fragments, which no device can
	// complete.
	want := feats & (featVersion1 | featMAC | featGuestCSUM | featMrgRxbuf)
	t.setFeatures(want)
	t.setStatus(statusAck | statusDriver | statusFeaturesOK)
	if t.status()&statusFeaturesOK == 0 {
		return nil, fmt.Errorf("%v refused the features %#x", t, want)
	}
	mac := make([]byte, 6)
	if want&featMAC != 0 {
		for i := range mac {
			mac[i] = t.config(uintptr(i))
		}
	} else {
		copy(mac, []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
	}
	d.mac = tcpip.LinkAddress(mac)
	for i, q := range []*virtq{&d.rx, &d.tx} {
		if err := q.setup(t, uint32(i), queueSize, bufSize); err != nil {
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
	if err := t.routeIRQ(); err != nil {
		return nil, err
	}
	t.setStatus(statusAck | statusDriver | statusFeaturesOK | statusDriverOK)
	t.notify(0)
	return d, nil
}

// setup gives queue index of t num descriptors (at most 256: the tables
// take a page each), each with a buffer of size bytes.
func (q *virtq) setup(t transport, index uint32, num uint16, size uintptr) error {
	mem, err := dma(3 * 4096)
	if err != nil {
		return err
	}
	bufs, err := dma(uintptr(num) * size)
	if err != nil {
		return err
	}
	q.index, q.num, q.size, q.bufs = index, num, size, bufs
	q.desc = unsafe.Slice((*uint64)(physPtr(mem)), 2*int(num))
	q.avail = unsafe.Slice((*uint16)(physPtr(mem+4096)), 3+int(num))
	q.used = unsafe.Slice((*uint32)(physPtr(mem+8192)), 1+2*int(num))
	return t.queue(index, uint32(num), mem, mem+4096, mem+8192)
}

func (q *virtq) usedIdx() uint16 { return uint16(atomic.LoadUint32(&q.used[0]) >> 16) }

func (q *virtq) buf(id uint16) []byte {
	return unsafe.Slice((*byte)(physPtr(q.bufs+uintptr(id)*q.size)), q.size)
}

// receive hands each frame the device filled to deliver, then gives the
// buffers back. A frame in several buffers (num_buffers,
// VIRTIO_NET_F_MRG_RXBUF) is joined first; a partial checksum
// (NEEDS_CSUM) is completed.
func (d *virtioNet) receive(deliver func(frame []byte)) {
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
				b := q.buf(id)
				hdr := [netHdrLen]byte(b)
				if nb := int(b[10]) | int(b[11])<<8; nb > 1 {
					frame := append([]byte(nil), b[netHdrLen:ln]...)
					for ; nb > 1 && q.lastUsed+1 != q.usedIdx(); nb-- {
						d.recycle(id)
						q.lastUsed++
						e = q.lastUsed % queueSize
						id, ln = uint16(q.used[1+2*e]), min(q.used[2+2*e], bufSize)
						frame = append(frame, q.buf(id)[:ln]...)
					}
					deliver(completeChecksum(&hdr, frame))
				} else {
					deliver(completeChecksum(&hdr, b[netHdrLen:ln]))
				}
			}
			d.recycle(id)
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
		d.t.notify(0)
	}
}

// completeChecksum fills in the checksum a NEEDS_CSUM frame left partial
// (§5.1.6.2: the one's complement sum from csum_start to the end, stored at
// csum_start+csum_offset, over the pseudo-header sum already there), and
// returns the frame.
func completeChecksum(hdr *[netHdrLen]byte, frame []byte) []byte {
	if hdr[0]&hdrNeedsCsum == 0 {
		return frame
	}
	start := int(hdr[6]) | int(hdr[7])<<8
	at := start + (int(hdr[8]) | int(hdr[9])<<8)
	if at+2 > len(frame) {
		return frame // malformed: netstack's own check drops it
	}
	c := ^checksum.Checksum(frame[start:], 0)
	frame[at], frame[at+1] = byte(c>>8), byte(c)
	return frame
}

// recycle gives receive buffer id back to the device.
func (d *virtioNet) recycle(id uint16) { d.rx.give(id) }

// give makes descriptor id available to the device.
func (q *virtq) give(id uint16) {
	idx := q.availIdx()
	q.avail[2+idx%q.num] = id
	q.publish(idx + 1)
}

// transmit sends one frame at once; it reports false when every descriptor
// is busy.
func (d *virtioNet) transmit(frame [][]byte) bool {
	if !d.put(frame) {
		return false
	}
	d.kick()
	return true
}

// send puts frame in the transmit ring, waiting for a descriptor when every
// one is busy. Then the device first hears of the frames already put; the
// first failure cleared the ring's no-interrupt flag, and a second look
// catches what the device returned before it saw that; then the driver
// waits for its interrupt.
func (d *virtioNet) send(frame [][]byte) {
	for !d.put(frame) {
		d.kick()
		if d.put(frame) {
			return
		}
		<-d.txq
	}
}

// kick tells the device of the frames put since the last kick (§2.7.13.3:
// one notification may cover many buffers). Each is a VM exit, so the
// transmit goroutine puts every frame that is waiting before it kicks.
func (d *virtioNet) kick() { d.t.notify(1) }

// put places one frame in the transmit ring without telling the device; it
// reports false when every descriptor is busy.
func (d *virtioNet) put(frame [][]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := &d.tx
	id, ok := q.takeFree()
	if !ok {
		return false
	}
	b := q.buf(id)
	clear(b[:netHdrLen])
	n := netHdrLen
	for _, s := range frame {
		n += copy(b[n:], s)
	}
	q.post(id, n)
	return true
}

// takeFree reclaims the descriptors the device used and takes a free one
// (a transmit ring); with none free it asks the device to interrupt when
// it hands some back.
func (q *virtq) takeFree() (uint16, bool) {
	for q.lastUsed != q.usedIdx() {
		e := q.lastUsed % q.num
		q.free = append(q.free, uint16(q.used[1+2*e]))
		q.lastUsed++
	}
	if len(q.free) == 0 {
		q.flags = 0 // interrupt when the device hands descriptors back
		q.publish(q.availIdx())
		return 0, false
	}
	if q.flags == 0 {
		q.flags = 1
		q.publish(q.availIdx())
	}
	id := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	return id, true
}

// post hands descriptor id, its buffer holding n bytes, to the device.
func (q *virtq) post(id uint16, n int) {
	q.desc[2*id] = uint64(q.bufs) + uint64(id)*uint64(q.size)
	q.desc[2*id+1] = uint64(n)
	q.give(id)
}
