package build

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"

	"unigo.dev/unigo/abi"
)

// The kernel's segments start on 2 MiB boundaries (the linker's -R), so that
// no 2 MiB page holds both the read-only image and writable data: the own
// monitor then maps the code and the read-only data with 2 MiB pages, one
// KVM fault each, where a page shared with data takes one per 4 KiB
// (hello's start: 443 faults before, 219 after). The linker keeps each
// segment's file offset congruent to its address modulo that rounding, which
// pads the file with up to 2 MiB of zeros per segment; compact takes them
// out again, so the image is as small as with 4 KiB rounding.
const segmentRound = abi.LargePageSize

// roundFlag is the linker flag that puts every segment on a 2 MiB boundary.
func roundFlag() string { return fmt.Sprintf("-R %#x", segmentRound) }

// ELF64 little-endian offsets (System V gABI, ch. 4 "ELF Header", "Section
// Header"; ch. 5 "Program Header").
const (
	ehPhoff, ehShoff                        = 32, 40
	ehPhentsize, ehPhnum                    = 54, 56
	ehShentsize, ehShnum                    = 58, 60
	phType, phOffset, phFilesz, phMemsz     = 0, 8, 32, 40
	phAlign                                 = 48
	shType, shOffset, shSize                = 4, 24, 32
	ptLoad, shtNull, shtNobits              = 1, 0, 8
	phentsize64, shentsize64, ehdrSize64    = 56, 64, 64
	pageSize                                = abi.PageSize
	elfClass64, elfData2LSB, eiClass, eiEnc = 2, 1, 4, 5
)

// chunk is a run of file bytes that moves as one: a PT_LOAD segment's, or
// the sections after the last one.
type chunk struct {
	off, size uint64 // bytes in the file
	span      uint64 // offsets that move with it: a segment's memory size
	to        uint64 // new offset
}

