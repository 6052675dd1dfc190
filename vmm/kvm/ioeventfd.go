package kvm

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// ioeventfds (api.rst, KVM_IOEVENTFD; virt/kvm/eventfd.c): KVM completes a
// guest write of a given value to a given MMIO address itself, by signalling
// an eventfd, and resumes the guest at once, where the write would otherwise
// be an exit to the monitor.

const (
	kvmIOEventFD = 0x4040AE79 // _IOW(KVMIO, 0x79, struct kvm_ioeventfd)

	// CapIOEventFD is KVM_CAP_IOEVENTFD.
	CapIOEventFD = 36

	ioeventfdFlagDatamatch = 1 << 0 // KVM_IOEVENTFD_FLAG_DATAMATCH

	efdCloexec  = 0x80000 // EFD_CLOEXEC
	efdNonblock = 0x800   // EFD_NONBLOCK
)

// ioeventfd is struct kvm_ioeventfd.
type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]byte
}

// IOEventFD returns an eventfd that KVM signals, instead of exiting, when
// the guest writes the size-byte value match to MMIO address addr. Reads
// of it, through Go's poller, count the writes since the last read. The
// caller closes it after the VM.
func (vm *VM) IOEventFD(addr uint64, size uint32, match uint64) (*os.File, error) {
	fd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, efdCloexec|efdNonblock, 0)
	if e != 0 {
		return nil, fmt.Errorf("eventfd2: %w", e)
	}
	io := ioeventfd{Datamatch: match, Addr: addr, Len: size, FD: int32(fd), Flags: ioeventfdFlagDatamatch}
	if _, err := ioctl(vm.fd, kvmIOEventFD, uintptr(unsafe.Pointer(&io))); err != nil {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("KVM_IOEVENTFD %#x=%d: %w", addr, match, err)
	}
	return os.NewFile(fd, fmt.Sprintf("ioeventfd %#x=%d", addr, match)), nil
}
