package machine

import (
	"fmt"

	"unigo.dev/unigo/abi"
)

// softIntr reports whether the kernel asked for soft interrupts (see
// abi.CPUStateAddr): on a paging-based KVM the guest never opens an interrupt
// window.
func (m *Machine) softIntr() bool {
	v, _ := m.mem.U64(abi.CPUStateAddr + abi.CsFlags)
	return v&abi.CsFlagSoftIntr != 0
}

// softInterrupt delivers interrupt vector as the CPU would from user
// mode: the IRET frame goes below the current kernel stack top and RIP moves
// to the kernel's entry. It reports false, delivering nothing, while the vCPU
// runs kernel code (RSP on a kernel stack); the tick stays pending.
func (m *Machine) softInterrupt(vector uint64) (bool, error) {
	cs := func(off uint64) uint64 { v, _ := m.mem.U64(abi.CPUStateAddr + off); return v }
	r, err := m.cpu.GetRegs()
	if err != nil {
		return false, err
	}
	if lo, hi := cs(abi.CsKstacksLo), cs(abi.CsKstacksHi); r.RSP >= lo && r.RSP < hi {
		return false, nil
	}
	top, err := m.mem.U64(cs(abi.CsKstackTopVA))
	if err != nil {
		return false, fmt.Errorf("soft interrupt: kernel stack top: %w", err)
	}
	frame := []uint64{vector, 0, r.RIP, cs(abi.CsUserCS), r.RFLAGS, r.RSP, cs(abi.CsUserSS)}
	sp := top - uint64(len(frame))*8
	for i, v := range frame {
		if err := m.mem.PutU64(sp+uint64(i)*8, v); err != nil {
			return false, fmt.Errorf("soft interrupt: kernel stack at %#x: %w", sp, err)
		}
	}
	r.RSP, r.RIP = sp, cs(abi.CsSoftEntry)
	return true, m.cpu.SetRegs(&r)
}
