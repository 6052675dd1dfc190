package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
)

// The hypercalls of the PVH platform: what the monitor does, done with the
// platform's devices, and reported on the control channel (abi.CtlPort)
// where the monitor gave one.

const debugExitPort = 0xf4 // -device isa-debug-exit,iobase=0xf4

// errPort is the UART stderr goes to.
//
//go:nosplit
func errPort() uint16 {
	if com2 {
		return com2Port
	}
	return comPort
}

const deadlockMsg = "guest deadlock: every thread waits and nothing can wake one"

// pvhHalt waits up to ns nanoseconds (0: for an interrupt), or reports
// false when nothing could end the wait. HLT until the timer while a whole
// tick remains, then spin to the deadline: the wait ends on time and costs
// the host little. Kept apart from pvhHcall so that the scheduler's wait
// does not carry the fault reporting's stack frames.
//
//go:nosplit
func pvhHalt(ns int64) bool {
	if ns == 0 && !pvhTimer {
		return false
	}
	if ns == 0 {
		stiHlt() // nothing to wait for but an interrupt
		return true
	}
	for deadline := nanotime() + ns; nanotime() < deadline; {
		if pvhTimer && deadline-nanotime() > 10_000_000 {
			stiHlt()
			return true // any interrupt may have made a thread runnable: the scheduler looks again
		}
	}
	return true
}

// pvhHcall does what the monitor does for hypercall nr.
//
//go:nosplit
func pvhHcall(nr uintptr, a0, a1 uint64) uint64 {
	switch nr {
	case abi.HcConsoleWrite:
		port := uint16(comPort)
		if a0 == 2 {
			port = errPort()
		}
		uartWriteTo(port, abi.HcBufAddr, uintptr(a1))
		return a1
	case abi.HcExit:
		pvhExit(uint32(a0))
	case abi.HcHalt:
		if !pvhHalt(int64(a0)) {
			pvhFatal(deadlockMsg)
		}
	case abi.HcUnimplemented:
		if ctl {
			ctlStart(abi.CtlUnimpl)
			uartDec(abi.CtlPort, a0)
			uartPut(abi.CtlPort, '\n')
			return 0
		}
		uartString(errPort(), "unigo: unimplemented system call ")
		uartDec(errPort(), a0)
		uartString(errPort(), " returned ENOSYS\n")
	case abi.HcFatal:
		pvhFatalBuf(abi.HcBufAddr, uintptr(a1))
	case abi.HcFault:
		pvhFault(uintptr(a0), a1)
	}
	return 0
}

//go:nosplit
func ctlStart(word string) {
	uartString(abi.CtlPort, word)
	uartPut(abi.CtlPort, ' ')
}

//go:nosplit
func pvhFatal(msg string) {
	pvhFatalBuf(uintptr(unsafe.Pointer(unsafe.StringData(msg))), uintptr(len(msg)))
}

// pvhFatalBuf reports the n-byte message at buf and stops the machine.
//
//go:nosplit
func pvhFatalBuf(buf, n uintptr) {
	if ctl {
		ctlStart(abi.CtlFatal)
		uartWriteTo(abi.CtlPort, buf, min(n, abi.CtlMaxLine-8))
		uartPut(abi.CtlPort, '\n')
	} else {
		uartString(errPort(), "unigo: guest stopped: kernel: ")
		uartWriteTo(errPort(), buf, n)
		uartPut(errPort(), '\n')
	}
	pvhExit(134)
}

// pvhFault reports the CPU exception in kernel code whose trap frame is at
// frame: its words, then the return addresses up the frame-pointer chain,
// for the host to symbolize.
//
//go:nosplit
func pvhFault(frame uintptr, addr uint64) {
	port := uint16(abi.CtlPort)
	if ctl {
		ctlStart(abi.CtlFault)
	} else {
		port = errPort()
		uartString(port, "unigo: guest stopped: CPU exception in kernel code; address and trap frame: ")
	}
	uartHex(port, addr)
	for i := uintptr(0); i < abi.FrameWords; i++ {
		uartPut(port, ' ')
		uartHex(port, load64(frame+i*8))
	}
	uartPut(port, '\n')
	uartString(port, abi.CtlBacktr)
	fp := uintptr(load64(frame + abi.FrameRBP*8))
	for i := 0; i < 64 && fp&7 == 0 && mapped(fp) && mapped(fp+8); i++ {
		ret := load64(fp + 8)
		if ret == 0 {
			break
		}
		uartPut(port, ' ')
		uartHex(port, ret)
		next := uintptr(load64(fp))
		if next <= fp {
			break
		}
		fp = next
	}
	uartPut(port, '\n')
	pvhExit(134)
}

