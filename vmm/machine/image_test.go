package machine

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"unigo.dev/unigo/abi"
)

// elfImage makes a minimal ELF64 executable: one PT_NOTE with the given note
// version (none if ver < 0) and one executable PT_LOAD at paddr.
func elfImage(ver int, paddr, memsz uint64) []byte {
	le := binary.LittleEndian
	var note []byte
	if ver >= 0 {
		note = le.AppendUint32(note, uint32(len(abi.NoteName)+1))
		note = le.AppendUint32(note, 8)
		note = le.AppendUint32(note, abi.NoteType)
		note = append(note, abi.NoteName+"\x00\x00\x00"...)
		note = le.AppendUint32(note, uint32(ver))
		note = le.AppendUint32(note, 0)
	}
	code := []byte{0xf4} // hlt
	const ehsize, phsize = 64, 56
	noteOff := uint64(ehsize + 2*phsize)
	codeOff := noteOff + uint64(len(note))
	b := make([]byte, ehsize)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], paddr) // entry
	le.PutUint64(b[32:], ehsize)
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 2)
	ph := func(typ, flags uint32, off, addr, filesz, memsz uint64) {
		b = le.AppendUint32(b, typ)
		b = le.AppendUint32(b, flags)
		b = le.AppendUint64(b, off)
		b = le.AppendUint64(b, addr)
		b = le.AppendUint64(b, addr)
		b = le.AppendUint64(b, filesz)
		b = le.AppendUint64(b, memsz)
		b = le.AppendUint64(b, 4)
	}
	ph(4, 4, noteOff, 0, uint64(len(note)), uint64(len(note))) // PT_NOTE
	ph(1, 5, codeOff, paddr, uint64(len(code)), memsz)         // PT_LOAD R+X
	b = append(b, note...)
	return append(b, code...)
}

func TestParseImage(t *testing.T) {
	img, err := ParseImage(elfImage(abi.Version, 0x400000, 0x2000))
	if err != nil {
		t.Fatal(err)
	}
	if img.Entry != 0x400000 || len(img.Segments) != 1 || img.Segments[0].MemSize != 0x2000 || img.Segments[0].FileSize != 1 {
		t.Fatalf("parsed %+v", img)
	}
}

func TestParseImageErrors(t *testing.T) {
	good := elfImage(abi.Version, 0x400000, 0x2000)
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, "not a valid ELF"},
		{"no note", elfImage(-1, 0x400000, 0x2000), "no Unigo note"},
		{"other version", elfImage(abi.Version+1, 0x400000, 0x2000), "ABI version"},
		{"boot area", elfImage(abi.Version, 0x1000, 0x2000), "overlaps the boot area"},
		{"file bigger than memory", elfImage(abi.Version, 0x400000, 0), "above memory size"},
		{"truncated headers", good[:100], "truncated"},
		{"truncated segment", good[:len(good)-1], "truncated image"},
	} {
		_, err := ParseImage(c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := ParseImage(elfImage(-1, 0x400000, 0x2000)); !errors.Is(err, ErrNotUnigo) {
		t.Errorf("image without note: %v is not ErrNotUnigo", err)
	}
}

func TestMemorySlice(t *testing.T) {
	m := &Memory{b: make([]byte, 1<<20)}
	for _, c := range []struct {
		gpa, n uint64
		ok     bool
	}{
		{0, 1 << 20, true},
		{1<<20 - 8, 8, true},
		{1<<20 - 7, 8, false},
		{1 << 20, 0, true},
		{1<<20 + 1, 0, false},
		{^uint64(0) - 3, 8, false}, // gpa+n overflows
		{8, ^uint64(0), false},
	} {
		_, err := m.Slice(c.gpa, c.n)
		if (err == nil) != c.ok {
			t.Errorf("Slice(%#x, %#x): err %v, want ok=%v", c.gpa, c.n, err, c.ok)
		}
	}
}

func TestTranslate(t *testing.T) {
	m := &Memory{b: make([]byte, 8<<20)}
	if err := m.buildPageTables(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		va, pa uint64
		ok     bool
	}{
		{0x1000, 0x1000, true},
		{0x5123, 0x5123, true},
		{0x0, 0, false},            // page 0 is not mapped
		{0x600008, 0x600008, true}, // a 2 MiB page
		{abi.DoorbellAddr, abi.DoorbellAddr, true},
		{1 << 40, 0, false},
	} {
		pa, err := m.Translate(abi.PML4Addr, c.va)
		if (err == nil) != c.ok || (c.ok && pa != c.pa) {
			t.Errorf("Translate(%#x) = %#x, %v; want %#x ok=%v", c.va, pa, err, c.pa, c.ok)
		}
	}
}

// TestImageROM checks which images get their read-only segments mapped
// outside RAM: Go's layout does, up to the 2 MiB boundary where no segment
// lies before it; a read-only segment with zeroed bytes, a
// writable one in the read-only part's last page, or an image not read from
// a file does not.
func TestImageROM(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text := Segment{Addr: 0x400000, Off: 0, FileSize: 0x1000, MemSize: 0x1000}
	rodata := Segment{Addr: 0x401000, Off: 0x1000, FileSize: 0x800, MemSize: 0x800}
	data := Segment{Addr: 0x402000, Off: 0x2000, FileSize: 0x100, MemSize: 0x5000, Writable: true}
	for _, c := range []struct {
		name       string
		segs       []Segment
		noFile     bool
		start, end uint64
	}{
		{"Go's layout", []Segment{text, rodata, data}, false, 0x400000, 0x402000},
		{"read-only only: to the 2 MiB boundary", []Segment{text, rodata}, false, 0x400000, 0x600000},
		{"unigo build's 2 MiB rounding", []Segment{text, {Addr: 0x600000, Off: 0x1000, FileSize: 0x800, MemSize: 0x800}, {Addr: 0x800000, Off: 0x2000, FileSize: 0x100, MemSize: 0x5000, Writable: true}}, false, 0x400000, 0x800000},
		{"zeroed read-only bytes", []Segment{text, {Addr: 0x401000, Off: 0x1000, FileSize: 0x800, MemSize: 0x1000}, data}, false, 0, 0},
		{"writable in the last page", []Segment{text, rodata, {Addr: 0x401800, Off: 0x1800, FileSize: 0x100, MemSize: 0x100, Writable: true}}, false, 0, 0},
		{"writable first", []Segment{data, text}, false, 0, 0},
		{"not from a file", []Segment{text, rodata, data}, true, 0, 0},
	} {
		img := &Image{Segments: c.segs, file: f}
		if c.noFile {
			img.file = nil
		}
		if s, e := img.ROM(); s != c.start || e != c.end {
			t.Errorf("%s: ROM() = [%#x, %#x), want [%#x, %#x)", c.name, s, e, c.start, c.end)
		}
	}
}
