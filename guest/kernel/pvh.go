package kernel

import "unigo.dev/unigo/abi"

// The PVH platform: booted by a standard hypervisor (QEMU, Firecracker,
// cloud-hypervisor) through the PVH entry, not by Unigo's monitor. The
// kernel builds its own boot info from the hvm_start_info, and the
// hypercalls become the platform's devices: the COM1 16550 UART for the
// console, QEMU's isa-debug-exit for the exit status, a calibrated TSC.
// The timer is the local APIC's, periodic, on the same vector the monitor
// injects.

func pvhEntry()
func pvhEntryPC() uintptr
func outb(port uint16, v uint8)
func inb(port uint16) uint8
func outl(port uint16, v uint32)
func outw(port uint16, v uint16)
func inw(port uint16) uint16
func inl(port uint16) uint32
func store8(addr uintptr, v uint8)

var (
	pvhStartInfo uintptr     // set by pvhEntry
	iretFlags    uint64  = 2 // RFLAGS of the first CPL 3 code; pvhEntry adds IOPL 3
	pvh          bool
	pvhPage0     bool    // page 0 is still mapped (pvh32.asm)
	com2         bool    // stderr has its own UART
	ctl          bool    // the control channel is there (abi.CtlPort)
	pvhEntryAddr uintptr // keeps pvhEntry linked: its address goes in the PVH note
	pvhLowFree   bool    // the firmware's memory map has RAM from abi.FreeLowAddr to the image
)

// hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
const (
	hvmStartMagic  = 0x336ec578
	hvmCmdline     = 24 // u64 physical address of the command line
	hvmRSDP        = 32 // u64 physical address of the ACPI RSDP (0: none given)
	hvmMemmap      = 40 // u64 physical address of the memory map (version 1)
	hvmMemmapCount = 48 // u32
	hvmMemmapEntry = 24 // {u64 addr, u64 size, u32 type, u32 reserved}
)

// pvhBootInfo writes the boot info at abi.BootInfoAddr from the hvm_start_info
// at si, as the monitor would, and returns its address.
//
//go:nosplit
func pvhBootInfo(si uintptr) uintptr {
	pvh, pvhPage0 = true, true
	// Firmware (SeaBIOS on q35 and pc) leaves the 8259 PICs with the timer
	// on vectors 8-15, where it would look like exceptions: mask them all.
	outb(0x21, 0xff)
	outb(0xa1, 0xff)
	com2 = uartPresent(com2Port)
	ctl = uartPresent(abi.CtlPort)
	if uint32(load64(si)) != hvmStartMagic {
		fatal("PVH: no hvm_start_info")
	}
	// Read everything from the start info first: firmware may have put it,
	// the memory map and the command line in the pages the boot info and
	// the hypercall page take (SeaBIOS's PVH option ROM does).
	var mem uintptr
	mm := uintptr(load64(si + hvmMemmap))
	for i := uintptr(0); i < uintptr(uint32(load64(si+hvmMemmapCount))); i++ {
		e := mm + i*hvmMemmapEntry
		if uint32(load64(e+16)) != abi.MemRAM {
			continue
		}
		start := uintptr(load64(e))
		end := start + uintptr(load64(e+8))
		if end <= abi.MaxMemSize && end > mem {
			mem = end
		}
		if start <= abi.FreeLowAddr && end >= imageStart() {
			pvhLowFree = true // memInit may use the RAM below the image
		}
	}
	argc, envc, strLen, dbg := pvhCmdline(uintptr(load64(si + hvmCmdline)))
	acpiInit(load64(si + hvmRSDP))
	pciScan()
	khz := tscKHz()
	wall := uint64(rtcNow()) * 1e9

	bi := uintptr(abi.BootInfoAddr)
	memclr(bi, abi.BiSize)
	store64(bi+abi.BiMagic, abi.BootMagic)
	store64(bi+abi.BiVersion, abi.Version)
	if dbg {
		store64(bi+abi.BiFlags, abi.BootFlagDebug)
	}
	store64(bi+abi.BiMemSize, uint64(mem&^(abi.LargePageSize-1)))
	store64(bi+abi.BiTSCkHz, khz)
	store64(bi+abi.BiWallNs, wall)
	store64(bi+abi.BiTSC, rdtsc())
	store64(bi+abi.BiArgc, argc|envc<<32)
	store64(bi+abi.BiStrings, abi.StringsAddr)
	store64(bi+abi.BiStrLen, strLen)
	return bi
}

