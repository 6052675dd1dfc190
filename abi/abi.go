// Package abi is the contract between a Unigo image and the monitor that boots
// it: the ABI version, the guest-physical memory map, the boot-info block and
// the hypercalls. The guest kernel and the host monitor both import it; it
// imports nothing, so it costs an image almost no bytes.
//
// Entry contract (64-bit boot): the monitor loads the ELF's PT_LOAD segments at
// their physical addresses and starts the vCPU at the ELF entry point in 64-bit
// long mode, CPL 0, interrupts off, with
//
//	CR3 = PML4Addr: RAM identity-mapped with 2 MiB pages (U/S and R/W set),
//	     except page 0, plus the hypercall doorbell page
//	RDI = BootInfoAddr, RSP = 0 (the kernel brings its own stack)
//	CR0.PG/PE/MP/NE/WP, CR4.PAE/OSFXSR/OSXMMEXCPT (+OSXSAVE, FSGSBASE where
//	present), EFER.LME/LMA/SCE, XCR0 = the state components the monitor saves.
package abi

// Version is the ABI version. The monitor refuses an image whose Unigo note
// carries another version.
const Version = 1

// The ELF note that marks a Unigo image: name NoteName, type NoteType, and a
// descriptor of two 32-bit words: the ABI version and flags (NoteFlag*),
// whose high half (from NoteHoleShift) is the hole start in 2 MiB units: the
// address from which the image holds only zeroed objects the kernel does not
// touch (0: none). The own monitor leaves RAM out there and says so in the
// boot info's memory map; the kernel backs the pages touched.
const (
	NoteName = "Unigo"
	NoteType = 0x554e4947 // "UNIG"

	NoteFlagNet     = 1 << 0 // the image has the network component: give it a network device
	NoteFlagDrivers = 1 << 1 // the kernel has the share (9P) and disk (virtio-blk) drivers
	NoteHoleShift   = 16     // flags >> NoteHoleShift: the hole start / 2 MiB
)

// Guest-physical memory map of the 64-bit boot (all below 1 MiB except RAM):
//
//	0x0000_0000  page 0, not mapped (nil dereferences fault)
//	0x0000_1000  boot info, 4 KiB
//	0x0000_2000  hypercall page: arguments and results, 4 KiB
//	0x0000_3000  PML4; 0x4000 PDPT; 0x5000..0x8fff PD for 0-4 GiB; 0x9000 PT for 0-2 MiB;
//	             0xa000, 0xb000 PTs for the 2 MiB pages the image's read-only part shares with RAM
//	0x0000_c000  the guest's system call counters, 8 KiB (own monitor)
//	0x0001_0000  boot strings (args, env, command line), up to 64 KiB
//	0x0002_0000  hypercall bounce buffer, 64 KiB
//	0x0010_0000  free RAM up to the image
//	0x0040_0000  the image (the Go linker's default base), then free RAM to MemSize
//	0xc000_0000  hypercall doorbell: no RAM behind it, so a write exits to the monitor
const (
	BootInfoAddr    = 0x1000
	HcPageAddr      = 0x2000
	PML4Addr        = 0x3000
	PDPTAddr        = 0x4000
	PDAddr          = 0x5000 // four pages, one per GiB
	PT0Addr         = 0x9000
	PTROMAddr       = 0xa000 // two pages
	SyscallsAddr    = 0xc000 // SyscallSlots u64 counters: the kernel counts each system call, the monitor reads them
	StringsAddr     = 0x10000
	StringsSize     = 0x10000
	HcBufAddr       = 0x20000
	HcBufSize       = 0x10000
	FreeLowAddr     = 0x100000
	ImageMinAddr    = 0x100000
	DoorbellAddr    = 0xc0000000
	VirtioNetAddr   = 0xc0001000   // the own monitor's virtio-mmio network device, one page
	VirtioNetIRQ    = 5            // its interrupt line, as the command line names it (delivered as DeviceVector)
	Virtio9pAddr    = 0xc0002000   // the own monitor's virtio-mmio 9P devices, a page each from here
	Virtio9pIRQ     = 6            // the first one's line (the driver polls; it is never raised)
	MaxShares       = 8            // host directory shares (unigo run -v)
	VirtioBlkAddr   = 0xc000a000   // the own monitor's virtio-mmio block devices, a page each from here
	VirtioBlkIRQ    = 14           // the first one's line (the driver polls; it is never raised)
	MaxDisks        = 4            // block devices (unigo run --disk): /dev/vda to /dev/vdd
	VirtioVsockAddr = 0xc000e000   // the own monitor's virtio-mmio socket device (forwarded TCP connections), one page
	VirtioVsockIRQ  = 18           // its line, as the command line names it (delivered as DeviceVector, as the network's)
	VsockHostCID    = 2            // VMADDR_CID_HOST: the monitor's end of the socket device
	VsockGuestCID   = 3            // the guest's context ID, in the device's configuration
	MaxMemSize      = DoorbellAddr // RAM ends below the doorbell
	MinMemSize      = 4 << 20
	PageSize        = 4096
	LargePageSize   = 2 << 20
)

// The system call counters at SyscallsAddr: one per Linux number below
// SyscallSlotGated, one for the network component's private calls, one for
// every other number; and one of the calls that entered the kernel through a
// gate by a jump (GatesSize), counted besides.
const (
	SyscallSlots     = 1024
	SyscallSlotGated = SyscallSlots - 3
	SyscallSlotNet   = SyscallSlots - 2
	SyscallSlotOther = SyscallSlots - 1
)

