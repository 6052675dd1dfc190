// Package kvm wraps the /dev/kvm ioctls the monitor uses. The ioctl numbers and
// structures are declared here from the kernel's include/uapi/linux/kvm.h and
// arch/x86/include/uapi/asm/kvm.h (Documentation/virt/kvm/api.rst), since no
// Go package the project depends on carries them.
package kvm

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// ioctl numbers: _IO(KVMIO=0xAE, nr), _IOR/_IOW/_IOWR with the struct size.
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmCheckExtension      = 0xAE03
	kvmGetVCPUMmapSize     = 0xAE04
	kvmGetSupportedCPUID   = 0xC008AE05
	kvmCreateVCPU          = 0xAE41
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmSetTSSAddr          = 0xAE47
	kvmRun                 = 0xAE80
	kvmInterrupt           = 0x4004AE86
	kvmGetRegs             = 0x8090AE81
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmGetMSRs             = 0xC008AE88
	kvmSetMSRs             = 0x4008AE89
	kvmSetCPUID2           = 0x4008AE90
	kvmGetTSCKHz           = 0xAEA3
	kvmSetXCRs             = 0x4188AEA7
	kvmEnableCap           = 0x4068AEA3
)

// APIVersion is the only KVM API version there is (api.rst §4.1).
const APIVersion = 12

// Exit reasons (kvm_run.exit_reason).
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitIRQWindowOpen = 7
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
	ExitSystemEvent   = 24
)

// ExitName names an exit reason for error messages.
func ExitName(r uint32) string {
	switch r {
	case ExitUnknown:
		return "KVM_EXIT_UNKNOWN"
	case ExitException:
		return "KVM_EXIT_EXCEPTION"
	case ExitIO:
		return "KVM_EXIT_IO"
	case ExitDebug:
		return "KVM_EXIT_DEBUG"
	case ExitHLT:
		return "KVM_EXIT_HLT"
	case ExitMMIO:
		return "KVM_EXIT_MMIO"
	case ExitIRQWindowOpen:
		return "KVM_EXIT_IRQ_WINDOW_OPEN"
	case ExitShutdown:
		return "KVM_EXIT_SHUTDOWN (triple fault)"
	case ExitFailEntry:
		return "KVM_EXIT_FAIL_ENTRY"
	case ExitIntr:
		return "KVM_EXIT_INTR"
	case ExitInternalError:
		return "KVM_EXIT_INTERNAL_ERROR"
	case ExitSystemEvent:
		return "KVM_EXIT_SYSTEM_EVENT"
	}
	return fmt.Sprintf("exit reason %d", r)
}

// ErrNoKVM explains what is missing when /dev/kvm cannot be used.
var ErrNoKVM = errors.New("kvm")

// Open opens /dev/kvm and checks the API version. Its errors say what is
// missing in one line.
func Open() (*System, error) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: /dev/kvm does not exist: this host has no KVM (load kvm_intel or kvm_amd, or enable nested virtualization); use --vmm qemu to run under QEMU instead", ErrNoKVM)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("%w: no permission to open /dev/kvm: add your user to the group that owns it (usually 'kvm') and log in again", ErrNoKVM)
		}
		return nil, fmt.Errorf("%w: open /dev/kvm: %v", ErrNoKVM, err)
	}
	s := &System{f: f}
	v, err := s.ioctl(kvmGetAPIVersion, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: KVM_GET_API_VERSION: %v", ErrNoKVM, err)
	}
	if v != APIVersion {
		f.Close()
		return nil, fmt.Errorf("%w: /dev/kvm speaks API version %d, want %d", ErrNoKVM, v, APIVersion)
	}
	return s, nil
}

// System is an open /dev/kvm.
type System struct{ f *os.File }

// Close closes /dev/kvm.
func (s *System) Close() error { return s.f.Close() }

func (s *System) ioctl(req, arg uintptr) (uintptr, error) { return ioctl(s.f.Fd(), req, arg) }

func ioctl(fd, req, arg uintptr) (uintptr, error) {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return r, nil
	}
}

