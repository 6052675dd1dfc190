package machine

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"unigo.dev/unigo/abi"
)

// Memory is the guest's RAM as the host sees it. Every access the monitor
// makes on the guest's behalf goes through Slice, the one checked helper:
// guest-supplied addresses and lengths are never used to index memory
// directly.
//
// RAM may have a hole, [holeStart, holeEnd), where the image's largest
// zeroed objects lie (see Image.BSSHole): the RAM that would be there
// continues at holeEnd, and the guest kernel backs the pages of the hole
// that the program touches with its own frames, so objects the program never
// touches (Go's FIPS entropy buffer, 32 MiB) take none of its memory.
type Memory struct {
	b                  []byte
	holeStart, holeEnd uint64 // 2 MiB aligned; equal if there is no hole
}

func newMemory(size, holeStart, holeEnd uint64) (*Memory, error) {
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("allocate %d MiB of guest memory: %w", size>>20, err)
	}
	if holeStart >= size {
		holeStart, holeEnd = 0, 0 // the image's objects lie above RAM anyway: no room for one
	}
	return &Memory{b: b, holeStart: holeStart, holeEnd: holeEnd}, nil
}

func (m *Memory) free() { syscall.Munmap(m.b) }

// Size is the number of bytes of RAM.
func (m *Memory) Size() uint64 { return uint64(len(m.b)) }

// Map lists the guest-physical ranges of RAM.
func (m *Memory) Map() []abi.MapEntry {
	size := uint64(len(m.b))
	if m.holeStart == m.holeEnd {
		return []abi.MapEntry{{Addr: 0, Size: size, Type: abi.MemRAM}}
	}
	return []abi.MapEntry{{Addr: 0, Size: m.holeStart, Type: abi.MemRAM},
		{Addr: m.holeEnd, Size: size - m.holeStart, Type: abi.MemRAM}}
}

// Slice returns the n bytes at guest-physical gpa, or an error if any of them
// is outside RAM. Both tests are needed: gpa+n may overflow.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	size := uint64(len(m.b))
	off := gpa
	if m.holeStart != m.holeEnd {
		switch {
		case gpa < m.holeStart:
			size = m.holeStart
		case gpa >= m.holeEnd:
			off = gpa - (m.holeEnd - m.holeStart)
		default:
			off = size // in the hole: no RAM
		}
	}
	if off > size || n > size-off {
		return nil, fmt.Errorf("guest range [%#x, +%#x) is outside guest memory (%#x bytes)", gpa, n, len(m.b))
	}
	return m.b[off : off+n : off+n], nil
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
