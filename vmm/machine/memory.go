package machine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"unigo.dev/unigo/abi"
)

// Memory is the guest's RAM as the host sees it. Every access the monitor
// makes on the guest's behalf goes through Slice, the one checked helper:
// guest-supplied addresses and lengths are never used to index memory
// directly.
//
// Guest-physical space has up to two gaps in RAM, in this order:
//
//   - The ROM, [rom.start, rom.end): the image's code and read-only data,
//     in a memory slot the guest cannot write (KVM_MEM_READONLY; a write
//     exits, and the monitor reports it). It is not RAM: -m counts RAM only.
//     It is mapped from the image file, so its pages are the host's page
//     cache of the image, shared by every instance of it; except, with a
//     huge ROM, the 2 MiB pages it fills, [hugeStart, hugeEnd) (all of
//     them in an image unigo build linked: Image.ROM), which are copied
//     into the instance's own transparent huge pages: KVM then maps each
//     with one fault where the shared pages take one per 4 KiB, each ~5-25
//     µs on a paging-based KVM (BENCHMARKS.md). A boot that has the image's
//     ROM file maps all of the ROM from it instead (romMapped, romfile.go):
//     shared pages, and 2 MiB ones.
//   - The hole, [hole.start, hole.end): where the image's largest zeroed
//     objects lie (see Image.BSSHole). It has no memory at all: the guest
//     kernel backs the pages the program touches with its own frames, so
//     objects the program never touches (Go's FIPS entropy buffer, 32 MiB)
//     take none of its memory.
//
// RAM, m.b, continues above each gap: guest-physical gpa is m.b[gpa - the
// sizes of the gaps below it].
type Memory struct {
	b    []byte
	rom  gap
	hole gap

	romRes             []byte // the ROM's reservation, which rom.b lies in
	hugeStart, hugeEnd uint64 // the ROM's part in huge pages; empty without
	romMapped          bool   // rom.b is the image's ROM file (romfile.go)
}

// gap is a guest-physical range without RAM; empty if start == end.
type gap struct {
	start, end uint64
	b          []byte // the ROM's bytes; nil for the hole
}

func (g gap) size() uint64 { return g.end - g.start }

// newMemory allocates size bytes of RAM with the ROM [romStart, romEnd) and
// the hole [holeStart, holeEnd) as gaps (either may be empty). The ROM's
// bytes are mapped or copied by Image.load; with hugeROM, the 2 MiB pages it
// fills are reserved for copies in transparent huge pages, its host address
// placed so that each lies in one host huge page, as KVM needs to map it so
// (api.rst 4.35: the low bits of guest-physical and host address agree).
func newMemory(size, romStart, romEnd, holeStart, holeEnd uint64, hugeROM bool) (*Memory, error) {
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("allocate %d MiB of guest memory: %w", size>>20, err)
	}
	m := &Memory{b: b}
	if romStart < romEnd && romStart < size {
		const huge = abi.LargePageSize
		hs, he := (romStart+huge-1)&^(huge-1), romEnd&^(huge-1)
		if !hugeROM || he <= hs {
			hs, he = 0, 0
		}
		n, extra := romEnd-romStart, uint64(0)
		if he > hs {
			extra = huge
		}
		res, err := syscall.Mmap(-1, 0, int(n+extra), syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
		if err != nil {
			syscall.Munmap(b)
			return nil, fmt.Errorf("reserve the image's read-only memory: %w", err)
		}
		off := uint64(0)
		if he > hs {
			off = (romStart - uint64(uintptr(unsafe.Pointer(&res[0])))) & (huge - 1)
			// Only a hint: without huge pages the copy works, and is slower.
			syscall.Madvise(res[off+hs-romStart:off+he-romStart], syscall.MADV_HUGEPAGE)
		}
		m.rom, m.romRes, m.hugeStart, m.hugeEnd = gap{romStart, romEnd, res[off : off+n : off+n]}, res, hs, he
	}
	if holeStart < holeEnd && holeStart < size+m.rom.size() && holeStart >= m.rom.end {
		m.hole = gap{start: holeStart, end: holeEnd} // else the objects lie above RAM anyway: no room for one
	}
	return m, nil
}

// hostHugePages reports whether the host gives transparent huge pages to a
// mapping that asks (MADV_HUGEPAGE): "always" or "madvise" in
// /sys/kernel/mm/transparent_hugepage/enabled.
func hostHugePages() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && (bytes.Contains(b, []byte("[always]")) || bytes.Contains(b, []byte("[madvise]")))
}