// pvhExit stops the machine with exit status code, by the first of these
// that works: isa-debug-exit (QEMU), ACPI S5 soft-off, a reset through the
// 8042 keyboard controller (Firecracker stops on it; QEMU with -no-reboot
// too). The status travels in full on the control channel; isa-debug-exit
// makes QEMU exit with code*2+1, so it carries 7 bits.
//
//go:nosplit
func pvhExit(code uint32) {
	if ctl {
		ctlStart(abi.CtlExit)
		uartDec(abi.CtlPort, uint64(code))
		uartPut(abi.CtlPort, '\n')
	} else if code > 127 {
		uartString(errPort(), "unigo: the exit status does not fit QEMU's isa-debug-exit; reported as 127\n")
	}
	outl(debugExitPort, min(code, 127))
	acpiPowerOff()
	outb(0x64, 0xfe) // 8042: pulse the reset line
	// Still running: say so, and halt for good (a triple fault would make
	// a QEMU without -no-reboot run the program again, for ever).
	uartString(errPort(), "unigo: exit status ")
	uartDec(errPort(), uint64(code))
	uartString(errPort(), ", but no power-off device answered (isa-debug-exit, ACPI or an 8042): halted\n")
	if pvhTimer {
		lapicWrite(LAPIC_LVTT, LVT_MASKED|abi.TimerVector)
	}
	for {
		stiHlt()
	}
}

// pvhReport tells, with --debug, what the platform layer found.
//
//go:nosplit
func pvhReport(khz uint64) {
	port := errPort()
	uartString(port, "unigo: platform: PVH; TSC ")
	uartDec(port, khz/1000)
	uartString(port, " MHz from ")
	uartString(port, tscSource)
	if !acpi.found {
		uartString(port, "; no ACPI")
	} else {
		uartString(port, "; ACPI")
		if acpi.pmTimer != 0 {
			uartString(port, ", PM timer at port 0x")
			uartHex(port, uint64(acpi.pmTimer))
		}
		if acpi.s5 {
			uartString(port, ", soft-off")
		}
		if acpi.ecamBase != 0 {
			uartString(port, ", ECAM at 0x")
			uartHex(port, acpi.ecamBase)
		}
	}
	if ctl {
		uartString(port, "; control channel")
	}
	uartPut(port, '\n')
	for i := 0; i < nPCI; i++ {
		d := &pciDevs[i]
		uartString(port, "unigo: pci ")
		uartHex2(port, d.bus)
		uartPut(port, ':')
		uartHex2(port, d.dev)
		uartPut(port, '.')
		uartHex(port, uint64(d.fn))
		uartPut(port, ' ')
		uartHex4(port, d.vendor)
		uartPut(port, ':')
		uartHex4(port, d.device)
		uartString(port, " class ")
		uartHex2(port, uint8(d.class>>16))
		uartHex2(port, uint8(d.class>>8))
		uartHex2(port, uint8(d.class))
		uartPut(port, '\n')
	}
	for i := 0; i < nMMIO; i++ {
		d := &mmioDevs[i]
		uartString(port, "unigo: virtio-mmio at 0x")
		uartHex(port, d.base)
		uartString(port, " irq ")
		uartDec(port, uint64(d.irq))
		uartString(port, " version ")
		uartDec(port, uint64(d.version))
		uartString(port, " device ")
		uartDec(port, uint64(d.deviceID))
		uartPut(port, '\n')
	}
}

//go:nosplit
func uartHex2(port uint16, v uint8) {
	uartPut(port, hexDigit(v>>4))
	uartPut(port, hexDigit(v&0xf))
}

//go:nosplit
func uartHex4(port uint16, v uint16) {
	uartHex2(port, uint8(v>>8))
	uartHex2(port, uint8(v))
}
