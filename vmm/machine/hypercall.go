package machine

import (
	"fmt"
	"time"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// hypercall serves hypercall nr. done reports that the guest has exited with
// status.
func (m *Machine) hypercall(nr uint64) (done bool, status int, err error) {
	arg := func(off uint64) uint64 {
		v, _ := m.mem.U64(abi.HcPageAddr + off) // the hypercall page is always in RAM
		return v
	}
	ret := func(v uint64) { m.mem.PutU64(abi.HcPageAddr+abi.HcRet, v) }
	m.stats.hcall(nr)
	switch nr {
	case abi.HcExit:
		status := int(int32(arg(abi.HcA0)))
		if m.cfg.Debugger != nil {
			m.cfg.Debugger.Exited(status)
		}
		return true, status, nil
	case abi.HcConsoleWrite:
		fd, n := arg(abi.HcA0), arg(abi.HcA1)
		if n > abi.HcBufSize {
			return false, 0, fmt.Errorf("console write of %d bytes exceeds the %d-byte buffer", n, abi.HcBufSize)
		}
		b, _ := m.mem.Slice(abi.HcBufAddr, n)
		w := m.cfg.Stdout
		if fd == 2 {
			w = m.cfg.Stderr
		}
		k, _ := w.Write(b)
		ret(uint64(k))
	case abi.HcHalt:
		ns := arg(abi.HcA0)
		if ns == 0 && m.net == nil {
			return false, 0, fmt.Errorf("guest deadlock: every thread waits and no timer or device can wake one")
		}
		if m.devPending.Swap(false) {
			ret(1) // the kernel takes the device's interrupt itself
			break
		}
		// No ticks while the guest waits: an idle guest costs no host CPU.
		m.ticker.Stop()
		var expired <-chan time.Time
		if ns != 0 {
			t := time.NewTimer(time.Duration(ns))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-expired:
		case <-m.wake: // the device has work: the guest looks again
		}
		m.ticker.Reset(tick)
		if m.devPending.Swap(false) {
			ret(1) // no interrupt can reach a kernel that waits in a hypercall
		} else {
			ret(0)
		}
	case abi.HcUnimplemented:
		sys := arg(abi.HcA0)
		if sys >= linux.NumSyscalls {
			sys = linux.NumSyscalls // one entry for every number out of range: the map stays small
		}
		if !m.reported[sys] {
			m.reported[sys] = true
			fmt.Fprintln(m.cfg.Stderr, UnimplementedMessage(sys))
		}
		ret(0)
	case abi.HcFatal:
		n := min(arg(abi.HcA1), abi.HcBufSize)
		b, _ := m.mem.Slice(abi.HcBufAddr, n)
		return false, 0, fmt.Errorf("kernel: %s", b)
	case abi.HcFault:
		return false, 0, m.fault(arg(abi.HcA0), arg(abi.HcA1))
	case abi.HcDebug:
		kill, err := m.debugStop(arg(abi.HcA0), arg(abi.HcA1))
		if kill {
			return true, 128 + 9, nil // as SIGKILL ends a process
		}
		return false, 0, err
	default:
		return false, 0, fmt.Errorf("unknown hypercall %d", nr)
	}
	return false, 0, nil
}

// UnimplementedMessage is the --debug line for system call nr, which the
// kernel answered with ENOSYS.
func UnimplementedMessage(nr uint64) string {
	name := "a number out of range"
	if nr < linux.NumSyscalls {
		name = fmt.Sprintf("%s (%d)", linux.SyscallNames[nr], nr)
		if linux.SyscallNames[nr] == "" {
			name = fmt.Sprintf("%d", nr)
		}
	}
	return fmt.Sprintf("unigo: unimplemented system call %s returned ENOSYS", name)
}
