package abi

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestEncodeLayout(t *testing.T) {
	info := make([]byte, BiSize)
	strs := make([]byte, StringsSize)
	b := BootInfo{
		Flags: BootFlagDebug, MemSize: 128 << 20, TSCkHz: 2_000_000,
		Args: []string{"prog", "a b", ""}, Env: []string{"K=V"}, Cmdline: "debug",
		Map: []MapEntry{{0, 128 << 20, MemRAM}, {0xc0000000, 4096, MemReserved}},
	}
	if err := b.Encode(info, strs); err != nil {
		t.Fatal(err)
	}
	SetClock(info, 12345, 678)
	u32 := func(o int) uint32 { return binary.LittleEndian.Uint32(info[o:]) }
	u64 := func(o int) uint64 { return binary.LittleEndian.Uint64(info[o:]) }
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"magic", u64(BiMagic), BootMagic},
		{"version", uint64(u32(BiVersion)), Version},
		{"flags", uint64(u32(BiFlags)), BootFlagDebug},
		{"mem", u64(BiMemSize), 128 << 20},
		{"wall", u64(BiWallNs), 12345},
		{"tsc", u64(BiTSC), 678},
		{"khz", u64(BiTSCkHz), 2_000_000},
		{"argc", uint64(u32(BiArgc)), 3},
		{"envc", uint64(u32(BiEnvc)), 1},
		{"strings", u64(BiStrings), StringsAddr},
		{"strlen", u64(BiStrLen), uint64(len("prog\x00a b\x00\x00K=V\x00debug\x00"))},
		{"cmdline", u64(BiCmdline), StringsAddr + uint64(len("prog\x00a b\x00\x00K=V\x00"))},
		{"map count", uint64(u32(BiMapCount)), 2},
		{"map[1].addr", u64(BiMap + MapEntrySize), 0xc0000000},
		{"map[1].size", u64(BiMap + MapEntrySize + 8), 4096},
		{"map[1].type", uint64(u32(BiMap + MapEntrySize + 16)), MemReserved},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if got := string(strs[:u64(BiStrLen)]); got != "prog\x00a b\x00\x00K=V\x00debug\x00" {
		t.Errorf("strings = %q", got)
	}
}

func TestEncodeLimits(t *testing.T) {
	info := make([]byte, BiSize)
	strs := make([]byte, StringsSize)
	big := BootInfo{Args: []string{strings.Repeat("x", StringsSize)}}
	if err := big.Encode(info, strs); err == nil {
		t.Error("64 KiB of arguments encoded; want an error")
	}
	many := BootInfo{Map: make([]MapEntry, MaxMapEntries+1)}
	if err := many.Encode(info, strs); err == nil {
		t.Error("too many map entries encoded; want an error")
	}
	if err := (&BootInfo{}).Encode(info[:10], strs); err == nil {
		t.Error("short buffer accepted")
	}
}
