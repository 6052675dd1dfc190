package machine

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"syscall"
	"unsafe"

	"unigo.dev/unigo/abi"
)

// Image is a validated Unigo image: a static x86-64 ELF64 executable carrying
// the Unigo note of abi.Version.
type Image struct {
	Path      string
	Entry     uint64
	Flags     uint32 // the Unigo note's abi.NoteFlag* bits
	holeStart uint64 // the Unigo note's NoteHoleStart, 0 if none
	Segments  []Segment
	file      *os.File     // the image file, mapped into guest memory by load
	src       io.ReaderAt  // the image's bytes
	elf       *elf.File    // for the symbol table, read only if a crash report needs it
	syms      []elf.Symbol // function symbols sorted by address, once read
	pcln      *gosym.Table // without a symbol table (-ldflags=-s): Go's function table
	symsRead  bool
}

// Segment is one PT_LOAD segment to copy into guest memory.
type Segment struct {
	Addr     uint64 // guest-physical load address
	Off      uint64 // file offset of the segment's bytes
	FileSize uint64 // bytes from the file; the rest of MemSize is zero
	MemSize  uint64
	Writable bool // PF_W
}

// ErrNotUnigo is wrapped by errors about images that are not Unigo images.
var ErrNotUnigo = errors.New("not a Unigo image")

// LoadImage reads and validates the image at path.
func LoadImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	img, err := parseImage(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img.Path, img.file = path, f
	return img, nil
}

// ParseImage validates an image held in memory.
func ParseImage(raw []byte) (*Image, error) {
	return parseImage(bytes.NewReader(raw), int64(len(raw)))
}

func parseImage(r io.ReaderAt, size int64) (*Image, error) {
	magic := make([]byte, len(elf.ELFMAG))
	if _, err := r.ReadAt(magic, 0); err != nil || string(magic) != elf.ELFMAG {
		return nil, fmt.Errorf("%w: not a valid ELF file; build one with 'unigo build'", ErrNotUnigo)
	}
	f, err := elf.NewFile(r)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("truncated image: the ELF headers run past the end of its %d bytes", size)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid ELF file (%v); build one with 'unigo build'", ErrNotUnigo, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("%w: want an x86-64 ELF64 executable, have %v %v %v", ErrNotUnigo, f.Class, f.Machine, f.Type)
	}
	ver, flags, err := findNote(f)
	if err != nil {
		return nil, err
	}
	if ver != abi.Version {
		return nil, fmt.Errorf("image speaks Unigo ABI version %d, this monitor version %d: rebuild it with this unigo", ver, abi.Version)
	}
	img := &Image{Entry: f.Entry, Flags: flags & (1<<abi.NoteHoleShift - 1),
		holeStart: uint64(flags>>abi.NoteHoleShift) * abi.LargePageSize, src: r}
	entryOK := false
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("corrupt image: segment at %#x has file size %#x above memory size %#x", p.Paddr, p.Filesz, p.Memsz)
		}
		if p.Off > uint64(size) || p.Filesz > uint64(size)-p.Off {
			return nil, fmt.Errorf("truncated image: segment at %#x needs file bytes [%#x, +%#x), the file has %#x", p.Paddr, p.Off, p.Filesz, size)
		}
		if p.Paddr < abi.ImageMinAddr || p.Paddr+p.Memsz < p.Paddr {
			return nil, fmt.Errorf("image segment at %#x overlaps the boot area below %#x", p.Paddr, abi.ImageMinAddr)
		}
		img.Segments = append(img.Segments, Segment{Addr: p.Paddr, Off: p.Off, FileSize: p.Filesz, MemSize: p.Memsz,
			Writable: p.Flags&elf.PF_W != 0})
		if p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz {
			entryOK = true
		}
	}
	if len(img.Segments) == 0 {
		return nil, fmt.Errorf("corrupt image: no loadable segments")
	}
	if !entryOK {
		return nil, fmt.Errorf("corrupt image: entry point %#x is in no executable segment", f.Entry)
	}
	img.elf = f
	return img, nil
}

