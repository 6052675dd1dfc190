package netstack

import (
	"fmt"
	"sync/atomic"
	"syscall"

	"unigo.dev/unigo/guest/kernel"
)

// The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): the own
// monitor's device, and QEMU microvm's.

// virtio-mmio registers (§4.2.2).
const (
	mmioVersion           = 0x004
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
)

type mmioTransport struct{ base, irq uintptr }

func newMMIOTransport(base, irq uintptr) (*mmioTransport, error) {
	t := &mmioTransport{base, irq}
	if v := t.read(mmioVersion); v != 2 {
		return nil, fmt.Errorf("virtio-mmio version %d at %#x: want 2 (QEMU: -global virtio-mmio.force-legacy=false)", v, base)
	}
	return t, nil
}

func (t *mmioTransport) String() string { return fmt.Sprintf("virtio-mmio device at %#x", t.base) }

func (t *mmioTransport) read(off uintptr) uint32 {
	return atomic.LoadUint32((*uint32)(physPtr(t.base + off)))
}

func (t *mmioTransport) write(off uintptr, v uint32) { mmioWrite32(t.base+off, v) }

func (t *mmioTransport) status() uint32     { return t.read(mmioStatus) }
func (t *mmioTransport) setStatus(s uint32) { t.write(mmioStatus, s) }
func (t *mmioTransport) notify(i uint32)    { t.write(mmioQueueNotify, i) }

func (t *mmioTransport) config(off uintptr) byte { return *(*byte)(physPtr(t.base + mmioConfig + off)) }

func (t *mmioTransport) config32(off uintptr) uint32 { return t.read(mmioConfig + off) }

func (t *mmioTransport) features() uint64 {
	t.write(mmioDeviceFeaturesSel, 0)
	lo := uint64(t.read(mmioDeviceFeatures))
	t.write(mmioDeviceFeaturesSel, 1)
	return lo | uint64(t.read(mmioDeviceFeatures))<<32
}

func (t *mmioTransport) setFeatures(f uint64) {
	t.write(mmioDriverFeaturesSel, 0)
	t.write(mmioDriverFeatures, uint32(f))
	t.write(mmioDriverFeaturesSel, 1)
	t.write(mmioDriverFeatures, uint32(f>>32))
}

func (t *mmioTransport) queue(i, size uint32, desc, driver, device uintptr) error {
	t.write(mmioQueueSel, i)
	if max := t.read(mmioQueueNumMax); max < size {
		return fmt.Errorf("%v: queue %d holds %d descriptors, want %d", t, i, max, size)
	}
	t.write(mmioQueueNum, size)
	for _, r := range []struct{ lo, hi, a uintptr }{
		{mmioQueueDescLow, mmioQueueDescHigh, desc},
		{mmioQueueDriverLow, mmioQueueDriverHigh, driver},
		{mmioQueueDeviceLow, mmioQueueDeviceHigh, device},
	} {
		t.write(r.lo, uint32(r.a))
		t.write(r.hi, uint32(uint64(r.a)>>32))
	}
	t.write(mmioQueueReady, 1)
	return nil
}

// routeIRQ has the kernel route the device's interrupt line (the I/O APIC
// under PVH; the own monitor injects it).
func (t *mmioTransport) routeIRQ() error {
	if _, _, e := syscall.RawSyscall(kernel.SysNetIRQ, t.base, t.irq, 0); e != 0 {
		return fmt.Errorf("route the interrupt of %v (irq %d): %v", t, t.irq, e)
	}
	return nil
}
