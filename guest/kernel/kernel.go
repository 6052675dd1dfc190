// Package kernel is the Unigo kernel: it is linked into the user's program by
// `unigo build` and answers the Linux system calls the Go runtime makes.
//
// The boot path is entry (CPL 0, once) → start0 (CPL 3) → kinit → the Go
// runtime's own Linux entry, _rt0_amd64_linux. From then on the runtime runs
// as on Linux and makes real SYSCALL instructions, which land in syscallEntry.
//
// Trap context. Everything reached from syscallEntry runs before the calling
// thread is back in user mode: it runs on a per-thread kernel stack with a
// kernel g (kgs) whose stack bounds are that kernel stack, it is //go:nosplit,
// it does not allocate, and it stores no pointers into Go memory (state is kept
// in static arrays and uintptrs), because write barriers may run with no P.
package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// Tunables.
const (
	maxThreads = 64
	kstackSize = 32 << 10
	stackGuard = 928 // the runtime's StackGuard on linux/amd64: a kernel g's stack.lo + this
	doorbell   = abi.DoorbellAddr
)

// kg is the part of a runtime g that compiled code reads: the stack bounds
// checked by function prologues (runtime/runtime2.go, type g and type stack).
// The tail pads it to more than a g's size in case the runtime looks further.
type kg struct {
	lo, hi         uintptr
	guard0, guard1 uintptr
	_              [96]uintptr
}

var (
	// kstack0 is thread slot 0's kernel stack, the one the kernel boots on;
	// the other slots' stacks, and the exception stack, are taken from RAM
	// as they are first needed (kstackAlloc).
	kstack0 [kstackSize]byte
	kgs     [maxThreads]kg
	ktls    [maxThreads][2]uintptr // [0] = &kgs[i]; FS base = &ktls[i][1]

	// State of the running thread read by the assembly entry and exit.
	kstackTop  uintptr // top of its kernel stack
	kernelFS   uintptr // its kernel TLS
	userFS     uintptr // its user FS base
	handlerCPL uint8   // CPL of the syscall handler: 0 architecturally, 3 on paging-based KVMs

	debug    bool // BootFlagDebug
	debugger bool // BootFlagDebugger: the monitor's debugger takes user #BP and #DB

)

// processStackSize is the address space of the first thread's process stack,
// which holds argc, argv, envp and auxv; its pages are backed as touched.
const processStackSize = 256 << 10

// Implemented in cpu_amd64.s.
func entry()
func start0()
func syscallEntry()
func sysexit()
func intrCommon()
func intrNative()
func intrExit()

//go:noescape
func intrStubs(pcs *[nIntrStubs]uintptr)
func sysexitPC() uintptr
func softEntryPC() uintptr

//go:noescape
func swtch(save *uintptr, sp, fs uintptr)
func hypercall(nr uintptr)
func load64(addr uintptr) uint64

// kptr is kernel address a, memory outside the Go heap (a kernel stack, a
// kernel table), as a pointer: the conversion is done in assembly, where
// vet's rule for uintptr-to-pointer conversions, made for the heap, does not
// look.
func kptr(a uintptr) unsafe.Pointer
func store64(addr uintptr, v uint64)
func xchg64(addr uintptr, v uint64) uint64
func wrmsr(msr uint32, v uint64)
func memclr(addr, n uintptr)
func memmove(dst, src, n uintptr)
func rdtsc() uint64
func spinPause()
func ioLoad8(addr uintptr) uint8
func ioLoad16(addr uintptr) uint16
func ioStore16(addr uintptr, v uint16)
func xgetbv() uint64
func rdrand() (v uint64, ok bool)
func cpuid(leaf, sub uint32) (a, b, c, d uint32)
func invlpg(va uintptr)
func invlpgAX()
func readCR2() uintptr
func imageEnd() uintptr
func imageText() uintptr

// GDT in Linux's layout (arch/x86/include/asm/segment.h), which paging-based
// KVMs expect of a guest: selectors for SYSCALL/SYSRET come from STAR.
const (
	gdtEntries    = 10
	selKernelCode = 0x10
	selKernelData = 0x18
	selUser32Code = 0x23
	selUserData   = 0x2b
	selUserCode   = 0x33
	selTSS        = 0x40 // two slots
)

var (
	gdt = [gdtEntries]uint64{
		0,
		0x00cf9b000000ffff, // 0x08 kernel 32-bit code (unused)
		0x00af9b000000ffff, // 0x10 kernel 64-bit code: P, DPL 0, L
		0x00cf93000000ffff, // 0x18 kernel data
		0x00cffb000000ffff, // 0x20 user 32-bit code (SYSRET base)
		0x00cff3000000ffff, // 0x28 user data: P, DPL 3
		0x00affb000000ffff, // 0x30 user 64-bit code: P, DPL 3, L
		0,
		0, 0, // 0x40 TSS, written by entry
	}
	gdtr [2]uint64 // limit (16 bits) then base (64 bits), written by entry

	// tss is the 64-bit TSS (SDM Vol. 3A §8.7): only RSP0, the kernel stack
	// interrupts from CPL 3 land on, is used. 104 bytes, RSP0 at byte 4.
	tss [26]uint32
)

