package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
)

// kvmclock, KVM's paravirtual clock (Linux's
// Documentation/virt/kvm/x86/msr.rst, MSR_KVM_SYSTEM_TIME_NEW): KVM keeps a
// pvclock_vcpu_time_info at a guest-physical address the guest names, whose
// scale and shift are how KVM itself turns TSC ticks into nanoseconds. The
// kernel takes the TSC frequency from it under KVM, as Linux's
// kvm_get_tsc_khz does, and keeps the TSC as its clock.

const (
	msrKVMSystemTimeNew    = 0x4b564d01
	kvmFeatureClocksource2 = 1 << 3 // CPUID 0x40000001 EAX

	// pvclock_vcpu_time_info offsets.
	pvcVersion = 0  // u32, odd while KVM updates the rest
	pvcMul     = 24 // u32 tsc_to_system_mul
	pvcShift   = 28 // s8 tsc_shift
)

// pvclockPVH holds the kvmclock area of a PVH boot under KVM, 32 bytes at
// a 32-byte boundary, so within one page (identity-mapped kernel memory: its
// address is its guest-physical address).
var pvclockPVH [8]uint64

// kvmclockOffered reports whether the hypervisor is KVM with kvmclock: the
// signature "KVMKVMKVM\0\0\0" at CPUID 0x40000000 and CLOCKSOURCE2 at
// 0x40000001.
//
//go:nosplit
func kvmclockOffered() bool {
	if _, _, c, _ := cpuid(1, 0); c&cpuidHypervisor == 0 {
		return false
	}
	max, b, c, d := cpuid(0x40000000, 0)
	if b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d || max < 0x40000001 {
		return false
	}
	f, _, _, _ := cpuid(0x40000001, 0)
	return f&kvmFeatureClocksource2 != 0
}

// pvclockKHz returns the TSC frequency the kvmclock at addr gives, or 0 if
// KVM has not filled it in: 10^6 << 32 / tsc_to_system_mul, shifted back by
// tsc_shift (Linux's pvclock_tsc_khz).
//
//go:nosplit
func pvclockKHz(addr uintptr) uint64 {
	for tries := 0; tries < 1000; tries++ {
		v := load32(addr + pvcVersion)
		mul := load32(addr + pvcMul)
		shift := int8(load8(addr + pvcShift))
		if v&1 != 0 || load32(addr+pvcVersion) != v {
			continue // KVM is updating it
		}
		if v == 0 || mul == 0 {
			return 0
		}
		khz := (1_000_000 << 32) / uint64(mul)
		if shift < 0 {
			return khz << uint(-shift)
		}
		return khz >> uint(shift)
	}
	return 0
}

// pvhKvmclockKHz is the PVH platform's kvmclock source: it names the area
// (PVH kernels run in ring 0, so they may write the MSR), reads the
// frequency and turns the clock off again.
//
//go:nosplit
func pvhKvmclockKHz() uint64 {
	if !kvmclockOffered() {
		return 0
	}
	addr := (uintptr(unsafe.Pointer(&pvclockPVH)) + 31) &^ 31
	wrmsr(msrKVMSystemTimeNew, uint64(addr)|1)
	khz := pvclockKHz(addr)
	wrmsr(msrKVMSystemTimeNew, 0)
	return khz
}

// monitorKvmclockKHz is the own monitor's: it has KVM keep the clock at
// abi.KvmclockAddr when it can, and says so in the boot info's flags.
//
//go:nosplit
func monitorKvmclockKHz(flags uint64) uint64 {
	if flags&abi.BootFlagKvmclock == 0 {
		return 0
	}
	return pvclockKHz(abi.KvmclockAddr)
}

// debugClockBuf is debugClock's line (too big for a nosplit frame).
var debugClockBuf [96]byte

// debugClock reports, with --debug, the frequency kvmclock gave and the
// monitor's.
//
//go:nosplit
func debugClock(khz, monitorKHz uint64) {
	n := putString(debugClockBuf[:], 0, "unigo: clock: TSC ")
	n = putDec(debugClockBuf[:], n, khz)
	n = putString(debugClockBuf[:], n, " kHz from kvmclock (the monitor: ")
	n = putDec(debugClockBuf[:], n, monitorKHz)
	n = putString(debugClockBuf[:], n, " kHz)\n")
	consoleWrite(2, uintptr(unsafe.Pointer(&debugClockBuf[0])), uintptr(n))
}

//go:nosplit
func putString(b []byte, n int, s string) int {
	for i := 0; i < len(s) && n < len(b); i++ {
		b[n] = s[i]
		n++
	}
	return n
}

//go:nosplit
func putDec(b []byte, n int, v uint64) int {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	for ; i < len(d) && n < len(b); i++ {
		b[n] = d[i]
		n++
	}
	return n
}
