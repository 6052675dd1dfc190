package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
)

// The own monitor's debugger (abi.HcDebug): with one attached, a breakpoint
// or single-step trap in user code stops the whole guest in the monitor
// instead of raising SIGTRAP. The monitor reads and writes every thread's
// user context where the kernel keeps it, in the trapFrame at the top of the
// thread's kernel stack, and resumes the guest by returning.

// debugTrap stops the guest for the debugger with why (abi.Debug*); f is
// the running thread's user context. Trap context.
//
//go:nosplit
func debugTrap(f *trapFrame, why uint64) {
	putDebugThread(0, cur, uintptr(unsafe.Pointer(f)))
	n := uintptr(1)
	for i := range threads {
		t := &threads[i]
		if i == cur || (t.state != tsRunnable && t.state != tsBlocked) {
			continue
		}
		putDebugThread(n, i, kstackTopOf(i)-unsafe.Sizeof(trapFrame{}))
		n++
	}
	hcall(abi.HcDebug, why, uint64(n))
}

//go:nosplit
func putDebugThread(n uintptr, i int, frame uintptr) {
	e := abi.HcBufAddr + n*abi.DtSize
	fs := threads[i].fsbase
	if i == cur {
		fs = userFS
	}
	store64(e+abi.DtTID, uint64(threads[i].tid))
	store64(e+abi.DtFrame, uint64(frame))
	store64(e+abi.DtFSBase, uint64(fs))
}

// debugStopRequested takes the monitor's request to stop (abi.CsDebugStop)
// and stops the running thread there: its user context is at the top of its
// kernel stack, whether it trapped from user code or waits in a system call.
//
//go:nosplit
func debugStopRequested() {
	if !debugger || xchg64(abi.CPUStateAddr+abi.CsDebugStop, 0) == 0 {
		return
	}
	debugTrap((*trapFrame)(kptr(kstackTopOf(cur)-unsafe.Sizeof(trapFrame{}))), abi.DebugStop)
}
