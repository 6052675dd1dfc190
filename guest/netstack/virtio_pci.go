package netstack

import (
	"fmt"
	"sync/atomic"
	"syscall"

	"unigo.dev/unigo/guest/kernel"
)

// The virtio PCI transport (virtio 1.2 §4.1): the registers are in memory
// BARs that vendor-specific capabilities point to (§4.1.4), and the
// device's interrupt is an MSI-X message (PCI Local Bus 3.0 §6.8.2) the
// kernel gives, one vector for both queues. QEMU's virtio-net-pci on q35
// and pc, and the clouds' virtio NICs.

// Capability types (§4.1.4) and registers of the common configuration
// (§4.1.4.3).
const (
	pciCapVendor  = 0x09
	pciCapMSIX    = 0x11
	pciCfgCommon  = 1
	pciCfgNotify  = 2
	pciCfgDevice  = 4
	pciCommand    = 0x04 // u16: bit 1 memory space, bit 2 bus master
	pciCapPointer = 0x34
	pciStatusCaps = 1 << 20 // the status register's capabilities-list bit, in the dword at 0x04

	commonDeviceFeatureSel = 0x00
	commonDeviceFeature    = 0x04
	commonDriverFeatureSel = 0x08
	commonDriverFeature    = 0x0c
	commonConfigMSIX       = 0x10 // u16
	commonStatus           = 0x14 // u8
	commonQueueSelect      = 0x16 // u16
	commonQueueSize        = 0x18 // u16
	commonQueueMSIX        = 0x1a // u16
	commonQueueEnable      = 0x1c // u16
	commonQueueNotifyOff   = 0x1e // u16
	commonQueueDesc        = 0x20 // u64, as two u32 (§4.1.3.1)
	commonQueueDriver      = 0x28
	commonQueueDevice      = 0x30

	noVector = 0xffff // VIRTIO_MSI_NO_VECTOR
)

type pciTransport struct {
	bdf     uintptr
	common  uintptr // physical addresses of the structures
	notifyB uintptr
	notifyM uint32 // notify_off_multiplier
	device  uintptr
	notifyQ [2]uintptr // each queue's notify address
}

func (t *pciTransport) String() string {
	return fmt.Sprintf("virtio device at PCI %02x:%02x.%d", t.bdf>>8, t.bdf>>3&31, t.bdf&7)
}

func (t *pciTransport) cfg32(off uintptr) uint32 {
	v, _, _ := syscall.RawSyscall(kernel.SysNetPCIRead, t.bdf, off&^3, 0)
	return uint32(v >> (8 * (off & 3)))
}

func (t *pciTransport) setCfg32(off uintptr, v uint32) {
	syscall.RawSyscall(kernel.SysNetPCIWrite, t.bdf, off, uintptr(v))
}

// bar returns the physical address of memory BAR i.
func (t *pciTransport) bar(i uint8) (uintptr, error) {
	if i > 5 {
		return 0, fmt.Errorf("%v: capability names BAR %d", t, i)
	}
	lo := t.cfg32(0x10 + 4*uintptr(i))
	if lo&1 != 0 {
		return 0, fmt.Errorf("%v: BAR %d is an I/O BAR, want memory", t, i)
	}
	a := uint64(lo &^ 0xf)
	if lo>>1&3 == 2 { // 64-bit
		a |= uint64(t.cfg32(0x10+4*uintptr(i)+4)) << 32
	}
	switch {
	case a == 0:
		return 0, fmt.Errorf("%v: BAR %d has no address (the firmware did not place it)", t, i)
	case a >= 4<<30:
		return 0, fmt.Errorf("%v: BAR %d at %#x is above 4 GiB, beyond the kernel's identity map", t, i, a)
	}
	return uintptr(a), nil
}

func newPCITransport(bdf uintptr) (*pciTransport, error) {
	t := &pciTransport{bdf: bdf}
	if t.cfg32(pciCommand)&pciStatusCaps == 0 {
		return nil, fmt.Errorf("%v has no capability list", t)
	}
	t.setCfg32(pciCommand, t.cfg32(pciCommand)&0xffff|1<<1|1<<2) // memory space, bus master
	var msix uintptr
	for c, n := uintptr(t.cfg32(pciCapPointer)&0xfc), 0; c != 0 && n < 48; c, n = uintptr(t.cfg32(c+1)&0xfc), n+1 {
		switch id := t.cfg32(c) & 0xff; {
		case id == pciCapMSIX:
			msix = c
		case id == pciCapVendor:
			typ, bar, off := uint8(t.cfg32(c+3)), uint8(t.cfg32(c+4)), uintptr(t.cfg32(c+8))
			var dst *uintptr
			switch typ {
			case pciCfgCommon:
				dst = &t.common
			case pciCfgNotify:
				dst = &t.notifyB
			case pciCfgDevice:
				dst = &t.device
			}
			if dst == nil || *dst != 0 {
				continue // another type, or not the first of its type (§4.1.4.1)
			}
			base, err := t.bar(bar)
			if err != nil {
				return nil, err
			}
			*dst = base + off
			if typ == pciCfgNotify {
				t.notifyM = t.cfg32(c + 16)
			}
		}
	}
	if t.common == 0 || t.notifyB == 0 || t.device == 0 {
		return nil, fmt.Errorf("%v lacks the modern interface (common, notify, device capabilities)", t)
	}
	if msix == 0 {
		return nil, fmt.Errorf("%v has no MSI-X capability", t)
	}
	return t, t.enableMSIX(msix)
}

