package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
)

// Hypercalls to the monitor (package abi).

//go:nosplit
func hcall(nr uintptr, a0, a1 uint64) uint64 {
	if pvh {
		return pvhHcall(nr, a0, a1)
	}
	return monitorHcall(nr, a0, a1)
}

// monitorHcall makes hypercall nr to Unigo's own monitor.
//
//go:nosplit
func monitorHcall(nr uintptr, a0, a1 uint64) uint64 {
	store64(abi.HcPageAddr+abi.HcA0, a0)
	store64(abi.HcPageAddr+abi.HcA1, a1)
	hypercall(nr)
	return load64(abi.HcPageAddr + abi.HcRet)
}

//go:nosplit
func exit(code int) {
	for {
		hcall(abi.HcExit, uint64(code), 0)
	}
}

// halt waits in the monitor for at most ns nanoseconds (0: no deadline),
// and takes the device's interrupt or the host's signals that ended it.
//
//go:nosplit
func halt(ns int64) {
	if pvh {
		if !pvhHalt(ns) {
			pvhFatal(deadlockMsg)
		}
		return // device interrupts are taken as interrupts under PVH
	}
	if monitorHcall(abi.HcHalt, uint64(ns), 0) == 1 {
		deviceIRQ()
	}
	takeHostSignalsFn() // the monitor ends a halt for them too
}

// consoleWrite writes n bytes at user address buf to the host's stdout (fd 1)
// or stderr (fd 2) and returns the count written.
//
//go:nosplit
func consoleWrite(fd int, buf, n uintptr) uintptr {
	done := uintptr(0)
	for done < n {
		k := min(n-done, abi.HcBufSize)
		memmove(abi.HcBufAddr, buf+done, k)
		w := uintptr(hcall(abi.HcConsoleWrite, uint64(fd), uint64(k)))
		done += w
		if w < k {
			break
		}
	}
	return done
}

// fatal stops the machine with msg: the kernel cannot go on.
//
//go:nosplit
func fatal(msg string) {
	n := min(uintptr(len(msg)), abi.HcBufSize)
	memmove(abi.HcBufAddr, uintptr(unsafe.Pointer(unsafe.StringData(msg))), n)
	for {
		hcall(abi.HcFatal, 0, uint64(n))
	}
}

// warn writes msg to the guest's stderr.
//
//go:nosplit
func warn(msg string) {
	consoleWrite(2, uintptr(unsafe.Pointer(unsafe.StringData(msg))), uintptr(len(msg)))
}