// Hypercalls. The guest stores the arguments in the hypercall page and writes
// the hypercall number to DoorbellAddr with one 8-byte store; the monitor
// handles it before the store completes and leaves the result in HcRet.
const (
	HcExit          = 1 // A0 = exit status. Does not return.
	HcConsoleWrite  = 2 // A0 = fd (1 or 2), A1 = length of bytes at HcBufAddr. Ret = bytes written.
	HcHalt          = 3 // A0 = nanoseconds to wait at most (0 = no deadline). Ret = 1 if the device interrupted (take it now), else 0.
	HcUnimplemented = 4 // A0 = system call number the kernel does not implement (debug only).
	HcFatal         = 5 // A1 = length of a message at HcBufAddr. The kernel gave up. Does not return.
	HcFault         = 6 // A0 = GPA of the faulting context (Frame* words), A1 = faulting address. Does not return.
	HcDebug         = 7 // A0 = Debug* why, A1 = count of DebugThread entries at HcBufAddr, the stopped one first. Returns when the debugger resumes.
)

// With BootFlagDebugger, a breakpoint (#BP) or single-step trap (#DB) in user
// code, or the monitor's request (CsDebugStop), stops the guest in HcDebug:
// the monitor's debugger reads and changes the threads' user contexts in
// guest memory, and sets RFLAGS.TF in one to step it.
const (
	DebugBreak = 1 // INT3: the context's RIP is after it
	DebugStep  = 2 // a single step (#DB)
	DebugStop  = 3 // the monitor asked

	// A DebugThread entry: the thread's id, the GPA of its user context
	// (Frame* words; the kernel resumes it from there), its FS base.
	DtTID    = 0
	DtFrame  = 8
	DtFSBase = 16
	DtSize   = 24
)

// Frame is the register context the kernel saves on a trap, in its memory
// order (64-bit words); HcFault points at one.
const (
	FrameRAX = iota
	FrameRBX
	FrameRCX
	FrameRDX
	FrameRSI
	FrameRDI
	FrameRBP
	FrameR8
	FrameR9
	FrameR10
	FrameR11
	FrameR12
	FrameR13
	FrameR14
	FrameR15
	FrameVector
	FrameErrcode
	FrameRIP
	FrameCS
	FrameRFLAGS
	FrameRSP
	FrameSS
	FrameWords
)

// TimerVector is the interrupt vector the monitor injects on each tick;
// DeviceVector the one of a device that needs the driver.
const (
	TimerVector  = 32
	DeviceVector = 33
)

// The CPU state block, in the upper half of the hypercall page, where the
// kernel publishes what the monitor needs to deliver the timer interrupt on a
// paging-based KVM. There the program runs in the context a SYSCALL lands in,
// with the guest's interrupt flag off, so KVM never injects; instead, when the
// vCPU is outside the kernel stacks the monitor writes the IRET frame the CPU
// would have pushed (vector, 0, RIP, CS, RFLAGS, RSP, SS) below the current
// kernel stack top and moves RIP to the soft-interrupt entry.
const (
	CPUStateAddr = HcPageAddr + 0x800

	CsFlags       = 0  // u64 CsFlag*
	CsSoftEntry   = 8  // u64 address that takes a soft interrupt frame at RSP
	CsKstackTopVA = 16 // u64 address of the word holding the current kernel stack top
	CsKstacksLo   = 24 // u64 the kernel stacks: the vCPU runs kernel code
	CsKstacksHi   = 32 //     exactly when RSP is in [CsKstacksLo, CsKstacksHi)
	CsUserCS      = 40 // u64 selectors for the frame
	CsUserSS      = 48
	CsHostSignals = 56 // u64 signals the host sends the process, bit sig-1: the monitor
	//                    ORs bits in atomically and wakes a halted guest; the kernel
	//                    takes them with an exchange at each tick and after each halt
	CsDebugStop = 64 // u64 set to 1 by the monitor to stop the guest for its debugger
	//                  (BootFlagDebugger); taken as CsHostSignals is
	CsViaGate = 72 // u64 set to 1 by a system-call gate that enters the kernel by a jump
	//                (GatesSize); the kernel counts the call and clears it

	// CsFlagSoftIntr: deliver the timer by soft interrupts. The kernel sets
	// it at its first system call where the handler runs at RPL 3; from
	// then on the system-call gates (GatesSize) enter it by a jump.
	CsFlagSoftIntr = 1 << 0
)

// GatesSize is the room the kernel keeps in its code for system-call gates
// (guest/kernel.syscallGates): unigo build moves each SYSCALL instruction of
// an image into a gate there, which enters the kernel by a jump where its
// handler runs at RPL 3 (CsFlagSoftIntr) and executes the SYSCALL elsewhere.
const GatesSize = 4096

// KvmclockAddr is where the own monitor has KVM keep the guest's kvmclock
// (pvclock_vcpu_time_info, 32 bytes; MSR_KVM_SYSTEM_TIME_NEW in Linux's
// Documentation/virt/kvm/x86/msr.rst) when BootFlagKvmclock is set: in the
// hypercall page, after the CPU state block.
const KvmclockAddr = HcPageAddr + 0xf00

// Offsets in the hypercall page, in bytes.
const (
	HcA0  = 0
	HcA1  = 8
	HcA2  = 16
	HcA3  = 24
	HcRet = 56
)
