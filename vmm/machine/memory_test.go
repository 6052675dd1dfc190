package machine

import (
	"reflect"
	"testing"
	"unsafe"

	"unigo.dev/unigo/abi"
)

// TestMemoryHole checks Slice's translation and bounds around a hole in RAM:
// 8 MiB of RAM with a hole at [2 MiB, 6 MiB) is guest-physical [0, 2 MiB)
// and [6 MiB, 12 MiB).
func TestMemoryHole(t *testing.T) {
	const mib = 1 << 20
	m, err := newMemory(8*mib, 0, 0, 2*mib, 6*mib, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.free()
	checkSlices(t, m, []sliceCase{
		{0x1000, 8, 0x1000},
		{2*mib - 8, 8, 2*mib - 8},
		{2*mib - 4, 8, -1}, // runs into the hole
		{2 * mib, 1, -1},
		{6*mib - 1, 1, -1},
		{6 * mib, 8, 2 * mib},
		{12*mib - 8, 8, 8*mib - 8},
		{12*mib - 4, 8, -1}, // past the end of RAM
		{^uint64(0) - 3, 8, -1},
	})
	if got := m.Map(); len(got) != 2 || got[1].Addr != 6*mib || got[1].Size != 6*mib {
		t.Errorf("Map() = %+v", got)
	}
}

// TestMemoryROM checks Slice and Code around the ROM and the hole: 8 MiB of
// RAM with the ROM at [1 MiB, 2 MiB) and a hole at [4 MiB, 6 MiB) is RAM at
// [0, 1 MiB), [2 MiB, 4 MiB) and [6 MiB, 11 MiB).
func TestMemoryROM(t *testing.T) {
	const mib = 1 << 20
	m, err := newMemory(8*mib, 1*mib, 2*mib, 4*mib, 6*mib, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.free()
	checkSlices(t, m, []sliceCase{
		{mib - 8, 8, mib - 8},
		{mib - 4, 8, -1}, // runs into the ROM
		{mib, 1, -1},     // the ROM is not RAM
		{2 * mib, 8, mib},
		{4*mib - 8, 8, 3*mib - 8},
		{4 * mib, 1, -1},
		{6 * mib, 8, 3 * mib},
		{11*mib - 8, 8, 8*mib - 8},
		{11*mib - 4, 8, -1},
	})
	at, rom := m.ROM()
	if at != mib || len(rom) != mib {
		t.Fatalf("ROM() = %#x, %d bytes", at, len(rom))
	}
	b, err := m.Code(mib+16, 8)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 0xcc
	if rom[16] != 0xcc {
		t.Errorf("Code(%#x) is not the ROM's byte 16", mib+16)
	}
	if _, err := m.Code(2*mib-4, 8); err == nil {
		t.Errorf("Code across the ROM's end: no error")
	}
	if b, err := m.Code(2*mib, 8); err != nil || &b[0] != &m.b[mib] {
		t.Errorf("Code(2 MiB) = %v, not RAM at 1 MiB", err)
	}
	want := []abi.MapEntry{{Addr: 0, Size: mib, Type: abi.MemRAM}, {Addr: 2 * mib, Size: 2 * mib, Type: abi.MemRAM},
		{Addr: 6 * mib, Size: 5 * mib, Type: abi.MemRAM}}
	if got := m.Map(); !reflect.DeepEqual(got, want) {
		t.Errorf("Map() = %+v, want %+v", got, want)
	}
	if m.Top() != 11*mib {
		t.Errorf("Top() = %#x", m.Top())
	}
}

// sliceCase is a Slice call and where its bytes must be: an offset in RAM
// (m.b), or -1 for an error.
type sliceCase struct {
	gpa, n uint64
	off    int64
}

func checkSlices(t *testing.T, m *Memory, cases []sliceCase) {
	t.Helper()
	for _, c := range cases {
		b, err := m.Slice(c.gpa, c.n)
		if c.off < 0 {
			if err == nil {
				t.Errorf("Slice(%#x, %d) = no error, want one", c.gpa, c.n)
			}
			continue
		}
		if err != nil {
			t.Errorf("Slice(%#x, %d): %v", c.gpa, c.n, err)
			continue
		}
		b[0] = 0x5a
		if m.b[c.off] != 0x5a {
			t.Errorf("Slice(%#x, %d) is not at offset %#x of RAM", c.gpa, c.n, c.off)
		}
		m.b[c.off] = 0
	}
}

// TestMemoryHugeROM checks where a huge ROM's copies go: a ROM at
// [3 MiB, 9.5 MiB) fills the 2 MiB pages [4 MiB, 8 MiB), and the host
// address of each lies in one host huge page (the low 21 bits agree).
func TestMemoryHugeROM(t *testing.T) {
	const mib = 1 << 20
	m, err := newMemory(8*mib, 3*mib, 9*mib+mib/2, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.free()
	if m.hugeStart != 4*mib || m.hugeEnd != 8*mib {
		t.Fatalf("huge pages [%#x, %#x), want [4 MiB, 8 MiB)", m.hugeStart, m.hugeEnd)
	}
	at, rom := m.ROM()
	if at != 3*mib || len(rom) != 6*mib+mib/2 {
		t.Fatalf("ROM() = %#x, %d bytes", at, len(rom))
	}
	if hva := uint64(uintptr(unsafe.Pointer(&rom[m.hugeStart-at]))); hva%abi.LargePageSize != 0 {
		t.Errorf("the first huge page is at host address %#x, not 2 MiB aligned", hva)
	}
	small, err := newMemory(8*mib, 4*mib, 5*mib, 0, 0, true) // fills no 2 MiB page
	if err != nil {
		t.Fatal(err)
	}
	defer small.free()
	if small.hugeEnd > small.hugeStart {
		t.Errorf("a 1 MiB ROM got huge pages [%#x, %#x)", small.hugeStart, small.hugeEnd)
	}
}
