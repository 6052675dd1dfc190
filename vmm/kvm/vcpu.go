package kvm

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Regs is struct kvm_regs.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

// Segment is struct kvm_segment.
type Segment struct {
	Base                           uint64
	Limit                          uint32
	Selector                       uint16
	Type                           uint8
	Present, DPL, DB, S, L, G, AVL uint8
	Unusable                       uint8
	_                              uint8
}

// DTable is struct kvm_dtable.
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs is struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS  Segment
	TR, LDT                 Segment
	GDT, IDT                DTable
	CR0, CR2, CR3, CR4, CR8 uint64
	EFER                    uint64
	APICBase                uint64
	InterruptBitmap         [4]uint64
}

// Run is the start of struct kvm_run, shared with the kernel through mmap.
type Run struct {
	RequestInterruptWindow uint8
	ImmediateExit          uint8
	_                      [6]uint8
	ExitReason             uint32
	ReadyForInterruptInj   uint8
	IFFlag                 uint8
	Flags                  uint16
	CR8                    uint64
	APICBase               uint64
	exit                   [256]byte // the exit union
}

// IO is the KVM_EXIT_IO part of the exit union.
type IO struct {
	Direction  uint8 // 0 in, 1 out
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64 // from the start of Run
}

// MMIO is the KVM_EXIT_MMIO part of the exit union.
type MMIO struct {
	PhysAddr uint64
	Data     [8]byte
	Len      uint32
	IsWrite  uint8
}

// InternalError is the KVM_EXIT_INTERNAL_ERROR part of the exit union.
type InternalError struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

// IO returns the port-I/O exit details.
func (r *Run) IO() *IO { return (*IO)(unsafe.Pointer(&r.exit)) }

// MMIO returns the MMIO exit details.
func (r *Run) MMIO() *MMIO { return (*MMIO)(unsafe.Pointer(&r.exit)) }

// InternalError returns the internal-error exit details.
func (r *Run) InternalError() *InternalError { return (*InternalError)(unsafe.Pointer(&r.exit)) }

// FailEntryReason returns hardware_entry_failure_reason of KVM_EXIT_FAIL_ENTRY.
func (r *Run) FailEntryReason() uint64 { return *(*uint64)(unsafe.Pointer(&r.exit)) }

// VCPU is a virtual CPU.
type VCPU struct {
	fd   uintptr
	Run  *Run
	mem  []byte
	ring *coalescedRing // nil without coalesced MMIO
}

// CreateVCPU creates vCPU id and maps its kvm_run structure.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctl(vm.fd, kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	mem, err := syscall.Mmap(int(fd), 0, vm.runSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("mmap kvm_run: %w", err)
	}
	return &VCPU{fd: fd, Run: (*Run)(unsafe.Pointer(&mem[0])), mem: mem, ring: coalescedRingOf(vm.coalescedPage, mem)}, nil
}

// Close releases the vCPU.
func (c *VCPU) Close() error {
	syscall.Munmap(c.mem)
	return syscall.Close(int(c.fd))
}

func (c *VCPU) ptr(req uintptr, p unsafe.Pointer, what string) error {
	if _, err := ioctl(c.fd, req, uintptr(p)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// RunOnce enters the guest until the next exit. EINTR (a signal reached the
// thread) is returned, not retried, so the caller can stop.
//
// It is a raw system call: the vCPU's thread keeps its P (the Go runtime's
// processor) while the guest runs. Through syscall.Syscall the runtime's
// sysmon takes the P away from every KVM_RUN that lasts 20 µs while the
// other goroutines are busy, and the thread has to win one back at each
// exit: under a network load that cost the process 18% of its CPU
// (BENCHMARKS.md, HTTP). The runtime still preempts the thread, since its
// preemption signal ends KVM_RUN; the caller runs with GOMAXPROCS ≥ 2 so
// that the monitor's other goroutines have a P meanwhile.
func (c *VCPU) RunOnce() error {
	_, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, c.fd, kvmRun, 0)
	if e != 0 {
		return e
	}
	return nil
}

// GetRegs reads the general registers.
func (c *VCPU) GetRegs() (Regs, error) {
	var r Regs
	return r, c.ptr(kvmGetRegs, unsafe.Pointer(&r), "KVM_GET_REGS")
}

// SetRegs writes the general registers.
func (c *VCPU) SetRegs(r *Regs) error { return c.ptr(kvmSetRegs, unsafe.Pointer(r), "KVM_SET_REGS") }

// GetSregs reads the special registers.
func (c *VCPU) GetSregs() (Sregs, error) {
	var s Sregs
	return s, c.ptr(kvmGetSregs, unsafe.Pointer(&s), "KVM_GET_SREGS")
}

// SetSregs writes the special registers.
func (c *VCPU) SetSregs(s *Sregs) error {
	return c.ptr(kvmSetSregs, unsafe.Pointer(s), "KVM_SET_SREGS")
}

// SetCPUID sets the CPUID leaves the guest sees.
func (c *VCPU) SetCPUID(entries []CPUIDEntry) error {
	if len(entries) > MaxCPUID {
		return fmt.Errorf("KVM_SET_CPUID2: %d entries, at most %d", len(entries), MaxCPUID)
	}
	cp := &cpuid2{Nent: uint32(len(entries))}
	copy(cp.Entries[:], entries)
	return c.ptr(kvmSetCPUID2, unsafe.Pointer(cp), "KVM_SET_CPUID2")
}

type msrEntry struct {
	Index, _ uint32
	Data     uint64
}

type msrs struct {
	N, _    uint32
	Entries [1]msrEntry
}

// GetMSR reads one model-specific register.
func (c *VCPU) GetMSR(index uint32) (uint64, error) {
	m := msrs{N: 1, Entries: [1]msrEntry{{Index: index}}}
	n, err := ioctl(c.fd, kvmGetMSRs, uintptr(unsafe.Pointer(&m)))
	if err != nil || n != 1 {
		return 0, fmt.Errorf("KVM_GET_MSRS %#x: %v", index, err)
	}
	return m.Entries[0].Data, nil
}

// SetMSR writes one model-specific register.
func (c *VCPU) SetMSR(index uint32, v uint64) error {
	m := msrs{N: 1, Entries: [1]msrEntry{{Index: index, Data: v}}}
	n, err := ioctl(c.fd, kvmSetMSRs, uintptr(unsafe.Pointer(&m)))
	if err != nil || n != 1 {
		return fmt.Errorf("KVM_SET_MSRS %#x: %v", index, err)
	}
	return nil
}

type xcrs struct {
	N, Flags uint32
	XCRs     [16]struct {
		XCR, _ uint32
		Value  uint64
	}
	_ [16]uint64
}

// SetXCR0 sets the extended control register XCR0 (the XSAVE feature mask).
func (c *VCPU) SetXCR0(v uint64) error {
	x := xcrs{N: 1}
	x.XCRs[0].Value = v
	return c.ptr(kvmSetXCRs, unsafe.Pointer(&x), "KVM_SET_XCRS")
}

// TSCkHz returns the guest TSC frequency.
func (c *VCPU) TSCkHz() (uint64, error) {
	r, err := ioctl(c.fd, kvmGetTSCKHz, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ: %w", err)
	}
	return uint64(r), nil
}

// Interrupt injects an external interrupt with vector vec (api.rst 4.16).
// Only without an in-kernel irqchip, and only when Run.ReadyForInterruptInj
// and Run.IFFlag say the guest can take one.
func (c *VCPU) Interrupt(vec uint32) error {
	return c.ptr(kvmInterrupt, unsafe.Pointer(&vec), "KVM_INTERRUPT")
}
