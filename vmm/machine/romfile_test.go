package machine

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestROMFile writes a ROM file for an image of two read-only segments with
// a gap between them, on real files and host memory: a later boot maps it and
// sees the guest's view of the ROM, a rewritten image gets a new file and
// the old one goes, and an empty file (the host has no 2 MiB folios) makes
// the boot copy.
func TestROMFile(t *testing.T) {
	const mib = 1 << 20
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "app.img")
	bytesOf := make([]byte, 3*mib)
	for i := range bytesOf {
		bytesOf[i] = byte(rand.Uint32())
	}
	if err := os.WriteFile(imgPath, bytesOf, 0o644); err != nil {
		t.Fatal(err)
	}
	// Text at [4 MiB, +2.5 MiB) from file offset 0, read-only data at
	// [8 MiB, +0.5 MiB) from 2.5 MiB: the ROM is [4 MiB, 10 MiB).
	segs := []Segment{
		{Addr: 4 * mib, Off: 0, FileSize: 5 * mib / 2, MemSize: 5 * mib / 2},
		{Addr: 8 * mib, Off: 5 * mib / 2, FileSize: mib / 2, MemSize: mib / 2},
	}
	want := make([]byte, 6*mib)
	copy(want, bytesOf[:5*mib/2])
	copy(want[4*mib:], bytesOf[5*mib/2:])

	boot := func() (*Machine, bool) {
		t.Helper()
		f, err := os.Open(imgPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		mem, err := newMemory(8*mib, 4*mib, 10*mib, 0, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mem.free)
		m := &Machine{cfg: Config{ROMFile: filepath.Join(dir, "rom", "app")}, mem: mem,
			img: &Image{file: f, src: f, Segments: segs}}
		if mem.romMapped, err = m.mapROMFile(); err != nil {
			t.Fatal(err)
		}
		if err := m.img.load(mem); err != nil {
			t.Fatal(err)
		}
		if _, rom := mem.ROM(); !bytes.Equal(rom, want) {
			t.Fatalf("the ROM holds other bytes than the image's (mapped from the ROM file: %v)", mem.romMapped)
		}
		if m.romFile.write {
			m.romFile.done = make(chan struct{})
			m.writeROMFile()
		}
		return m, mem.romMapped
	}

	m, mapped := boot()
	if mapped || !m.romFile.write {
		t.Fatalf("first boot: mapped %v, writing %v; want a copy, and the file written", mapped, m.romFile.write)
	}
	first := m.romFile.path
	fi, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 {
		t.Skipf("the host keeps %s's page cache in 4 KiB pages: the monitor copies the ROM (an empty ROM file)", dir)
	}
	if got, _ := os.ReadFile(first); !bytes.Equal(got, want) {
		t.Fatalf("ROM file of %d bytes, not the guest's view of the ROM", len(got))
	}
	if m, mapped = boot(); !mapped || m.romFile.write || m.romFile.path != first {
		t.Fatalf("second boot: mapped %v, writing %v, file %s; want %s mapped", mapped, m.romFile.write, m.romFile.path, first)
	}
	// A breakpoint, as plantEntryStop writes one, stays the boot's own.
	b, err := m.mem.Code(4*mib+100, 1)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = ^want[100]
	if got, _ := os.ReadFile(first); !bytes.Equal(got, want) {
		t.Fatal("a write to the mapped ROM reached the ROM file")
	}

	// A rebuilt image: its own file, and the first one pruned.
	bytesOf[mib] ^= 0xff
	want[mib] ^= 0xff
	if err := os.WriteFile(imgPath, bytesOf, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, mapped = boot(); mapped || m.romFile.path == first {
		t.Fatalf("rebuilt image: mapped %v, file %s; want a copy, and a new file", mapped, m.romFile.path)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("the old image's ROM file is still there (%v)", err)
	}
	second := m.romFile.path

	// The marker: copy, and do not write the file again.
	if err := os.Truncate(second, 0); err != nil {
		t.Fatal(err)
	}
	if m, mapped = boot(); mapped || m.romFile.write {
		t.Fatalf("empty ROM file: mapped %v, writing %v; want a copy and no write", mapped, m.romFile.write)
	}
	// A file of another length is written anew.
	if err := os.WriteFile(second, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, mapped = boot(); mapped || !m.romFile.write {
		t.Fatalf("damaged ROM file: mapped %v, writing %v; want a copy and the file written again", mapped, m.romFile.write)
	}
	if m, mapped = boot(); !mapped {
		t.Fatal("after the rewrite, the ROM file was not mapped")
	}
}

// TestPruneROMFiles checks which files pruning leaves, with sparse files
// standing in for large ROM files.
func TestPruneROMFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	file := func(name string, size int64, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const mib = 1 << 20
	keep := file("aaaa-new", 10*mib, 0)
	old := file("aaaa-old", 10*mib, time.Minute)       // the same image path, an older build
	stale := file("bbbb-1", mib, profileAge+time.Hour) // unused for too long
	tmp := file(".rom-123", mib, 2*time.Hour)          // an interrupted write
	lru := file("cccc-1", 300*mib, 2*time.Minute)      // over romFilesMax with the next
	recent := file("dddd-1", 300*mib, time.Minute)
	pruneROMFiles(dir, filepath.Join(dir, "aaaa"), keep)
	for p, want := range map[string]bool{keep: true, old: false, stale: false, tmp: false, lru: false, recent: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