// enableMSIX points table entry 0 at this CPU with the kernel's device
// vector and enables MSI-X (PCI 3.0 §6.8.2.3-9).
func (t *pciTransport) enableMSIX(capOff uintptr) error {
	tbl := t.cfg32(capOff + 4)
	base, err := t.bar(uint8(tbl & 7))
	if err != nil {
		return err
	}
	msg, _, e := syscall.RawSyscall(kernel.SysNetMSI, t.bdf, 0, 0)
	if e != 0 {
		return fmt.Errorf("%v: MSI-X: %v", t, e)
	}
	entry := base + uintptr(tbl&^7)
	mmioWrite32(entry, uint32(msg))       // message address
	mmioWrite32(entry+4, 0)               // upper address
	mmioWrite32(entry+8, uint32(msg>>32)) // message data: the vector
	mmioWrite32(entry+12, 0)              // vector control: unmasked
	ctrl := t.cfg32(capOff) >> 16
	ctrl = ctrl&^(1<<14) | 1<<15 // no function mask; enable
	t.setCfg32(capOff, ctrl<<16|t.cfg32(capOff)&0xffff)
	return nil
}

func (t *pciTransport) status() uint32     { return uint32(mmioRead8(t.common + commonStatus)) }
func (t *pciTransport) setStatus(s uint32) { mmioWrite8(t.common+commonStatus, uint8(s)) }

func (t *pciTransport) features() uint64 {
	mmioWrite32(t.common+commonDeviceFeatureSel, 0)
	lo := uint64(mmioRead32(t.common + commonDeviceFeature))
	mmioWrite32(t.common+commonDeviceFeatureSel, 1)
	return lo | uint64(mmioRead32(t.common+commonDeviceFeature))<<32
}

func (t *pciTransport) setFeatures(f uint64) {
	mmioWrite32(t.common+commonDriverFeatureSel, 0)
	mmioWrite32(t.common+commonDriverFeature, uint32(f))
	mmioWrite32(t.common+commonDriverFeatureSel, 1)
	mmioWrite32(t.common+commonDriverFeature, uint32(f>>32))
}

func (t *pciTransport) queue(i, size uint32, desc, driver, device uintptr) error {
	c := t.common
	mmioWrite16(c+commonQueueSelect, uint16(i))
	if max := uint32(mmioRead16(c + commonQueueSize)); max < size {
		return fmt.Errorf("%v: queue %d holds %d descriptors, want %d", t, i, max, size)
	}
	mmioWrite16(c+commonQueueSize, uint16(size))
	for _, r := range []struct{ off, a uintptr }{{commonQueueDesc, desc}, {commonQueueDriver, driver}, {commonQueueDevice, device}} {
		mmioWrite32(c+r.off, uint32(r.a))
		mmioWrite32(c+r.off+4, uint32(uint64(r.a)>>32))
	}
	mmioWrite16(c+commonQueueMSIX, 0)
	if mmioRead16(c+commonQueueMSIX) == noVector {
		return fmt.Errorf("%v: the device took no MSI-X vector for queue %d", t, i)
	}
	if int(i) < len(t.notifyQ) {
		t.notifyQ[i] = t.notifyB + uintptr(mmioRead16(c+commonQueueNotifyOff))*uintptr(t.notifyM)
	}
	mmioWrite16(c+commonQueueEnable, 1)
	return nil
}

func (t *pciTransport) notify(i uint32) { mmioWrite16(t.notifyQ[i&1], uint16(i)) }

func (t *pciTransport) config(off uintptr) byte { return mmioRead8(t.device + off) }

func (t *pciTransport) config32(off uintptr) uint32 { return mmioRead32(t.device + off) }

// routeIRQ turns off configuration-change interrupts: the queues have
// their vector, and the driver reads the configuration only at start.
func (t *pciTransport) routeIRQ() error {
	mmioWrite16(t.common+commonConfigMSIX, noVector)
	return nil
}

// Device registers are read and written with accesses of their own width,
// never merged or split by the compiler.

//go:noinline
func mmioRead8(a uintptr) uint8 { return *(*uint8)(physPtr(a)) }

//go:noinline
func mmioWrite8(a uintptr, v uint8) { *(*uint8)(physPtr(a)) = v }

//go:noinline
func mmioRead16(a uintptr) uint16 { return *(*uint16)(physPtr(a)) }

//go:noinline
func mmioWrite16(a uintptr, v uint16) { *(*uint16)(physPtr(a)) = v }

func mmioRead32(a uintptr) uint32 { return atomic.LoadUint32((*uint32)(physPtr(a))) }

// mmioWrite32 is a plain store, one MOV: atomic.StoreUint32 is an XCHG,
// which KVM emulates on MMIO as a read and then a write, two exits to the
// monitor (every QueueNotify was both, measured by the monitor). Kept out of
// line like the others, so that the compiler cannot drop a store that a
// later one to the same register seems to overwrite (a selector written
// twice); the call also keeps it after the atomic ring updates before it,
// and x86 keeps stores in order.
//
//go:noinline
func mmioWrite32(a uintptr, v uint32) { *(*uint32)(physPtr(a)) = v }
