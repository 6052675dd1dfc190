package machine

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"unigo.dev/unigo/abi"
)

// Signal sends sig to the guest process, as kill(2) would to a Linux
// process: the bit goes into the CPU state block (abi.CsHostSignals), which
// the kernel reads at its next tick, and a halted guest is woken to read it.
// Safe to call from any goroutine while Run runs.
func (m *Machine) Signal(sig syscall.Signal) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("signal %d: want 1-64", int(sig))
	}
	b, err := m.mem.Slice(abi.CPUStateAddr+abi.CsHostSignals, 8)
	if err != nil {
		return err
	}
	// The word is 8-aligned in page-aligned memory; the guest takes it
	// with XCHG, so both sides are atomic.
	atomic.OrUint64((*uint64)(unsafe.Pointer(&b[0])), 1<<(sig-1))
	select {
	case m.wake <- struct{}{}:
	default: // a wake is pending already
	}
	return nil
}