// findNote returns the ABI version and the flags of the Unigo note.
func findNote(f *elf.File) (ver, flags uint32, err error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			return 0, 0, fmt.Errorf("corrupt image: note segment: %v", err)
		}
		for len(b) >= 12 {
			namesz := uint64(binary.LittleEndian.Uint32(b))
			descsz := uint64(binary.LittleEndian.Uint32(b[4:]))
			typ := binary.LittleEndian.Uint32(b[8:])
			nameEnd := 12 + align4(namesz)
			end := nameEnd + align4(descsz)
			if namesz > uint64(len(b)) || descsz > uint64(len(b)) || end > uint64(len(b)) {
				break
			}
			name := string(bytes.TrimRight(b[12:12+namesz], "\x00"))
			if name == abi.NoteName && typ == abi.NoteType && descsz >= 4 {
				if descsz >= 8 {
					flags = binary.LittleEndian.Uint32(b[nameEnd+4:])
				}
				return binary.LittleEndian.Uint32(b[nameEnd:]), flags, nil
			}
			b = b[end:]
		}
	}
	return 0, 0, fmt.Errorf("%w: no Unigo note (a plain Linux executable?); build the program with 'unigo build'", ErrNotUnigo)
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// load puts the segments into guest memory: the read-only ones into the ROM
// when there is one (Image.ROM), the others into RAM. Page-aligned segments
// of an image file are mapped copy-on-write from the file, so loading copies
// nothing and the guest faults in only the pages it touches, except in the
// ROM's huge pages (Memory), which are copied; the rest is copied too. BSS
// stays as it is: guest memory is fresh, hence zero.
func (img *Image) load(m *Memory) error {
	romAt, rom := m.ROM()
	for _, s := range img.Segments {
		size := s.MemSize
		if h := m.hole; h.size() != 0 && s.Addr < h.start && s.Addr+size > h.start {
			size = h.start - s.Addr // the zeroed objects in the hole are the guest's to back
		}
		var dst []byte
		var err error
		copied := [2]uint64{} // guest-physical range copied although it could be mapped
		if rom != nil && s.Addr >= romAt && s.Addr-romAt < uint64(len(rom)) {
			if size > uint64(len(rom))-(s.Addr-romAt) {
				return fmt.Errorf("image segment [%#x, +%#x) runs past the read-only image", s.Addr, s.MemSize)
			}
			if m.romMapped {
				continue // the ROM file holds it
			}
			dst = rom[s.Addr-romAt : s.Addr-romAt+size]
			copied = [2]uint64{m.hugeStart, m.hugeEnd}
		} else {
			dst, err = m.Slice(s.Addr, size)
		}
		if err != nil || s.FileSize > size {
			return fmt.Errorf("image segment [%#x, +%#x) does not fit in %d MiB of guest memory: use a larger -m", s.Addr, s.MemSize, m.Size()>>20)
		}
		mapped := uint64(0)
		if img.file != nil && s.Addr%abi.PageSize == 0 && s.Off%abi.PageSize == 0 {
			mapped = s.FileSize &^ (abi.PageSize - 1)
		}
		// [s.Addr, end) of the segment's file bytes is mapped but for
		// [cs, ce), a part of the huge pages; the rest of them is read.
		end := s.Addr + mapped
		cs, ce := min(max(copied[0], s.Addr), end), min(max(copied[1], s.Addr), end)
		if ce <= cs {
			cs, ce = end, end
		}
		put := func(from, to uint64, mapIt bool) error {
			if to <= from {
				return nil
			}
			b, off := dst[from-s.Addr:to-s.Addr], s.Off+from-s.Addr
			if mapIt {
				return mapFile(b, img.file, off)
			}
			if _, err := img.src.ReadAt(b, int64(off)); err != nil {
				return fmt.Errorf("read image segment at %#x: %w", s.Addr, err)
			}
			return nil
		}
		for _, p := range []struct {
			from, to uint64
			mapIt    bool
		}{{s.Addr, cs, true}, {cs, ce, false}, {ce, end, true}, {end, s.Addr + s.FileSize, false}} {
			if err := put(p.from, p.to, p.mapIt); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapFile maps len(dst) bytes of f at off over dst, private and writable.
func mapFile(dst []byte, f *os.File, off uint64) error {
	_, _, e := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(&dst[0])), uintptr(len(dst)),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, f.Fd(), uintptr(off))
	if e != 0 {
		return fmt.Errorf("map image into guest memory: %w", e)
	}
	return nil
}

// Close releases the image file.
func (img *Image) Close() error {
	if img.file != nil {
		return img.file.Close()
	}
	return nil
}

// Symbolize names the function containing pc, as "name+0xoff".
func (img *Image) Symbolize(pc uint64) string {
	if !img.symsRead {
		img.symsRead = true
		if syms, err := img.elf.Symbols(); err == nil {
			for _, s := range syms {
				if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
					img.syms = append(img.syms, s)
				}
			}
			sort.Slice(img.syms, func(i, j int) bool { return img.syms[i].Value < img.syms[j].Value })
		} else {
			img.pcln, _ = FuncTable(img.elf) // nil: no names
		}
	}
	if img.pcln != nil {
		if fn := img.pcln.PCToFunc(pc); fn != nil {
			return fmt.Sprintf("%s+%#x", fn.Name, pc-fn.Entry)
		}
		return "?"
	}
	i := sort.Search(len(img.syms), func(i int) bool { return img.syms[i].Value > pc }) - 1
	if i < 0 {
		return "?"
	}
	s := img.syms[i]
	if s.Size != 0 && pc >= s.Value+s.Size {
		return "?"
	}
	return fmt.Sprintf("%s+%#x", s.Name, pc-s.Value)
}

