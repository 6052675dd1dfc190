package kernel

// Clocks of the PVH platform: the TSC's frequency, and the wall clock from
// the CMOS RTC. The TSC frequency comes from the first source that gives
// it: kvmclock under KVM (kvmclock.go), CPUID leaf 0x15 (TSC/crystal ratio and crystal frequency, SDM Vol. 2A
// CPUID), leaf 0x16 (base frequency), the hypervisor timing leaf 0x40000010
// (EAX = TSC kHz, as VMware, QEMU and others define it), else a measurement
// against the ACPI PM timer or the 8254 PIT over 10 ms.

const (
	pitHz           = 1193182
	calibrateMs     = 10
	hvTimingLeaf    = 0x40000010
	cpuidHypervisor = 1 << 31 // CPUID.1:ECX, "running under a hypervisor"
)

var tscSource string // how the TSC frequency was found, for --debug

// tscKHz returns the TSC frequency in kHz.
//
//go:nosplit
func tscKHz() uint64 {
	if khz := pvhKvmclockKHz(); khz != 0 {
		tscSource = "kvmclock"
		return khz
	}
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf >= 0x15 {
		den, num, crystal, _ := cpuid(0x15, 0)
		if den != 0 && num != 0 && crystal != 0 {
			tscSource = "CPUID 0x15"
			return uint64(crystal) * uint64(num) / uint64(den) / 1000
		}
	}
	if maxLeaf >= 0x16 {
		if base, _, _, _ := cpuid(0x16, 0); base != 0 {
			tscSource = "CPUID 0x16"
			return uint64(base) * 1000
		}
	}
	if _, _, c, _ := cpuid(1, 0); c&cpuidHypervisor != 0 {
		if hvMax, _, _, _ := cpuid(0x40000000, 0); hvMax >= hvTimingLeaf && hvMax < 0x40000100 {
			if khz, _, _, _ := cpuid(hvTimingLeaf, 0); khz != 0 {
				tscSource = "CPUID 0x40000010"
				return uint64(khz)
			}
		}
	}
	if acpi.pmTimer != 0 {
		if khz := pmTimerCalibrate(); khz != 0 {
			tscSource = "the ACPI PM timer"
			return khz
		}
	}
	if khz := pitCalibrate(); khz != 0 {
		tscSource = "the PIT"
		return khz
	}
	pvhFatal("no way to learn the TSC frequency: no CPUID leaf 0x15/0x16, ACPI PM timer or PIT")
	return 0
}

// pmTimerCalibrate measures the TSC against the ACPI PM timer (3.579545 MHz,
// ACPI 6.5 §4.8.3.3) and returns its frequency in kHz, or 0 if the timer
// does not count.
//
//go:nosplit
func pmTimerCalibrate() uint64 {
	mask := uint32(0xffffff)
	if acpi.pmTimer32 {
		mask = 0xffffffff
	}
	prev := pmTimerRead()
	t0 := rdtsc()
	var ticks uint64
	for still := 0; ticks < pmTimerHz*calibrateMs/1000; {
		c := pmTimerRead()
		if c == prev {
			if still++; still > 1_000_000 {
				return 0
			}
			continue
		}
		ticks += uint64((c - prev) & mask) // counts up and wraps
		prev = c
	}
	return (rdtsc() - t0) * pmTimerHz / ticks / 1000
}

// pitCalibrate measures the TSC against the 8254 PIT and returns its
// frequency in kHz, or 0 if there is no PIT. It polls channel 0's count
// (latched through the mode port), which needs no speaker port: microvm has
// none.
//
//go:nosplit
func pitCalibrate() uint64 {
	outb(0x43, 0x34) // channel 0, lobyte/hibyte, mode 2, binary
	outb(0x40, 0xff)
	outb(0x40, 0xff)
	prev := pitCount()
	t0 := rdtsc()
	var ticks uint64
	for still := 0; ticks < pitHz*calibrateMs/1000; {
		c := pitCount()
		if c == prev {
			if still++; still > 1_000_000 { // no PIT: the bus reads 0xffff
				return 0
			}
			continue
		}
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
