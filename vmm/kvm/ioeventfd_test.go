package kvm

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"
)

// TestIOEventFD runs a few real-mode instructions that write 1, then 2, to
// an address outside guest memory, where an ioeventfd matches 1: KVM takes
// the first write itself and signals the eventfd, and the vCPU's first exit
// to the monitor is the second write.
func TestIOEventFD(t *testing.T) {
	sys, err := Open()
	if err != nil {
		t.Skipf("no usable /dev/kvm: %v", err)
	}
	defer sys.Close()
	if sys.CheckExtension(CapIOEventFD) <= 0 {
		t.Skip("this KVM has no ioeventfds")
	}
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	mem, err := syscall.Mmap(-1, 0, 0x2000, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	// At 0x1000: MOV EAX, 1; MOV [0x8000], EAX; MOV EAX, 2; MOV [0x8000], EAX; HLT.
	copy(mem[0x1000:], []byte{
		0x66, 0xb8, 1, 0, 0, 0, 0x66, 0xa3, 0x00, 0x80,
		0x66, 0xb8, 2, 0, 0, 0, 0x66, 0xa3, 0x00, 0x80,
		0xf4,
	})
	if err := vm.SetMemory(0, 0, mem, 0); err != nil {
		t.Fatal(err)
	}
	ev, err := vm.IOEventFD(0x8000, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.GetSregs()
	if err != nil {
		t.Fatal(err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	s.DS.Base, s.DS.Selector = 0, 0
	if err := c.SetSregs(&s); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRegs(&Regs{RIP: 0x1000, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.RunOnce(); err != nil {
		t.Fatal(err)
	}
	if c.Run.ExitReason != ExitMMIO {
		t.Fatalf("first exit %s, want the second write's MMIO exit", ExitName(c.Run.ExitReason))
	}
	if mm := c.Run.MMIO(); mm.PhysAddr != 0x8000 || mm.IsWrite == 0 || binary.LittleEndian.Uint32(mm.Data[:4]) != 2 {
		t.Fatalf("first exit: MMIO at %#x, write %v, data %x; want the write of 2 to 0x8000", mm.PhysAddr, mm.IsWrite, mm.Data)
	}
	ev.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [8]byte
	if n, err := ev.Read(b[:]); err != nil || n != 8 || binary.LittleEndian.Uint64(b[:]) != 1 {
		t.Fatalf("eventfd read %d bytes %x, %v; want the count 1", n, b, err)
	}
}
