package abi

// The boot-info block the monitor writes at BootInfoAddr. Little-endian, fixed
// offsets, so the kernel reads it with plain loads before anything else runs.
const (
	BootMagic = 0x31424f47494e55 // "UNIGOB1"

	BiMagic    = 0  // u64 BootMagic
	BiVersion  = 8  // u32 Version
	BiFlags    = 12 // u32 BootFlag*
	BiMemSize  = 16 // u64 where RAM ends (guest-physical); the map shows any gaps below
	BiWallNs   = 24 // u64 Unix time in ns at the moment the guest TSC read BiTSC
	BiTSC      = 32 // u64 guest TSC at BiWallNs
	BiTSCkHz   = 40 // u64 guest TSC frequency in kHz
	BiArgc     = 48 // u32 number of args
	BiEnvc     = 52 // u32 number of environment entries
	BiStrings  = 56 // u64 GPA of the strings: args, then env, then the command line, each NUL-terminated
	BiStrLen   = 64 // u64 total bytes of the strings
	BiCmdline  = 72 // u64 GPA of the command line (within the strings)
	BiMapCount = 80 // u32 number of memory map entries
	BiMap      = 88 // MapEntry[BiMapCount]: {u64 addr, u64 size, u32 type, u32 pad}
	BiSize     = 4096

	MapEntrySize  = 24
	MaxMapEntries = (BiSize - BiMap) / MapEntrySize
)

// Boot flags.
const (
	BootFlagDebug    = 1 << 0 // report unimplemented system calls through HcUnimplemented
	BootFlagDebugger = 1 << 1 // a debugger is attached: user #BP and #DB, and CsDebugStop, go to HcDebug
	BootFlagKvmclock = 1 << 2 // KVM keeps a kvmclock at KvmclockAddr
	BootFlagIRQEvent = 1 << 3 // the network device's interrupt is an event per batch of used buffers: no InterruptACK needed
)

// Memory map entry types, as in the e820 map (ACPI 6.5 §15).
const (
	MemRAM      = 1
	MemReserved = 2
)

// MapEntry is one range of the guest-physical memory map.
type MapEntry struct {
	Addr, Size uint64
	Type       uint32
}

// BootInfo is the host-side view of the block.
type BootInfo struct {
	Flags   uint32
	MemSize uint64
	WallNs  uint64
	TSC     uint64
	TSCkHz  uint64
	Args    []string
	Env     []string
	Cmdline string
	Map     []MapEntry
}

// Encode lays out b into info (the BiSize bytes at BootInfoAddr) and strs (the
// StringsSize bytes at StringsAddr). It fails if the strings or the map do not
// fit.
func (b *BootInfo) Encode(info, strs []byte) error {
	if len(info) < BiSize || len(strs) < StringsSize {
		return errShort
	}
	if len(b.Map) > MaxMapEntries {
		return errMap
	}
	n := 0
	put := func(s string) bool {
		if n+len(s)+1 > StringsSize {
			return false
		}
		n += copy(strs[n:], s)
		strs[n] = 0
		n++
		return true
	}
	for _, s := range b.Args {
		if !put(s) {
			return errStrings
		}
	}
	for _, s := range b.Env {
		if !put(s) {
			return errStrings
		}
	}
	cmd := n
	if !put(b.Cmdline) {
		return errStrings
	}
	clear(info[:BiSize])
	le64(info[BiMagic:], BootMagic)
	le32(info[BiVersion:], Version)
	le32(info[BiFlags:], b.Flags)
	le64(info[BiMemSize:], b.MemSize)
	le64(info[BiWallNs:], b.WallNs)
	le64(info[BiTSC:], b.TSC)
	le64(info[BiTSCkHz:], b.TSCkHz)
	le32(info[BiArgc:], uint32(len(b.Args)))
	le32(info[BiEnvc:], uint32(len(b.Env)))
	le64(info[BiStrings:], StringsAddr)
	le64(info[BiStrLen:], uint64(n))
	le64(info[BiCmdline:], uint64(StringsAddr+cmd))
	le32(info[BiMapCount:], uint32(len(b.Map)))
	for i, e := range b.Map {
		o := BiMap + i*MapEntrySize
		le64(info[o:], e.Addr)
		le64(info[o+8:], e.Size)
		le32(info[o+16:], e.Type)
	}
	return nil
}

// SetClock rewrites the clock fields of an encoded block, just before the
// vCPU first runs.
func SetClock(info []byte, wallNs, tsc uint64) {
	le64(info[BiWallNs:], wallNs)
	le64(info[BiTSC:], tsc)
}

type abiError string

func (e abiError) Error() string { return string(e) }

const (
	errShort   = abiError("abi: boot info buffers too short")
	errMap     = abiError("abi: too many memory map entries")
	errStrings = abiError("abi: args, environment and command line exceed 64 KiB")
)

func le32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func le64(b []byte, v uint64) {
	le32(b, uint32(v))
	le32(b[4:], uint32(v>>32))
}