// Local APIC registers, xAPIC mode, memory-mapped (SDM Vol. 3A §12.4.1,
// Table 12-1); the identity map covers them.
const (
	lapicBase     = 0xfee00000
	LAPIC_EOI     = 0x0b0
	LAPIC_SVR     = 0x0f0
	LAPIC_LVTT    = 0x320
	LAPIC_TICR    = 0x380 // initial count
	LAPIC_TCCR    = 0x390 // current count
	LAPIC_TDCR    = 0x3e0 // divide configuration
	SVR_ENABLE    = 1 << 8
	LVTT_PERIODIC = 1 << 17
	LVT_MASKED    = 1 << 16
	TDCR_DIV1     = 0xb
)

var pvhTimer bool // the local APIC timer runs (EOI needed)

func stiHlt()
func load32(addr uintptr) uint32
func store32(addr uintptr, v uint32)

//go:nosplit
func lapicWrite(reg uintptr, v uint32) { store32(lapicBase+reg, v) }

//go:nosplit
func lapicRead(reg uintptr) uint32 { return load32(lapicBase + reg) }

// lapicTimerStart calibrates the local APIC timer against the TSC and starts
// it periodic at the monitor's tick, on abi.TimerVector.
//
//go:nosplit
func lapicTimerStart() {
	lapicWrite(LAPIC_SVR, SVR_ENABLE|0xff)
	lapicWrite(LAPIC_TDCR, TDCR_DIV1)
	lapicWrite(LAPIC_LVTT, LVT_MASKED|abi.TimerVector)
	lapicWrite(LAPIC_TICR, 0xffffffff)
	// Counted over a fifth of a tick: every boot waits for it, and the
	// TSC's clock makes even that short a count good to a fraction of a
	// percent, more than a tick needs (the clocks do not depend on it).
	t0 := nanotime()
	for nanotime()-t0 < 2_000_000 {
	}
	n := 0xffffffff - lapicRead(LAPIC_TCCR)
	t1 := nanotime()
	perTick := uint32(uint64(n) * 10_000_000 / uint64(t1-t0)) // counts in 10 ms, the tick
	if perTick == 0 {
		return // no working local APIC: no timer, as before
	}
	lapicWrite(LAPIC_LVTT, LVTT_PERIODIC|abi.TimerVector)
	lapicWrite(LAPIC_TICR, perTick)
	pvhTimer = true
}

// pvhUnmapPage0 takes page 0 away, so that nil dereferences fault, once the
// start info has been read. It runs in the first system call: INVLPG needs
// ring 0, where the handler runs on this platform.
//
//go:nosplit
func pvhUnmapPage0() {
	pvhPage0 = false
	store64(abi.PT0Addr, 0)
	invlpg(0)
}

// pvhCmdline turns the command line into args and environment at
// abi.StringsAddr: space separated words "a:ARG" and "e:KEY=VAL",
// percent-encoded, and "debug". It probes the virtio-mmio devices named
// there too.
//
//go:nosplit
func pvhCmdline(cmd uintptr) (argc, envc, strLen uint64, debug bool) {
	out := uintptr(abi.StringsAddr)
	end := out + abi.StringsSize - 1
	for pass := 0; pass < 2; pass++ { // args first, then the environment
		p := cmd
		for cmd != 0 {
			for byte(load64(p)) == ' ' {
				p++
			}
			c := byte(load64(p))
			if c == 0 {
				break
			}
			kind := c
			start := p
			for c := byte(load64(p)); c != 0 && c != ' '; c = byte(load64(p)) {
				p++
			}
			if p-start == 5 && kind == 'd' && pass == 0 {
				debug = true
				continue
			}
			if kind == 'v' && pass == 0 {
				virtioMMIOWord(start, p)
				continue
			}
			if kind == 'm' && pass == 0 {
				mountWord(start, p)
				continue
			}
			if kind == 'c' && pass == 0 {
				cwdWord(start, p)
				continue
			}
			if kind == 'n' && pass == 0 && p-start > 4 && byte(load64(start+3)) == '.' {
				netConfigWord(start, p) // net.ip=, net.gw=, net.dns=
				continue
			}
			if p-start < 2 || byte(load64(start+1)) != ':' || (pass == 0) != (kind == 'a') || (kind != 'a' && kind != 'e') {
				continue
			}
			for q := start + 2; q < p && out < end; q++ {
				b := byte(load64(q))
				if b == '%' && q+2 < p {
					b = unhex(byte(load64(q+1)))<<4 | unhex(byte(load64(q+2)))
					q += 2
				}
				putByte(out, b)
				out++
			}
			putByte(out, 0)
			out++
			if pass == 0 {
				argc++
			} else {
				envc++
			}
		}
	}
	return argc, envc, uint64(out - abi.StringsAddr), debug
}

//go:nosplit
func putByte(a uintptr, b byte) {
	v := load64(a &^ 7)
	sh := 8 * (a & 7)
	store64(a&^7, v&^(0xff<<sh)|uint64(b)<<sh)
}

//go:nosplit
func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}
