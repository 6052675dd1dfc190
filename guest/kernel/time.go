package kernel

import "math/bits"

// Clocks from the TSC: the monitor passes its frequency and one (wall time,
// TSC) pair taken as the vCPU starts.

var (
	tsc0    uint64
	wall0   int64
	tscMult uint64 // ns = (tsc - tsc0) * tscMult >> 32
)

//go:nosplit
func clockInit(wallNs, tsc, khz uint64) {
	if khz == 0 {
		fatal("boot info gives no TSC frequency")
	}
	tsc0, wall0 = tsc, int64(wallNs)
	tscMult = (1_000_000 << 32) / khz
}

// nanotime is the monotonic clock: nanoseconds since the vCPU started.
//
//go:nosplit
func nanotime() int64 {
	hi, lo := bits.Mul64(rdtsc()-tsc0, tscMult)
	return int64(hi<<32 | lo>>32)
}

//go:nosplit
func walltime() int64 { return wall0 + nanotime() }
