package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// Interrupts and exceptions. The monitor injects vecTimer every tick while the
// vCPU runs; the handler lets the next runnable thread run (preemption).
// Exceptions are reported to the monitor, which prints them and stops.

const (
	vecTimer   = abi.TimerVector
	vecDevice  = abi.DeviceVector // the network device's interrupt (netdev.go)
	nIntrStubs = 34
	vecSyscall = 0x100 // trapFrame.vector of a system call: no hardware vector

	rflagsIF = 1 << 9
	rflagsTF = 1 << 8 // trap flag: #DB after the next instruction (single step)

	// Vector state save area per thread: XSAVE needs 64-byte alignment and
	// as much as the components in XCR0 take (2440 bytes with AVX, AVX-512
	// and PKRU here); FXSAVE 512 bytes.
	xsaveSize = 4096
)

var (
	idt  [256][2]uint64 // 16-byte interrupt gates (SDM Vol. 3A §7.14.1)
	idtr [2]uint64

	useXsave bool    // XSAVE is enabled (CR4.OSXSAVE); otherwise FXSAVE
	curXsave uintptr // save area of the running thread
	xsaveLen uintptr // bytes of vector state that XSAVE or FXSAVE writes
	ticks    uint64
)

// initVectorState gives thread slot i the initial vector state. The x87
// control word and MXCSR of the initial state (FCW 0x37F, MXCSR 0x1F80 at
// bytes 0 and 24 of the legacy area, SDM Vol. 1 §10.5.1) must be written even
// for XSAVE: XRSTOR loads MXCSR from memory whatever the header says
// (§13.8.1), and a zero MXCSR unmasks every floating-point exception.
//
//go:nosplit
func initVectorState(i int) {
	a := xsaveArea(i)
	memclr(a, xsaveSize)
	store64(a, 0x37f)
	store64(a+24, 0x1f80|0xffff<<32) // MXCSR, MXCSR_MASK
}

//go:nosplit
func setRSP0(sp uintptr) {
	tss[1] = uint32(sp)
	tss[2] = uint32(sp >> 32)
}

// trapInit fills the IDT that entry loaded: interrupt gates (type 0xE,
// present, DPL 0) through the kernel code segment.
//
//go:nosplit
func trapInit() {
	intrStubs(&stubPCs)
	for i := range stubPCs { // by index: ranging over the array would copy it to the stack
		pc, vec := stubPCs[i], i
		if i == 32 {
			vec = vecTimer
		}
		// Exceptions run on IST1, never on the kernel stack: on a
		// paging-based KVM one raised by the system-call handler (INVLPG's
		// #GP) would land at TSS.RSP0, over the frame of the call in
		// progress. Interrupts use RSP0: the timer may switch threads.
		ist := uint64(0)
		if vec < 32 {
			ist = 1
		}
		idt[vec][0] = uint64(pc&0xffff) | selKernelCode<<16 | ist<<32 | 0x8e<<40 | uint64(pc>>16&0xffff)<<48
		idt[vec][1] = uint64(pc >> 32)
	}
	if !kstackAlloc(maxThreads) {
		fatal("no memory for the exception stack")
	}
	top := kstackTopOf(maxThreads)
	tss[9], tss[10] = uint32(top), uint32(top>>32) // IST1, at byte 36 of the TSS
	cs := uintptr(abi.CPUStateAddr)
	store64(cs+abi.CsSoftEntry, uint64(softEntryPC()))
	store64(cs+abi.CsKstackTopVA, uint64(uintptr(unsafe.Pointer(&kstackTop))))
	store64(cs+abi.CsKstacksLo, 0) // kernel stacks are identity-mapped RAM; user stacks lie above userBase
	store64(cs+abi.CsKstacksHi, userBase)
	store64(cs+abi.CsUserCS, selUserCode)
	store64(cs+abi.CsUserSS, selUserData)

	_, _, c, _ := cpuid(1, 0)
	useXsave = c&(1<<27) != 0 // OSXSAVE
	xsaveLen = 512
	if useXsave {
		xsaveLen = xsaveNeed()
	}
	if xsaveLen > xsaveSize {
		fatal("the enabled XSAVE state is larger than the save area")
	}
}

// xsaveNeed computes the XSAVE area size of the components enabled in XCR0
// from CPUID leaf 0xD: the legacy area and header, then each component's
// offset and size (SDM Vol. 1 §13.2). Leaf 0xD.0's EBX would give it, but is
// not updated after XSETBV by every hypervisor.
//
//go:nosplit
func xsaveNeed() uintptr {
	need := uintptr(512 + 64)
	xcr0 := xgetbv()
	for i := uint32(2); i < 63; i++ {
		if xcr0&(1<<i) == 0 {
			continue
		}
		size, off, _, _ := cpuid(0xd, i)
		need = max(need, uintptr(off)+uintptr(size))
	}
	return need
}

// stubPCs is trapInit's scratch (too big for a nosplit frame).
var stubPCs [nIntrStubs]uintptr

// faultCR2 is CR2 as intrCommon read it in emulated ring 0, before leaving it.
var faultCR2 uintptr

// faultAddr returns the address of the page fault being handled.
//
//go:nosplit
func faultAddr() uintptr {
	if handlerCPL != 0 {
		return faultCR2
	}
	return readCR2()
}

// trap handles the interrupt or exception in f. Trap context.
//
//go:nosplit
func trap(f *trapFrame) {
	if f.vector == vecDevice {
		deviceIRQ()
		return
	}
	if f.vector == vecTimer {
		ticks++
		if pvhTimer {
			lapicWrite(LAPIC_EOI, 0)
		}
		takeHostSignals()
		if f.cs&3 == 0 {
			return // it woke the kernel's own wait (stiHlt): the waiter goes on
		}
		schedule() // the running thread stays runnable: round robin
		deliverSignals(f)
		return
	}
	// An exception. In user code it becomes the signal Linux sends (Go turns
	// a SIGSEGV into a nil-dereference panic); in the kernel it stops the
	// machine with a report.
	sig, code, addr := uintptr(0), int32(0), uint64(f.rip)
	switch f.vector {
	case 14: // #PF
		sig, code, addr = linux.SIGSEGV, linux.SEGV_MAPERR, uint64(faultAddr())
		if f.errcode&1 == 0 && (lazyFault(uintptr(addr)) || fmapFault(uintptr(addr))) {
			return // demand paging: the page is there now
		}
		if f.errcode&1 != 0 { // present: a protection fault
			code = linux.SEGV_ACCERR
		}
		if fmapAt(uintptr(addr)) >= 0 { // a shared file mapping past the file's end
			sig, code = linux.SIGBUS, linux.BUS_ADRERR
		}
	case 13, 12: // #GP, #SS: non-canonical addresses among others
		sig, addr = linux.SIGSEGV, 0
	case 0, 16, 19: // #DE, #MF, #XM
		sig = linux.SIGFPE
	case 6: // #UD
		sig = linux.SIGILL
	case 1, 3: // #DB, #BP
		sig = linux.SIGTRAP
	case 17: // #AC
		sig = linux.SIGBUS
	}
	inKernel := uintptr(f.rsp) < userBase
	if debugger && !inKernel && (f.vector == 1 || f.vector == 3) {
		why := uint64(abi.DebugBreak)
		if f.vector == 1 {
			why = abi.DebugStep
		}
		debugTrap(f, why)
		return
	}
	if sig == 0 || inKernel {
		for {
			hcall(abi.HcFault, uint64(uintptr(unsafe.Pointer(f))), addr)
		}
	}
	forceSignal(f, sig, code, addr)
}
