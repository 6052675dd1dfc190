package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// sysClockGettime implements Linux syscall clock_gettime(2) for the wall and
// monotonic clocks. CPU-time clocks are not kept yet.
//
//go:nosplit
func sysClockGettime(f *trapFrame) uintptr {
	clk := f.arg(0)
	tp := f.arg(1)
	var ns int64
	switch clk {
	case linux.CLOCK_REALTIME, linux.CLOCK_REALTIME_COARSE:
		ns = walltime()
	case linux.CLOCK_MONOTONIC, linux.CLOCK_MONOTONIC_RAW, linux.CLOCK_MONOTONIC_COARSE, linux.CLOCK_BOOTTIME:
		ns = nanotime()
	default:
		return errno(linux.EINVAL)
	}
	ts := linux.Timespec{Sec: ns / 1e9, Nsec: ns % 1e9}
	if !copyOut(tp, unsafe.Pointer(&ts), unsafe.Sizeof(ts)) {
		return errno(linux.EFAULT)
	}
	return 0
}

// sysNanosleep implements Linux syscall nanosleep(2).
//
//go:nosplit
func sysNanosleep(f *trapFrame) uintptr {
	req := f.arg(0)
	var ts linux.Timespec
	if !copyIn(unsafe.Pointer(&ts), req, unsafe.Sizeof(ts)) {
		return errno(linux.EFAULT)
	}
	if ts.Sec < 0 || ts.Nsec < 0 || ts.Nsec >= 1e9 {
		return errno(linux.EINVAL)
	}
	d := ts.Sec*1e9 + ts.Nsec
	if d > 0 {
		block(waitSleep, 0, nanotime()+d)
	}
	return 0
}