// kinit sets up the kernel on thread 0 and returns the stack pointer the Go
// runtime starts with. It runs at CPL 3 before the runtime is initialized.
//
//go:nosplit
func kinit(bootInfo uintptr) uintptr {
	pvhEntryAddr = pvhEntryPC()
	gatesAt = gatesPC()
	if pvhStartInfo != 0 {
		bootInfo = pvhBootInfo(pvhStartInfo)
	}
	if load64(bootInfo+abi.BiMagic) != abi.BootMagic || uint32(load64(bootInfo+abi.BiVersion)) != abi.Version {
		fatal("boot info has a wrong magic or version")
	}
	debug = load64(bootInfo+abi.BiFlags)&abi.BootFlagDebug != 0
	debugger = !pvh && load64(bootInfo+abi.BiFlags)&abi.BootFlagDebugger != 0
	irqEvents = !pvh && load64(bootInfo+abi.BiFlags)&abi.BootFlagIRQEvent != 0
	if !pvh {
		cmdlineDevices(uintptr(load64(bootInfo + abi.BiCmdline)))
	}
	resolvConfFrom()
	khz := load64(bootInfo + abi.BiTSCkHz)
	if k := monitorKvmclockKHz(load64(bootInfo + abi.BiFlags)); k != 0 {
		if debug {
			debugClock(k, khz)
		}
		khz = k
	}
	clockInit(load64(bootInfo+abi.BiWallNs), load64(bootInfo+abi.BiTSC), khz)
	memInit(bootInfo, !pvh || pvhLowFree, pvh)
	ktabInit()
	fdInit()
	tmpInit()
	blkInit()
	p9Mount()
	volMountAll()
	startCwd()
	trapInit()
	threadInit()
	if pvh {
		lapicTimerStart()
		if debug {
			pvhReport(load64(bootInfo + abi.BiTSCkHz))
		}
	}
	sp := buildProcessStack(bootInfo, vdsoInit())
	if sp == 0 {
		fatal("no memory for the process stack: give the guest more memory (unigo run -m) or fewer arguments")
	}
	return sp
}

// buildProcessStack lays out argc, argv, envp and auxv at the top of the
// first thread's stack as Linux does at exec (System V AMD64 ABI §3.4.1). The
// stack is user memory, like every stack user code runs on, so that the vCPU
// runs kernel code exactly when RSP is below userBase (abi.CsKstacksLo). The
// strings stay where the monitor put them, in memory the kernel never reuses.
// It returns the stack pointer, 0 when memory or address space ran out.
//
//go:nosplit
func buildProcessStack(bootInfo, vdso uintptr) uintptr {
	argc := uintptr(uint32(load64(bootInfo + abi.BiArgc)))
	envc := uintptr(uint32(load64(bootInfo + abi.BiEnvc)))
	str := uintptr(load64(bootInfo + abi.BiStrings))
	strEnd := str + uintptr(load64(bootInfo+abi.BiStrLen))

	base := vaAlloc(0, processStackSize)
	top := base + processStackSize
	random := top - 16

	_, _, _, hwcap := cpuid(1, 0)
	auxv := [...]uintptr{
		linux.AT_SYSINFO_EHDR, vdso,
		linux.AT_PAGESZ, abi.PageSize,
		linux.AT_CLKTCK, 100,
		linux.AT_HWCAP, uintptr(hwcap),
		linux.AT_SECURE, 0,
		linux.AT_RANDOM, random,
		linux.AT_NULL, 0,
	}
	words := 1 + argc + 1 + envc + 1 + uintptr(len(auxv))
	sp := (random - words*8) &^ 15
	if base == 0 || sp <= base || !vaReserve(base, top) ||
		!populate(sp&^(pageSize-1), top, false) || !lazyAdd(base, sp&^(pageSize-1)) {
		return 0
	}
	r0, _ := rdrand()
	r1, _ := rdrand()
	store64(random, r0)
	store64(random+8, r1)
	p := sp
	push := func(v uintptr) { store64(p, uint64(v)); p += 8 }
	// next returns the string at s and moves s past its NUL.
	s := str
	next := func() uintptr {
		start := s
		for s < strEnd && byte(load64(s)) != 0 {
			s++
		}
		s++
		return start
	}
	push(argc)
	for i := uintptr(0); i < argc; i++ {
		push(next())
	}
	cmdlineLen = int(min(s-str, uintptr(len(cmdline))))
	memmove(uintptr(unsafe.Pointer(&cmdline[0])), str, uintptr(cmdlineLen))
	push(0)
	for i := uintptr(0); i < envc; i++ {
		push(next())
	}
	push(0)
	for _, v := range auxv {
		push(v)
	}
	return sp
}