// FuncTable reads .gopclntab, the function table every Go program keeps for
// its own tracebacks, even one linked without a symbol table (-ldflags=-s).
func FuncTable(f *elf.File) (*gosym.Table, error) {
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		return nil, errors.New("no .gopclntab or .text section")
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	return tab, nil
}

// BSSHole returns the guest-physical range, 2 MiB aligned, where RAM gets a
// hole (Memory): from the address the Unigo note gives (unigo build finds
// the image's largest zeroed objects that are not the kernel's: see
// zeroedTail in package build) to the end of the image. A start that is not 2 MiB
// aligned, lies below some file-backed byte or leaves less than
// holeMin gets no hole.
func (img *Image) BSSHole() (start, end uint64) {
	start = img.holeStart
	var fileEnd uint64
	for _, s := range img.Segments {
		end = max(end, s.Addr+s.MemSize)
		fileEnd = max(fileEnd, s.Addr+s.FileSize)
	}
	end = (end + abi.LargePageSize - 1) &^ (abi.LargePageSize - 1)
	if start == 0 || start%abi.LargePageSize != 0 || start < fileEnd || end < start+holeMin {
		return 0, 0
	}
	return start, end
}

// holeMin is the smallest hole worth a second RAM region.
const holeMin = 4 << 20

// ROM returns the guest-physical range, page aligned, of the image's
// read-only segments, which the own monitor maps into a read-only memory
// slot outside RAM (Memory): the first segments, up to the first writable
// one, when they are all file-backed and page-aligned (as the Go linker lays
// them out: the ELF header and text, then read-only data). Empty otherwise,
// or for an image not read from a file.
func (img *Image) ROM() (start, end uint64) {
	if img.file == nil {
		return 0, 0
	}
	for i, s := range img.Segments {
		ro := !s.Writable
		if !ro || s.FileSize != s.MemSize || s.Addr%abi.PageSize != 0 || s.Off%abi.PageSize != 0 || (i > 0 && s.Addr < end) {
			if ro {
				return 0, 0 // a read-only segment that cannot be mapped: no ROM
			}
			if s.Addr < end {
				return 0, 0 // a writable segment in the ROM's last page
			}
			break
		}
		if i == 0 {
			start = s.Addr
		}
		end = (s.Addr + s.MemSize + abi.PageSize - 1) &^ (abi.PageSize - 1)
	}
	// Where no segment follows in the ROM's last 2 MiB page (unigo build
	// puts each segment on a 2 MiB boundary), the ROM takes the rest of it:
	// the guest then maps the whole ROM with 2 MiB pages, and KVM each with
	// one fault (Memory). RAM starts at the boundary.
	up := (end + abi.LargePageSize - 1) &^ (abi.LargePageSize - 1)
	for _, s := range img.Segments {
		if s.Addr >= end && s.Addr < up {
			return start, end
		}
	}
	return start, up
}
