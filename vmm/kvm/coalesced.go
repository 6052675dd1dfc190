package kvm

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"
)

// Coalesced MMIO (api.rst, KVM_REGISTER_COALESCED_MMIO; virt/kvm/coalesced_mmio.c):
// KVM appends the guest's writes into a registered zone to a ring in the
// vCPU's mmap and resumes the guest at once, rather than exit to the monitor
// for each. The monitor applies them, oldest first, at the next exit, before
// that exit's own access: a read in a zone still exits.

const (
	kvmRegisterCoalescedMMIO = 0x4010AE67 // _IOW(KVMIO, 0x67, struct kvm_coalesced_mmio_zone)

	// CapCoalescedMMIO is KVM_CAP_COALESCED_MMIO: its value is the page of
	// the vCPU's mmap that holds the ring.
	CapCoalescedMMIO = 15
)

// coalescedZone is struct kvm_coalesced_mmio_zone.
type coalescedZone struct {
	Addr uint64
	Size uint32
	Pio  uint32
}

// coalescedEntry is struct kvm_coalesced_mmio.
type coalescedEntry struct {
	PhysAddr uint64
	Len      uint32
	Pio      uint32
	Data     [8]byte
}

// coalescedRing is struct kvm_coalesced_mmio_ring in a 4 KiB page: KVM
// writes Last, the monitor First.
type coalescedRing struct {
	First, Last uint32
	Entries     [coalescedMax]coalescedEntry
}

// coalescedMax is KVM_COALESCED_MMIO_MAX for 4 KiB pages.
const coalescedMax = (4096 - 8) / uint32(unsafe.Sizeof(coalescedEntry{}))

// RegisterCoalescedMMIO has KVM keep the guest's writes to [addr, addr+size)
// in the ring (VCPU.DrainCoalesced) instead of exiting for each. Only for
// registers whose writes may take effect late: at the next exit.
func (vm *VM) RegisterCoalescedMMIO(addr uint64, size uint32) error {
	if vm.coalescedPage == 0 {
		return fmt.Errorf("KVM_REGISTER_COALESCED_MMIO: KVM has no coalesced MMIO")
	}
	z := coalescedZone{Addr: addr, Size: size}
	if _, err := ioctl(vm.fd, kvmRegisterCoalescedMMIO, uintptr(unsafe.Pointer(&z))); err != nil {
		return fmt.Errorf("KVM_REGISTER_COALESCED_MMIO %#x+%d: %w", addr, size, err)
	}
	return nil
}

// coalescedRingOf returns the ring in a vCPU's mmap, or nil.
func coalescedRingOf(page int, mem []byte) *coalescedRing {
	ps := os.Getpagesize()
	if page <= 0 || ps != 4096 || (page+1)*ps > len(mem) {
		return nil
	}
	return (*coalescedRing)(unsafe.Pointer(&mem[page*ps]))
}

// DrainCoalesced hands each write KVM kept in the ring to write, oldest
// first, and empties the ring. Called on the vCPU's thread after each exit.
func (c *VCPU) DrainCoalesced(write func(*MMIO)) {
	r := c.ring
	if r == nil {
		return
	}
	for {
		first, last := r.First, atomic.LoadUint32(&r.Last)
		if first == last || first >= coalescedMax || last >= coalescedMax {
			return
		}
		e := &r.Entries[first]
		mm := MMIO{PhysAddr: e.PhysAddr, Data: e.Data, Len: min(e.Len, 8), IsWrite: 1}
		write(&mm)
		atomic.StoreUint32(&r.First, (first+1)%coalescedMax)
	}
}
