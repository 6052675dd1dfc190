package kernel

// ACPI, read once at boot on the PVH platform (ACPI 6.5 specification, §5.2):
// the RSDP from the start info or the BIOS areas, then the XSDT (or RSDT)
// and the three tables the kernel uses: the FADT for the PM timer and soft-off,
// the DSDT's \_S5 object for the sleep type of soft-off, and the MCFG for
// PCI Express memory-mapped configuration space. Everything needed later is
// copied into variables: the tables' memory is not the kernel's to keep.

var acpi struct {
	found      bool
	pmTimer    uint16 // PM_TMR_BLK I/O port; 0: none
	pmTimer32  bool   // TMR_VAL_EXT: 32-bit counter, else 24
	pm1aCnt    uint16 // PM1a_CNT_BLK I/O port
	pm1bCnt    uint16
	sleepCtl   uint64 // hardware-reduced ACPI: SLEEP_CONTROL_REG (GAS address)
	sleepCtlIO bool   // sleepCtl is an I/O port, else memory
	slpTypA    uint8  // \_S5 sleep types; valid when s5
	slpTypB    uint8
	s5         bool
	ecamBase   uint64 // MCFG segment 0; 0: none
	ecamBus0   uint8
	ecamBus1   uint8
}

// ACPI table layouts (ACPI 6.5 §5.2.5-§5.2.9, Table 5.9; PCI Firmware
// Specification 3.3 §4.1.2 for the MCFG).
const (
	sdtHeaderLen     = 36
	fadtDSDT         = 40  // u32
	fadtSMICmd       = 48  // u32
	fadtACPIEnable   = 52  // u8
	fadtPM1aCnt      = 64  // u32
	fadtPM1bCnt      = 68  // u32
	fadtPMTmr        = 76  // u32
	fadtFlags        = 112 // u32
	fadtXDSDT        = 140 // u64
	fadtSleepCtl     = 244 // generic address structure, 12 bytes
	fadtFlagTmrExt   = 1 << 8
	fadtFlagHWReduce = 1 << 20
	gasSpaceIO       = 1
	pm1SCIEn         = 1 << 0
	pm1SlpEn         = 1 << 13 // SLP_TYP in bits 10-12
	sleepCtlSlpEn    = 1 << 5  // SLP_TYP in bits 2-4 (§4.8.3.7)
	pmTimerHz        = 3579545
)

//go:nosplit
func load8(a uintptr) uint8 { return uint8(load64(a&^7) >> (8 * (a & 7))) }

//go:nosplit
func load16u(a uintptr) uint16 { return uint16(load8(a)) | uint16(load8(a+1))<<8 }

//go:nosplit
func load32u(a uintptr) uint32 { return uint32(load16u(a)) | uint32(load16u(a+2))<<16 }

//go:nosplit
func load64u(a uintptr) uint64 { return uint64(load32u(a)) | uint64(load32u(a+4))<<32 }

// acpiSum reports whether the n bytes at a add up to 0 modulo 256.
//
//go:nosplit
func acpiSum(a, n uintptr) bool {
	var s uint8
	for i := uintptr(0); i < n; i++ {
		s += load8(a + i)
	}
	return s == 0
}

//go:nosplit
func sig4(a uintptr, s string) bool {
	return load8(a) == s[0] && load8(a+1) == s[1] && load8(a+2) == s[2] && load8(a+3) == s[3]
}

// acpiTable returns the table at a if it is plausible: below the identity
// map's end, of sane length, with a good checksum.
//
//go:nosplit
func acpiTable(a uint64) (uintptr, uintptr) {
	if a == 0 || a >= 4<<30-sdtHeaderLen {
		return 0, 0
	}
	n := uintptr(load32u(uintptr(a) + 4))
	if n < sdtHeaderLen || n > 1<<20 || a+uint64(n) > 4<<30 || !acpiSum(uintptr(a), n) {
		return 0, 0
	}
	return uintptr(a), n
}

// acpiFindRSDP returns the RSDP: from the start info, else the first KiB of
// the EBDA or the BIOS area 0xe0000-0xfffff, on 16-byte boundaries (§5.2.5.1).
//
//go:nosplit
func acpiFindRSDP(fromStartInfo uint64) uintptr {
	ok := func(a uintptr) bool { return sig4(a, "RSD ") && sig4(a+4, "PTR ") && acpiSum(a, 20) }
	if fromStartInfo != 0 && fromStartInfo < 1<<32 && ok(uintptr(fromStartInfo)) {
		return uintptr(fromStartInfo)
	}
	ebda := uintptr(load16u(0x40e)) << 4
	if ebda >= 0x80000 && ebda < 0xa0000 {
		for a := ebda; a < ebda+1024; a += 16 {
			if ok(a) {
				return a
			}
		}
	}
	for a := uintptr(0xe0000); a < 0x100000; a += 16 {
		if ok(a) {
			return a
		}
	}
	return 0
}