// CheckExtension reports the value of KVM_CHECK_EXTENSION for cap.
func (s *System) CheckExtension(cap uintptr) int {
	r, err := s.ioctl(kvmCheckExtension, cap)
	if err != nil {
		return 0
	}
	return int(r)
}

// CPUIDEntry is struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function, Index, Flags uint32
	Eax, Ebx, Ecx, Edx     uint32
	_                      [3]uint32
}

// MaxCPUID is how many leaves SupportedCPUID reads at most.
const MaxCPUID = 256

type cpuid2 struct {
	Nent, _ uint32
	Entries [MaxCPUID]CPUIDEntry
}

// SupportedCPUID returns the CPUID leaves KVM can offer a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	c := &cpuid2{Nent: MaxCPUID}
	if _, err := s.ioctl(kvmGetSupportedCPUID, uintptr(unsafe.Pointer(c))); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	return append([]CPUIDEntry(nil), c.Entries[:c.Nent]...), nil
}

// CreateVM creates a virtual machine.
func (s *System) CreateVM() (*VM, error) {
	fd, err := s.ioctl(kvmCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	runSize, err := s.ioctl(kvmGetVCPUMmapSize, 0)
	if err != nil {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	page, _ := s.ioctl(kvmCheckExtension, CapCoalescedMMIO)
	return &VM{fd: fd, runSize: int(runSize), coalescedPage: int(page)}, nil
}

// VM is a KVM virtual machine.
type VM struct {
	fd            uintptr
	runSize       int
	coalescedPage int // the vCPU mmap's page of the coalesced MMIO ring; 0: none
}

// Close releases the VM.
func (vm *VM) Close() error { return syscall.Close(int(vm.fd)) }

type userspaceMemoryRegion struct {
	Slot, Flags   uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// MemReadonly makes a memory slot read-only to the guest: its writes there
// exit as MMIO (KVM_MEM_READONLY, api.rst 4.35; KVM_CAP_READONLY_MEM).
const MemReadonly = 1 << 1

// CapReadonlyMem is KVM_CAP_READONLY_MEM, for CheckExtension.
const CapReadonlyMem = 31

// CapBinaryStatsFD is KVM_CAP_BINARY_STATS_FD (VCPU.OpenStats).
const CapBinaryStatsFD = 203

// SetMemory maps host memory mem at guest-physical gpa in slot, with flags
// (0 or MemReadonly).
func (vm *VM) SetMemory(slot uint32, gpa uint64, mem []byte, flags uint32) error {
	r := userspaceMemoryRegion{
		Slot:          slot,
		Flags:         flags,
		GuestPhysAddr: gpa,
		MemorySize:    uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
	}
	if _, err := ioctl(vm.fd, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&r))); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	return nil
}

// SetTSSAddr places the three pages KVM needs on Intel hosts for real-mode
// emulation (api.rst 4.40) where the guest has no RAM.
func (vm *VM) SetTSSAddr(gpa uint64) error {
	if _, err := ioctl(vm.fd, kvmSetTSSAddr, uintptr(gpa)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR: %w", err)
	}
	return nil
}

// enableCap is struct kvm_enable_cap.
type enableCap struct {
	Cap, Flags uint32
	Args       [4]uint64
	_          [64]byte
}

// CapSplitIRQChip is KVM_CAP_SPLIT_IRQCHIP (VM.EnableCap): the local APIC in
// the kernel, no PIC or I/O APIC; Args[0] is the I/O APIC routes to reserve.
const CapSplitIRQChip = 121

// EnableCap enables a VM capability with its arguments (KVM_ENABLE_CAP,
// api.rst 4.37).
func (vm *VM) EnableCap(cap uint32, args ...uint64) error {
	c := enableCap{Cap: cap}
	copy(c.Args[:], args)
	if _, err := ioctl(vm.fd, kvmEnableCap, uintptr(unsafe.Pointer(&c))); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %d: %w", cap, err)
	}
	return nil
}
