package machine

import (
	"fmt"
	"strings"
)

// crash builds the report of a guest that stopped abnormally: the reason, the
// registers, and a backtrace symbolized from the image's symbol table by
// following frame pointers (the Go toolchain keeps them on amd64).
func (m *Machine) crash(reason string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "unigo: guest stopped: %s\n", reason)
	r, err := m.cpu.GetRegs()
	if err != nil {
		fmt.Fprintf(&b, "  (registers unavailable: %v)\n", err)
		return &ExitError{b.String()}
	}
	s, err := m.cpu.GetSregs()
	if err != nil {
		fmt.Fprintf(&b, "  (special registers unavailable: %v)\n", err)
	}
	fmt.Fprintf(&b, "  rip %#016x  %s\n", r.RIP, m.img.Symbolize(r.RIP))
	fmt.Fprintf(&b, "  rsp %#016x  rbp %#016x  rflags %#x\n", r.RSP, r.RBP, r.RFLAGS)
	fmt.Fprintf(&b, "  rax %#016x  rbx %#016x  rcx %#016x  rdx %#016x\n", r.RAX, r.RBX, r.RCX, r.RDX)
	fmt.Fprintf(&b, "  rsi %#016x  rdi %#016x  r8  %#016x  r9  %#016x\n", r.RSI, r.RDI, r.R8, r.R9)
	fmt.Fprintf(&b, "  r10 %#016x  r11 %#016x  r12 %#016x  r13 %#016x\n", r.R10, r.R11, r.R12, r.R13)
	fmt.Fprintf(&b, "  r14 %#016x  r15 %#016x\n", r.R14, r.R15)
	fmt.Fprintf(&b, "  cs %#x  ss %#x  cr0 %#x  cr2 (fault address) %#x  cr3 %#x  cr4 %#x  efer %#x\n",
		s.CS.Selector, s.SS.Selector, s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
	b.WriteString("  backtrace:\n")
	fmt.Fprintf(&b, "    %#016x %s\n", r.RIP, m.img.Symbolize(r.RIP))
	fp := r.RBP
	for i := 0; i < 64 && fp != 0; i++ {
		ret, err := m.mem.ReadVirt(s.CR3, fp+8)
		if err != nil {
			break
		}
		next, err := m.mem.ReadVirt(s.CR3, fp)
		if err != nil || ret == 0 {
			break
		}
		fmt.Fprintf(&b, "    %#016x %s\n", ret, m.img.Symbolize(ret))
		if next <= fp {
			break
		}
		fp = next
	}
	return &ExitError{b.String()}
}