func (m *Memory) free() {
	syscall.Munmap(m.b)
	if m.romRes != nil {
		syscall.Munmap(m.romRes)
	}
}

// Size is the number of bytes of RAM.
func (m *Memory) Size() uint64 { return uint64(len(m.b)) }

// Top is the guest-physical address where RAM ends.
func (m *Memory) Top() uint64 { return m.Size() + m.rom.size() + m.hole.size() }

// Map lists the guest-physical ranges of RAM.
func (m *Memory) Map() []abi.MapEntry {
	var ents []abi.MapEntry
	at := uint64(0)
	for _, g := range [2]gap{m.rom, m.hole} {
		if g.size() != 0 {
			ents = append(ents, abi.MapEntry{Addr: at, Size: g.start - at, Type: abi.MemRAM})
			at = g.end
		}
	}
	return append(ents, abi.MapEntry{Addr: at, Size: m.Top() - at, Type: abi.MemRAM})
}

// ROM returns the guest-physical address and the bytes of the ROM; no
// bytes if there is none.
func (m *Memory) ROM() (uint64, []byte) { return m.rom.start, m.rom.b }

// Slice returns the n bytes of RAM at guest-physical gpa, or an error if any
// of them is outside RAM (in a gap, or above the top). Both tests are
// needed: gpa+n may overflow.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	off, limit := gpa, m.Top()
	for _, g := range [2]gap{m.rom, m.hole} {
		if g.size() == 0 || gpa >= g.end {
			off -= g.size()
			continue
		}
		if gpa >= g.start {
			limit = 0 // in the gap
		} else {
			limit = g.start
		}
		break
	}
	if gpa > limit || n > limit-gpa {
		return nil, fmt.Errorf("guest range [%#x, +%#x) is outside guest memory (%#x bytes of RAM)", gpa, n, len(m.b))
	}
	return m.b[off : off+n : off+n], nil
}

// Code returns the n bytes at gpa in RAM or in the ROM, where the debugger
// reads and patches code (the monitor's view of the ROM is writable; the
// guest's is not). Only the debugger uses it: devices get Slice, so no
// guest-chosen DMA address reaches the ROM.
func (m *Memory) Code(gpa, n uint64) ([]byte, error) {
	if r := m.rom; gpa >= r.start && gpa < r.end {
		if n > r.end-gpa {
			return nil, fmt.Errorf("guest range [%#x, +%#x) runs past the read-only image", gpa, n)
		}
		o := gpa - r.start
		return r.b[o : o+n : o+n], nil
	}
	return m.Slice(gpa, n)
}

// U64 reads the little-endian word at gpa.
func (m *Memory) U64(gpa uint64) (uint64, error) {
	b, err := m.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// PutU64 writes the little-endian word at gpa.
func (m *Memory) PutU64(gpa, v uint64) error {
	b, err := m.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}

// Page-table entry bits (Intel SDM Vol. 3A §4.5, Table 4-19/4-20).
const (
	ptePresent  = 1 << 0
	pteWrite    = 1 << 1
	pteUser     = 1 << 2
	ptePWT      = 1 << 3
	ptePCD      = 1 << 4
	pteLarge    = 1 << 7
	pteAddrMask = 0x000f_ffff_ffff_f000
)

// Translate walks the guest's 4-level page tables from cr3 and returns the
// guest-physical address of virtual address va.
func (m *Memory) Translate(cr3, va uint64) (uint64, error) {
	table := cr3 & pteAddrMask
	for level := 3; level >= 0; level-- {
		idx := (va >> (12 + 9*uint(level))) & 511
		e, err := m.U64(table + idx*8)
		if err != nil {
			return 0, fmt.Errorf("page walk of %#x: %w", va, err)
		}
		if e&ptePresent == 0 {
			return 0, fmt.Errorf("virtual address %#x is not mapped", va)
		}
		if level == 0 || (level <= 2 && e&pteLarge != 0) {
			span := uint64(1) << (12 + 9*uint(level))
			return (e & pteAddrMask &^ (span - 1)) | (va & (span - 1)), nil
		}
		table = e & pteAddrMask
	}
	panic("unreachable")
}

// ReadVirt reads the word at guest-virtual va.
func (m *Memory) ReadVirt(cr3, va uint64) (uint64, error) {
	if va&7 != 0 {
		return 0, fmt.Errorf("unaligned virtual address %#x", va)
	}
	pa, err := m.Translate(cr3, va)
	if err != nil {
		return 0, err
	}
	return m.U64(pa)
}
