package build

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/machine"
)

// The Go linker has no way to add an ELF note, but its -B flag reserves one:
// a .note.gnu.build-id note (name "GNU") with a descriptor of our chosen size,
// inside the PT_NOTE segment. After linking, the reserved bytes are rewritten
// in place into Unigo's notes (the post-link note rewrite is TamaGo's idea).
// The space holds the Unigo note and the PVH note (XEN_ELFNOTE_PHYS32_ENTRY,
// Xen's include/public/elfnote.h), which standard hypervisors boot through.
const (
	noteSpace   = 48             // bytes of the reserved note, header included
	reserveDesc = noteSpace - 16 // -B descriptor bytes: 12-byte header + "GNU\0"
)

// reserveFlag is the -B linker flag that reserves the note space.
func reserveFlag() string {
	b := make([]byte, 2+2*reserveDesc)
	copy(b, "0x")
	for i := 2; i < len(b); i++ {
		b[i] = '0'
	}
	return "-B " + string(b)
}

// xenPhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical entry.
const xenPhys32Entry = 18

// notes returns the noteSpace bytes that replace the reserved note: the Unigo
// note (abi.NoteName, abi.NoteType, {abi.Version, flags}, the hole start in
// the flags' high half) and the PVH note with the kernel's 32-bit entry
// pvhEntry. (-B reserves at most 32 descriptor bytes: no room for a word
// more.)
func notes(pvhEntry, flags, hole uint32) []byte {
	b := make([]byte, 0, noteSpace)
	add := func(name string, typ uint32, desc []byte) {
		n := append([]byte(name), 0)
		for len(n)%4 != 0 {
			n = append(n, 0)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)+1))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
		b = binary.LittleEndian.AppendUint32(b, typ)
		b = append(b, n...)
		b = append(b, desc...)
	}
	desc := binary.LittleEndian.AppendUint32(nil, abi.Version)
	desc = binary.LittleEndian.AppendUint32(desc, flags|hole/abi.LargePageSize<<abi.NoteHoleShift)
	add(abi.NoteName, abi.NoteType, desc)
	add("Xen", xenPhys32Entry, binary.LittleEndian.AppendUint32(nil, pvhEntry))
	return b
}

// writeNotes rewrites the reserved build-id note of the ELF file at path. The
// Go linker's PT_NOTE segment covers only .note.go.buildid, which the reserved
// note directly follows; the segment is extended over it, since boot loaders
// read notes through program headers.
func writeNotes(path string, flags uint32) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		return errors.New("the linked program has no .note.gnu.build-id section: was -B passed to the linker?")
	}
	if s.Size != noteSpace {
		return fmt.Errorf("reserved note is %d bytes, want %d: is -ldflags=-B given twice?", s.Size, noteSpace)
	}
	syms, err := f.Symbols() // nil for a program linked with -ldflags=-s
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("read symbols: %w", err)
	}
	entry, err := symbol(f, syms, PVHEntrySymbol)
	if err != nil {
		return err
	}
	if entry == 0 || entry > 0xffffffff {
		return fmt.Errorf("no 32-bit address for %s in the linked program", PVHEntrySymbol)
	}
	want := notes(uint32(entry), flags, zeroedTail(f, syms))
	phdr, done := -1, false
	for i, p := range f.Progs {
		if p.Type == elf.PT_NOTE && p.Off+p.Filesz == s.Offset {
			phdr = i
		}
		done = done || p.Type == elf.PT_NOTE && p.Off+p.Filesz == s.Offset+noteSpace
	}
	if done {
		// go build left an up-to-date output alone: it is marked already.
		got, err := s.Data()
		if err == nil && string(got) == string(want) {
			return nil
		}
	}
	if phdr < 0 {
		return errors.New("no PT_NOTE segment ends where the reserved note starts")
	}
	out, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := out.WriteAt(want, int64(s.Offset)); err != nil {
		return err
	}
	// ELF64: e_phoff at byte 32 of the header; in each 56-byte Elf64_Phdr,
	// p_filesz at byte 32 and p_memsz at 40 (System V gABI, ch. 4 and 5).
	var ehdr [64]byte
	if _, err := out.ReadAt(ehdr[:], 0); err != nil {
		return err
	}
	at := int64(binary.LittleEndian.Uint64(ehdr[32:])) + int64(phdr)*56
	size := binary.LittleEndian.AppendUint64(nil, f.Progs[phdr].Filesz+noteSpace)
	for _, off := range []int64{32, 40} {
		if _, err := out.WriteAt(size, at+off); err != nil {
			return err
		}
	}
	return out.Close()
}

// symbol returns the address of the function name: from the ELF symbol
// table syms or, in a program linked without one (-ldflags=-s), from the Go
// runtime's own function table, .gopclntab, which every Go program keeps.
func symbol(f *elf.File, syms []elf.Symbol, name string) (uint64, error) {
	if syms != nil {
		for _, sym := range syms {
			if sym.Name == name {
				return sym.Value, nil
			}
		}
		return 0, nil
	}
	tab, err := machine.FuncTable(f)
	if err != nil {
		return 0, fmt.Errorf("the linked program has no symbol table, and %w", err)
	}
	// The function table names assembly functions without their ABI suffix.
	if fn := tab.LookupFunc(strings.TrimSuffix(name, ".abi0")); fn != nil {
		return fn.Entry, nil
	}
	return 0, nil
}

// zeroedTail returns the 2 MiB-aligned address from which the image holds
// only zeroed objects that are not the kernel's, or 0: the own monitor
// leaves a hole in RAM there (abi.NoteHoleShift), so that objects a program
// never touches cost it no memory (in every program that links crypto, Go's
// 32 MiB FIPS entropy buffer). The Go linker places zeroed data last and
// sorts it by size, so the largest objects end the image; the kernel's own
// objects, which its trap handlers touch where a page fault must not
// happen, must lie below the hole. It needs the symbol table syms: a
// program linked with -ldflags=-s gets no hole.
func zeroedTail(f *elf.File, syms []elf.Symbol) uint32 {
	if syms == nil {
		return 0
	}
	var imageEnd uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			imageEnd = max(imageEnd, p.Vaddr+p.Memsz)
		}
	}
	zeroed := map[elf.SectionIndex]bool{}
	for i, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_TLS == 0 {
			zeroed[elf.SectionIndex(i)] = true
		}
	}
	// Walk down from the end while the objects are zeroed data and not the
	// kernel's.
	start := imageEnd
	syms = slices.Clone(syms)
	sort.Slice(syms, func(i, j int) bool { return syms[i].Value > syms[j].Value })
	for _, s := range syms {
		if s.Value >= start || s.Size == 0 || s.Value+s.Size < s.Value {
			continue
		}
		if !zeroed[s.Section] || strings.HasPrefix(s.Name, guestPrefix) {
			break
		}
		start = s.Value
	}
	start = (start + abi.LargePageSize - 1) &^ (abi.LargePageSize - 1)
	if start >= imageEnd || start/abi.LargePageSize >= 1<<(32-abi.NoteHoleShift) {
		return 0
	}
	return uint32(start)
}

// guestPrefix names the packages Unigo links into the image.
const guestPrefix = "unigo.dev/unigo/guest/"