// compact rewrites the ELF file at path without the zero padding between its
// segments: each segment's bytes move down to the first page boundary after
// the previous one's (keeping offset ≡ address mod 4 KiB, all an ELF loader
// needs, and p_align becomes 4 KiB), the sections after the last segment
// follow, and every offset in the program and section headers is moved with
// its bytes. A file without such padding is left alone.
func compact(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := compactELF(b)
	if err != nil || out == nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// compactELF returns the compacted file, or nil if b has no padding to take
// out.
func compactELF(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(b) < ehdrSize64 || string(b[:4]) != "\x7fELF" || b[eiClass] != elfClass64 || b[eiEnc] != elfData2LSB {
		return nil, errors.New("not a little-endian ELF64 file")
	}
	phoff, phnum := le.Uint64(b[ehPhoff:]), uint64(le.Uint16(b[ehPhnum:]))
	shoff, shnum := le.Uint64(b[ehShoff:]), uint64(le.Uint16(b[ehShnum:]))
	if le.Uint16(b[ehPhentsize:]) != phentsize64 || shnum > 0 && le.Uint16(b[ehShentsize:]) != shentsize64 {
		return nil, errors.New("unexpected ELF header entry sizes")
	}
	if phoff > uint64(len(b)) || phnum*phentsize64 > uint64(len(b))-phoff ||
		shoff > uint64(len(b)) || shnum*shentsize64 > uint64(len(b))-shoff {
		return nil, errors.New("ELF headers run past the end of the file")
	}
	ph := func(i uint64) []byte { return b[phoff+i*phentsize64 : phoff+(i+1)*phentsize64] }
	sh := func(i uint64) []byte { return b[shoff+i*shentsize64 : shoff+(i+1)*shentsize64] }

	var chunks []chunk
	for i := range phnum {
		p := ph(i)
		if le.Uint32(p[phType:]) != ptLoad {
			continue
		}
		off, filesz, memsz := le.Uint64(p[phOffset:]), le.Uint64(p[phFilesz:]), le.Uint64(p[phMemsz:])
		if off > uint64(len(b)) || filesz > uint64(len(b))-off || memsz < filesz {
			return nil, fmt.Errorf("program header %d: segment [%#x, +%#x) is outside the file", i, off, filesz)
		}
		chunks = append(chunks, chunk{off: off, size: filesz, span: memsz})
	}
	if len(chunks) == 0 {
		return nil, errors.New("no PT_LOAD segment")
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].off < chunks[j].off })
	for i := 1; i < len(chunks); i++ {
		if chunks[i].off < chunks[i-1].off+chunks[i-1].size {
			return nil, errors.New("PT_LOAD segments overlap in the file")
		}
	}
	// The sections after the last segment: from the first one with bytes
	// there (or the section header table) to the end of the file.
	last := chunks[len(chunks)-1]
	tail := uint64(len(b))
	if shoff >= last.off+last.size && shnum > 0 {
		tail = min(tail, shoff)
	}
	for i := range shnum {
		s := sh(i)
		typ, off, size := le.Uint32(s[shType:]), le.Uint64(s[shOffset:]), le.Uint64(s[shSize:])
		if typ == shtNull || typ == shtNobits || size == 0 {
			continue
		}
		if off >= last.off+last.size {
			tail = min(tail, off)
		}
	}
	chunks = append(chunks, chunk{off: tail, size: uint64(len(b)) - tail, span: uint64(len(b)) - tail})

	moved := false
	for i := range chunks {
		c := &chunks[i]
		c.to = c.off
		if i > 0 {
			p := chunks[i-1]
			c.to = (p.to+p.size+pageSize-1)&^(pageSize-1) + c.off%pageSize
		}
		moved = moved || c.to != c.off
	}
	if !moved {
		return nil, nil
	}
	// newOff moves a file offset with the chunk it lies in: in its bytes, or
	// (a segment's zeroed part, as .bss's offset) in its memory span.
	newOff := func(off uint64) (uint64, bool) {
		for _, c := range chunks {
			if off >= c.off && off-c.off < c.size {
				return off - c.off + c.to, true
			}
		}
		for _, c := range chunks {
			if off >= c.off && off-c.off <= c.span {
				return off - c.off + c.to, true
			}
		}
		return 0, false
	}
	// A section with bytes outside every chunk would be lost.
	for i := range shnum {
		s := sh(i)
		typ, off, size := le.Uint32(s[shType:]), le.Uint64(s[shOffset:]), le.Uint64(s[shSize:])
		if typ == shtNull || typ == shtNobits || size == 0 {
			continue
		}
		if _, ok := newOff(off); !ok || !inFile(chunks, off, size) {
			return nil, fmt.Errorf("section %d [%#x, +%#x) lies between segments: cannot compact", i, off, size)
		}
	}

	end := chunks[len(chunks)-1]
	out := make([]byte, end.to+end.size)
	for _, c := range chunks {
		copy(out[c.to:], b[c.off:c.off+c.size])
	}
	// The headers now lie in out, at their moved offsets.
	nphoff, ok1 := newOff(phoff)
	nshoff, ok2 := newOff(shoff)
	if !ok1 || shnum > 0 && !ok2 {
		return nil, errors.New("the ELF header tables lie between segments: cannot compact")
	}
	le.PutUint64(out[ehPhoff:], nphoff)
	le.PutUint64(out[ehShoff:], nshoff)
	for i := range phnum {
		p := out[nphoff+i*phentsize64 : nphoff+(i+1)*phentsize64]
		if off := le.Uint64(p[phOffset:]); off != 0 || le.Uint32(p[phType:]) == ptLoad {
			n, ok := newOff(off)
			if !ok {
				return nil, fmt.Errorf("program header %d: offset %#x lies between segments", i, off)
			}
			le.PutUint64(p[phOffset:], n)
		}
		if le.Uint32(p[phType:]) == ptLoad && le.Uint64(p[phAlign:]) > pageSize {
			le.PutUint64(p[phAlign:], pageSize)
		}
	}
	for i := range shnum {
		s := out[nshoff+i*shentsize64 : nshoff+(i+1)*shentsize64]
		if le.Uint32(s[shType:]) == shtNull {
			continue
		}
		if n, ok := newOff(le.Uint64(s[shOffset:])); ok {
			le.PutUint64(s[shOffset:], n)
		}
	}
	return out, nil
}

// inFile reports whether [off, off+size) lies in one chunk's file bytes.
func inFile(chunks []chunk, off, size uint64) bool {
	for _, c := range chunks {
		if off >= c.off && off-c.off <= c.size && size <= c.size-(off-c.off) {
			return true
		}
	}
	return false
}
