package build

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// linkPlain links a small ordinary Go program for Linux with the given
// -ldflags and returns the file's path.
func linkPlain(t *testing.T, dir, name, ldflags string) string {
	t.Helper()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nvar data = []int{1, 2, 3}\n\nfunc main() { fmt.Println(\"compacted\", len(data)) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", out, src)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestCompact links a program with 2 MiB segment rounding, compacts it, and
// checks that every segment and section holds the same bytes at the same
// addresses, that the file is no larger than with 4 KiB rounding, and that
// Linux still runs it.
func TestCompact(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, strip := range []string{"", " -s"} {
		dir := t.TempDir()
		padded := linkPlain(t, dir, "padded", roundFlag()+strip)
		plain := linkPlain(t, dir, "plain", strip)
		orig, err := os.ReadFile(padded)
		if err != nil {
			t.Fatal(err)
		}
		if err := compact(padded); err != nil {
			t.Fatalf("compact: %v", err)
		}
		got, err := os.ReadFile(padded)
		if err != nil {
			t.Fatal(err)
		}
		pi, _ := os.Stat(plain)
		if int64(len(got)) > pi.Size()+int64(pageSize) || len(got) >= len(orig) {
			t.Errorf("strip=%q: compacted %d bytes from %d; 4 KiB rounding gives %d", strip, len(got), len(orig), pi.Size())
		}
		before, err := elf.NewFile(bytes.NewReader(orig))
		if err != nil {
			t.Fatal(err)
		}
		after, err := elf.NewFile(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("compacted file: %v", err)
		}
		if len(before.Progs) != len(after.Progs) || len(before.Sections) != len(after.Sections) {
			t.Fatalf("strip=%q: %d/%d program headers and %d/%d sections", strip, len(before.Progs), len(after.Progs), len(before.Sections), len(after.Sections))
		}
		loads := 0
		for i, p := range before.Progs {
			q := after.Progs[i]
			if p.Vaddr != q.Vaddr || p.Filesz != q.Filesz || p.Memsz != q.Memsz || p.Type != q.Type {
				t.Errorf("strip=%q: program header %d changed: %+v to %+v", strip, i, p.ProgHeader, q.ProgHeader)
			}
			if p.Type != elf.PT_LOAD {
				continue
			}
			loads++
			if p.Vaddr%segmentRound != 0 && i > 0 && p.Off != 0 {
				t.Errorf("strip=%q: segment %d at %#x: not on a 2 MiB boundary", strip, i, p.Vaddr)
			}
			if q.Off%pageSize != q.Vaddr%pageSize || q.Align != pageSize {
				t.Errorf("strip=%q: segment %d: offset %#x, address %#x, align %#x", strip, i, q.Off, q.Vaddr, q.Align)
			}
			a, b := make([]byte, p.Filesz), make([]byte, q.Filesz)
			p.ReadAt(a, 0)
			q.ReadAt(b, 0)
			if p.Off == 0 { // the headers, whose offsets moved
				hdrs := uint64(64 + 56*len(before.Progs) + 64*len(before.Sections))
				a, b = a[hdrs:], b[hdrs:]
			}
			if !bytes.Equal(a, b) {
				t.Errorf("strip=%q: segment %d's bytes changed", strip, i)
			}
		}
		if loads < 3 {
			t.Errorf("strip=%q: %d PT_LOAD segments, want text, rodata and data", strip, loads)
		}
		for i, s := range before.Sections {
			if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL {
				continue
			}
			a, err1 := s.Data()
			b, err2 := after.Sections[i].Data()
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("strip=%q: section %s's bytes changed (%v, %v)", strip, s.Name, err1, err2)
			}
		}
		again, err := compactELF(got)
		if err != nil || again != nil {
			t.Errorf("strip=%q: compacting again: %d bytes, %v; want nothing to do", strip, len(again), err)
		}
		out, err := exec.Command(padded).CombinedOutput()
		if err != nil || string(out) != "compacted 3\n" {
			t.Errorf("strip=%q: the compacted program: %v, %q", strip, err, out)
		}
	}
}

// TestCompactRejects checks that what is not an ELF64 file, or has headers
// outside it, is an error rather than a panic or a rewrite.
func TestCompactRejects(t *testing.T) {
	good := make([]byte, 64)
	copy(good, "\x7fELF\x02\x01")
	for name, b := range map[string][]byte{
		"empty":    nil,
		"not elf":  []byte("#!/bin/sh\necho hi\n"),
		"no loads": good,
		"headers past the end": func() []byte {
			b := append([]byte(nil), good...)
			b[32], b[54], b[56] = 0xf0, 56, 4 // e_phoff, e_phentsize, e_phnum
			return b
		}(),
	} {
		if out, err := compactELF(b); err == nil {
			t.Errorf("%s: no error (%d bytes out)", name, len(out))
		}
	}
}
