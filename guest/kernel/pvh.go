package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
)

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

var (
	pvhStartInfo uintptr     // set by pvhEntry
	iretFlags    uint64  = 2 // RFLAGS of the first CPL 3 code; pvhEntry adds IOPL 3
	pvh          bool
	pvhPage0     bool    // page 0 is still mapped (pvh32.asm)
	com2         bool    // stderr has its own UART
	pvhEntryAddr uintptr // keeps pvhEntry linked: its address goes in the PVH note
)

// hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
const (
	hvmStartMagic  = 0x336ec578
	hvmCmdline     = 24    // u64 physical address of the command line
	hvmMemmap      = 40    // u64 physical address of the memory map (version 1)
	hvmMemmapCount = 48    // u32
	hvmMemmapEntry = 24    // {u64 addr, u64 size, u32 type, u32 reserved}
	comPort        = 0x3f8 // COM1: the console, stdout
	com2Port       = 0x2f8 // COM2: stderr where there is one
	debugExitPort  = 0xf4  // -device isa-debug-exit,iobase=0xf4
	pitHz          = 1193182
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
		end := uintptr(load64(e)) + uintptr(load64(e+8))
		if end <= abi.MaxMemSize && end > mem {
			mem = end
		}
	}
	argc, envc, strLen, dbg := pvhCmdline(uintptr(load64(si + hvmCmdline)))
	khz := pitCalibrate()
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
	t0 := nanotime()
	for nanotime()-t0 < 10_000_000 {
	}
	perTick := 0xffffffff - lapicRead(LAPIC_TCCR) // counts in 10 ms, the tick
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
// percent-encoded, and "debug".
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

// pitCalibrate measures the TSC against 10 ms of the 8254 PIT and returns
// its frequency in kHz. It polls channel 0's count (latched through the
// mode port), which needs no speaker port: microvm has none.
//
//go:nosplit
func pitCalibrate() uint64 {
	outb(0x43, 0x34) // channel 0, lobyte/hibyte, mode 2, binary
	outb(0x40, 0xff)
	outb(0x40, 0xff)
	prev := pitCount()
	t0 := rdtsc()
	var ticks uint64
	for ticks < pitHz/100 {
		c := pitCount()
		ticks += uint64(prev - c) // counts down; uint16 arithmetic wraps
		prev = c
	}
	return (rdtsc() - t0) * pitHz / ticks / 1000
}

//go:nosplit
func pitCount() uint16 {
	outb(0x43, 0x00) // latch channel 0
	lo := inb(0x40)
	return uint16(inb(0x40))<<8 | uint16(lo)
}

// rtcNow reads the CMOS real-time clock (MC146818) as Unix seconds.
//
//go:nosplit
func rtcNow() int64 {
	reg := func(r uint8) uint8 { outb(0x70, r); return inb(0x71) }
	for reg(0x0a)&0x80 != 0 { // update in progress
	}
	sec, min, hour := reg(0), reg(2), reg(4)
	day, mon, year := reg(7), reg(8), reg(9)
	if reg(0x0b)&0x04 == 0 { // BCD
		bcd := func(v uint8) uint8 { return v&0x0f + v>>4*10 }
		sec, min, day, mon, year = bcd(sec), bcd(min), bcd(day), bcd(mon), bcd(year)
		hour = bcd(hour&0x7f) | hour&0x80
	}
	if reg(0x0b)&0x02 == 0 && hour&0x80 != 0 { // 12-hour clock, PM
		hour = (hour&0x7f)%12 + 12
	}
	// Days from civil date (Howard Hinnant's algorithm), for years 2000-2099.
	y, m, d := int64(year)+2000, int64(mon), int64(day)
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	return days*86400 + int64(hour)*3600 + int64(min)*60 + int64(sec)
}

// pvhHcall does what the monitor does for hypercall nr, with the platform's
// devices.
//
//go:nosplit
func pvhHcall(nr uintptr, a0, a1 uint64) uint64 {
	switch nr {
	case abi.HcConsoleWrite:
		port := uint16(comPort)
		if a0 == 2 && com2 {
			port = com2Port
		}
		uartWriteTo(port, abi.HcBufAddr, uintptr(a1))
		return a1
	case abi.HcExit:
		pvhExit(uint32(a0))
	case abi.HcHalt:
		// HLT until the timer while a whole tick remains, then spin to the
		// deadline: the wait ends on time and costs the host little.
		if a0 == 0 && !pvhTimer {
			uartString("unigo: guest deadlock: every thread waits and nothing can wake one\n")
			pvhExit(134)
		}
		if a0 == 0 {
			stiHlt() // nothing to wait for but an interrupt
			return 0
		}
		for deadline := nanotime() + int64(a0); nanotime() < deadline; {
			if pvhTimer && deadline-nanotime() > 10_000_000 {
				stiHlt()
			}
		}
	case abi.HcUnimplemented:
		uartString("unigo: unimplemented system call returned ENOSYS\n")
	case abi.HcFatal:
		uartString("unigo: kernel: ")
		uartWrite(abi.HcBufAddr, uintptr(a1))
		uartString("\n")
		pvhExit(134)
	case abi.HcFault:
		uartString("unigo: CPU exception in kernel code\n")
		pvhExit(134)
	}
	return 0
}

// pvhExit ends the machine through QEMU's isa-debug-exit, whose exit status
// is code*2+1.
//
//go:nosplit
func pvhExit(code uint32) {
	if code > 126 {
		// isa-debug-exit makes QEMU exit with code*2+1: 7 bits.
		uartString("unigo: the exit status does not fit QEMU's isa-debug-exit; reported as 127\n")
		code = 127
	}
	outl(debugExitPort, code)
	for { // no isa-debug-exit device: stop here
	}
}

//go:nosplit
func uartWrite(buf, n uintptr) { uartWriteTo(comPort, buf, n) }

//go:nosplit
func uartWriteTo(port uint16, buf, n uintptr) {
	for i := uintptr(0); i < n; i++ {
		for inb(port+5)&0x20 == 0 { // THR empty
		}
		outb(port, byte(load64((buf+i)&^7)>>(8*((buf+i)&7))))
	}
}

// uartPresent reports whether a 16550 answers at port: its scratch
// register keeps what is written to it.
//
//go:nosplit
func uartPresent(port uint16) bool {
	outb(port+7, 0x5a)
	return inb(port+7) == 0x5a
}

//go:nosplit
func uartString(s string) {
	uartWrite(uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(len(s)))
}
