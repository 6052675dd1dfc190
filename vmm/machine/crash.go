package machine

import (
	"encoding/binary"
	"fmt"
	"strings"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/kvm"
)

// crash builds the report of a guest that stopped abnormally: the reason, the
// registers, and a backtrace symbolized from the image's symbol table by
// following frame pointers (the Go toolchain keeps them on amd64).
func (m *Machine) crash(reason string) error {
	r, err := m.cpu.GetRegs()
	if err != nil {
		return &ExitError{fmt.Sprintf("unigo: guest stopped: %s\n  (registers unavailable: %v)\n", reason, err)}
	}
	return m.report(reason, r)
}

// exceptionNames are the x86 exception mnemonics (SDM Vol. 3A §7.3, Table 7-1).
var exceptionNames = [32]string{
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
	"#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
	"#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
	"#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
	"#XM SIMD exception", "#VE virtualization exception", "#CP control protection",
}

// fault reports the exception the kernel caught, from the trap frame at gpa.
func (m *Machine) fault(gpa, addr uint64) error {
	b, err := m.mem.Slice(gpa, abi.FrameWords*8)
	if err != nil {
		return m.crash("exception with a trap frame outside memory: " + err.Error())
	}
	var frame [abi.FrameWords]uint64
	for i := range frame {
		frame[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	reason, r := faultRegs(frame[:], addr)
	return m.report(reason, r)
}

// faultRegs decodes a trap frame (abi.Frame* words) into the reason and the
// registers of a report.
func faultRegs(frame []uint64, addr uint64) (string, kvm.Regs) {
	w := func(i int) uint64 { return frame[i] }
	vec := w(abi.FrameVector)
	name := fmt.Sprintf("vector %d", vec)
	if vec < 32 && exceptionNames[vec] != "" {
		name = exceptionNames[vec]
	}
	r := kvm.Regs{
		RAX: w(abi.FrameRAX), RBX: w(abi.FrameRBX), RCX: w(abi.FrameRCX), RDX: w(abi.FrameRDX),
		RSI: w(abi.FrameRSI), RDI: w(abi.FrameRDI), RBP: w(abi.FrameRBP), RSP: w(abi.FrameRSP),
		R8: w(abi.FrameR8), R9: w(abi.FrameR9), R10: w(abi.FrameR10), R11: w(abi.FrameR11),
		R12: w(abi.FrameR12), R13: w(abi.FrameR13), R14: w(abi.FrameR14), R15: w(abi.FrameR15),
		RIP: w(abi.FrameRIP), RFLAGS: w(abi.FrameRFLAGS),
	}
	return fmt.Sprintf("CPU exception %s in kernel code, error code %#x, faulting address %#x, at CS %#x",
		name, w(abi.FrameErrcode), addr, w(abi.FrameCS)), r
}

// FaultReport is the report of a CPU exception in kernel code that the
// kernel described itself (the PVH platform's control channel, abi.CtlFault):
// the trap frame's words, the faulting address and the return addresses.
func (img *Image) FaultReport(frame []uint64, addr uint64, backtrace []uint64) string {
	if len(frame) != abi.FrameWords {
		return fmt.Sprintf("unigo: guest stopped: CPU exception in kernel code (a trap frame of %d words, want %d)\n", len(frame), abi.FrameWords)
	}
	reason, r := faultRegs(frame, addr)
	special := fmt.Sprintf("  cs %#x  ss %#x\n", frame[abi.FrameCS], frame[abi.FrameSS])
	return img.report(reason, r, special, backtrace)
}

// report formats registers r and the backtrace from r.RBP.
func (m *Machine) report(reason string, r kvm.Regs) error {
	s, err := m.cpu.GetSregs()
	special := fmt.Sprintf("  cs %#x  ss %#x  cr0 %#x  cr2 (fault address) %#x  cr3 %#x  cr4 %#x  efer %#x\n",
		s.CS.Selector, s.SS.Selector, s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
	if err != nil {
		special = fmt.Sprintf("  (special registers unavailable: %v)\n", err)
	}
	var bt []uint64
	fp := r.RBP
	for i := 0; i < 64 && fp != 0 && err == nil; i++ {
		ret, err := m.mem.ReadVirt(s.CR3, fp+8)
		if err != nil {
			break
		}
		next, err := m.mem.ReadVirt(s.CR3, fp)
		if err != nil || ret == 0 {
			break
		}
		bt = append(bt, ret)
		if next <= fp {
			break
		}
		fp = next
	}
	return &ExitError{m.img.report(reason, r, special, bt)}
}

// report formats a crash report: the reason, the registers, the special
// registers' line and the backtrace, symbolized from the image.
func (img *Image) report(reason string, r kvm.Regs, special string, backtrace []uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "unigo: guest stopped: %s\n", reason)
	fmt.Fprintf(&b, "  rip %#016x  %s\n", r.RIP, img.Symbolize(r.RIP))
	fmt.Fprintf(&b, "  rsp %#016x  rbp %#016x  rflags %#x\n", r.RSP, r.RBP, r.RFLAGS)
	fmt.Fprintf(&b, "  rax %#016x  rbx %#016x  rcx %#016x  rdx %#016x\n", r.RAX, r.RBX, r.RCX, r.RDX)
	fmt.Fprintf(&b, "  rsi %#016x  rdi %#016x  r8  %#016x  r9  %#016x\n", r.RSI, r.RDI, r.R8, r.R9)
	fmt.Fprintf(&b, "  r10 %#016x  r11 %#016x  r12 %#016x  r13 %#016x\n", r.R10, r.R11, r.R12, r.R13)
	fmt.Fprintf(&b, "  r14 %#016x  r15 %#016x\n", r.R14, r.R15)
	b.WriteString(special)
	b.WriteString("  backtrace:\n")
	fmt.Fprintf(&b, "    %#016x %s\n", r.RIP, img.Symbolize(r.RIP))
	for _, pc := range backtrace {
		fmt.Fprintf(&b, "    %#016x %s\n", pc, img.Symbolize(pc))
	}
	return b.String()
}