// acpiInit reads the tables. It runs while page 0 is still mapped.
//
//go:nosplit
func acpiInit(rsdpHint uint64) {
	rsdp := acpiFindRSDP(rsdpHint)
	if rsdp == 0 {
		return
	}
	root, n, wide := uintptr(0), uintptr(0), false
	if load8(rsdp+15) >= 2 {
		root, n = acpiTable(load64u(rsdp + 24))
		wide = true
	}
	if root == 0 {
		root, n = acpiTable(uint64(load32u(rsdp + 16)))
		wide = false
	}
	if root == 0 {
		return
	}
	acpi.found = true
	step := uintptr(4)
	if wide {
		step = 8
	}
	for e := root + sdtHeaderLen; e+step <= root+n; e += step {
		a := uint64(load32u(e))
		if wide {
			a = load64u(e)
		}
		t, tn := acpiTable(a)
		switch {
		case t == 0:
		case sig4(t, "FACP"):
			acpiFADT(t, tn)
		case sig4(t, "MCFG") && tn >= sdtHeaderLen+8+16:
			acpiMCFG(t, tn)
		}
	}
}

//go:nosplit
func acpiFADT(t, n uintptr) {
	field32 := func(off uintptr) uint32 {
		if off+4 > n {
			return 0
		}
		return load32u(t + off)
	}
	flags := field32(fadtFlags)
	if flags&fadtFlagHWReduce != 0 && n >= fadtSleepCtl+12 {
		acpi.sleepCtl = load64u(t + fadtSleepCtl + 4)
		acpi.sleepCtlIO = load8(t+fadtSleepCtl) == gasSpaceIO
	} else {
		acpi.pm1aCnt = uint16(field32(fadtPM1aCnt))
		acpi.pm1bCnt = uint16(field32(fadtPM1bCnt))
		acpi.pmTimer = uint16(field32(fadtPMTmr))
		acpi.pmTimer32 = flags&fadtFlagTmrExt != 0
		// Hand the hardware from the firmware's SMM to the OS (§4.8.2.1):
		// some chipsets ignore sleep requests until SCI_EN is set.
		if smi, en := field32(fadtSMICmd), field32(fadtACPIEnable); smi != 0 && uint8(en) != 0 && acpi.pm1aCnt != 0 {
			if inw(acpi.pm1aCnt)&pm1SCIEn == 0 {
				outb(uint16(smi), uint8(en))
				for i := 0; i < 100_000 && inw(acpi.pm1aCnt)&pm1SCIEn == 0; i++ {
				}
			}
		}
	}
	dsdt := uint64(field32(fadtDSDT))
	if n >= fadtXDSDT+8 && load64u(t+fadtXDSDT) != 0 {
		dsdt = load64u(t + fadtXDSDT)
	}
	if d, dn := acpiTable(dsdt); d != 0 {
		acpiS5(d, dn)
	}
}

// acpiS5 finds the \_S5 package in the DSDT's AML (§7.4.2.5): NameOp '_S5_'
// PackageOp PkgLength NumElements, then SLP_TYPa and SLP_TYPb, each a
// ZeroOp, OneOp or BytePrefix constant (§20.2). Scanning for the name is
// what small kernels do instead of running an AML interpreter.
//
//go:nosplit
func acpiS5(d, n uintptr) {
	for a := d + sdtHeaderLen; a+12 < d+n; a++ {
		if load8(a) != 0x08 || !sig4(a+1, "_S5_") || load8(a+5) != 0x12 {
			continue
		}
		p := a + 6
		p += 1 + uintptr(load8(p)>>6) // PkgLength: bits 7-6 count the extra bytes
		p++                           // NumElements
		var v [2]uint8
		for i := range v {
			switch op := load8(p); op {
			case 0x00, 0x01:
				v[i] = op
				p++
			case 0x0a:
				v[i] = load8(p + 1)
				p += 2
			default:
				return
			}
		}
		acpi.slpTypA, acpi.slpTypB, acpi.s5 = v[0], v[1], true
		return
	}
}

//go:nosplit
func acpiMCFG(t, n uintptr) {
	e := t + sdtHeaderLen + 8 // the first allocation: segment 0 is all the kernel uses
	if load16u(e+8) != 0 {
		return
	}
	acpi.ecamBase = load64u(e)
	acpi.ecamBus0, acpi.ecamBus1 = load8(e+10), load8(e+11)
}

// acpiPowerOff enters S5, soft-off, if ACPI describes how; else it returns.
//
//go:nosplit
func acpiPowerOff() {
	if !acpi.s5 {
		return
	}
	switch {
	case acpi.sleepCtl != 0 && acpi.sleepCtlIO:
		outb(uint16(acpi.sleepCtl), acpi.slpTypA<<2|sleepCtlSlpEn)
	case acpi.sleepCtl != 0 && acpi.sleepCtl < 4<<30:
		store8(uintptr(acpi.sleepCtl), acpi.slpTypA<<2|sleepCtlSlpEn)
	case acpi.pm1aCnt != 0:
		outw(acpi.pm1aCnt, uint16(acpi.slpTypA)<<10|pm1SlpEn)
		if acpi.pm1bCnt != 0 {
			outw(acpi.pm1bCnt, uint16(acpi.slpTypB)<<10|pm1SlpEn)
		}
	}
}

// pmTimerRead returns the ACPI PM timer's count, 24 or 32 bits.
//
//go:nosplit
func pmTimerRead() uint32 {
	v := inl(acpi.pmTimer)
	if !acpi.pmTimer32 {
		v &= 0xffffff
	}
	return v
}
