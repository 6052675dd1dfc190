package machine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"unigo.dev/unigo/abi"
)

// A ROM file is an image's ROM (Memory), its code and read-only data, laid
// out as the guest sees it: guest-physical romStart+off is byte off of the
// file, so each 2 MiB page of the ROM is a 2 MiB-aligned range of it. The
// monitor writes one, in 2 MiB writes, the first time an image boots, and
// maps it as the ROM at later boots. Linux (ext4, XFS; Linux 6.x) then keeps
// such a file's page cache in 2 MiB folios, maps each with one page-table
// entry, and KVM maps each with one fault, as it does the private huge
// pages a boot otherwise copies the ROM into; but nothing is copied or
// zeroed at the start, and every instance of the image shares the same
// pages. On this machine's nested KVM a fresh huge page, never touched
// before, cost ~14 ms to zero (BENCHMARKS.md).
//
// Where the host keeps the file in 4 KiB pages instead, KVM would take a
// fault per 4 KiB page, slower than the copy: the monitor checks once, when
// it writes the file, and leaves an empty file in its place, which tells
// later boots to copy.
//
// The file's name carries the identity of the image file it was made from
// (romFileName), so a rebuilt image gets a new one; nothing in it is trusted
// beyond its size, and like a start profile it only changes how fast a boot
// is: the folder is safe to delete.

// romFileName is the ROM file's name for the image file f, with prefix (the
// folder and a name per image path, Config.ROMFile) in front. The identity:
// device, inode, size, and modification and change times in ns; a write to
// the file changes the change time, which no one can set.
func romFileName(prefix string, f *os.File, romStart, romEnd uint64) (string, bool) {
	fi, err := f.Stat()
	if err != nil {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	var key [8 * 8]byte
	for i, v := range []uint64{romFileVersion, st.Dev, st.Ino, uint64(st.Size),
		uint64(st.Mtim.Nano()), uint64(st.Ctim.Nano()), romStart, romEnd} {
		binary.LittleEndian.PutUint64(key[8*i:], v)
	}
	h := sha256.Sum256(key[:])
	return fmt.Sprintf("%s-%x", prefix, h[:8]), true
}

// romFileVersion changes with the file's layout.
const romFileVersion = 1

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14): map the range's
// pages now, for reading.
const madvPopulateRead = 22

// mapROMFile maps the image's ROM file over the ROM's reservation and
// reports whether it did. Without one, it arms romFile.write. It fails only
// if the mapping did, which may have taken the reservation with it.
func (m *Machine) mapROMFile() (bool, error) {
	at, rom := m.mem.ROM()
	if m.cfg.ROMFile == "" || rom == nil || m.mem.hugeEnd <= m.mem.hugeStart {
		return false, nil // no ROM, or no huge pages to gain
	}
	path, ok := romFileName(m.cfg.ROMFile, m.img.file, at, at+uint64(len(rom)))
	if !ok {
		return false, nil
	}
	m.romFile.path = path
	f, err := os.Open(path)
	if err != nil {
		m.romFile.write = true
		return false, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return false, nil
	case fi.Size() == 0: // the host keeps it in 4 KiB pages: copy
		m.touchROMFile()
		return false, nil
	case fi.Size() != int64(len(rom)):
		m.romFile.write = true
		return false, nil
	}
	// Private and writable, as the image's pages are (Image.load): the
	// guest cannot write (KVM_MEM_READONLY), and a breakpoint the monitor
	// plants for a debugger stays this instance's own.
	if err := mapFile(rom, f, 0); err != nil {
		return false, fmt.Errorf("ROM file %s: %w (delete it, or boot with --share-image)", path, err)
	}
	syscall.Madvise(rom, syscall.MADV_HUGEPAGE) // read the file in 2 MiB folios if it was evicted
	syscall.Madvise(rom, madvPopulateRead)      // only a prefetch: KVM faults the rest in
	m.touchROMFile()
	if m.cfg.Debug {
		fmt.Fprintf(m.cfg.Stderr, "unigo: ROM file %s: mapped\n", path)
	}
	return true, nil
}

// touchROMFile marks the ROM file as in use, for pruneROMFiles.
func (m *Machine) touchROMFile() {
	now := time.Now()
	os.Chtimes(m.romFile.path, now, now)
}

// writeROMFile writes the image's ROM file from the image, and then checks
// that the host maps it with 2 MiB pages; where it does not, it writes an
// empty file instead. It runs beside the guest (the ROM's bytes come from
// the image file, not from guest memory, where a debugger may have planted
// a breakpoint); Close waits for it.
func (m *Machine) writeROMFile() {
	defer close(m.romFile.done)
	at, rom := m.mem.ROM()
	path := m.romFile.path
	err := writeROM(path, m.img, at, at+uint64(len(rom)))
	pruneROMFiles(filepath.Dir(path), m.cfg.ROMFile, path)
	if m.cfg.Debug {
		fmt.Fprintf(m.cfg.Stderr, "unigo: ROM file %s: written (%v)\n", path, err)
	}
}

func writeROM(path string, img *Image, start, end uint64) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".rom-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if err := fillROMFile(f, img, start, end); err != nil {
		f.Close()
		return err
	}
	huge, err := pmdMapped(f, end-start)
	if err == nil && !huge {
		err = f.Truncate(0) // the marker: copy at later boots
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fillROMFile writes the ROM's bytes, [start, end) of guest-physical memory,
// a 2 MiB page per write: on a file system with large folios (ext4, XFS),
// Linux makes each such write one 2 MiB folio of the page cache.
func fillROMFile(f *os.File, img *Image, start, end uint64) error {
	buf := make([]byte, abi.LargePageSize)
	for a := start; a < end; a += abi.LargePageSize {
		n := min(end-a, abi.LargePageSize)
		clear(buf[:n])
		for _, s := range img.Segments {
			from, to := max(s.Addr, a), min(s.Addr+s.FileSize, a+n)
			if from >= to {
				continue
			}
			if _, err := img.src.ReadAt(buf[from-a:to-a], int64(s.Off+from-s.Addr)); err != nil {
				return fmt.Errorf("read image segment at %#x: %w", s.Addr, err)
			}
		}
		if _, err := f.WriteAt(buf[:n], int64(a-start)); err != nil {
			return err
		}
	}
	return nil
}

// pmdMapped reports whether Linux maps the first 2 MiB of f (n bytes long)
// with one page-table entry, from the FilePmdMapped line of
// /proc/self/smaps_rollup (Linux's Documentation/filesystems/proc.rst)
// before and after mapping them.
func pmdMapped(f *os.File, n uint64) (bool, error) {
	if n < abi.LargePageSize {
		return false, nil
	}
	res, err := syscall.Mmap(-1, 0, 2*abi.LargePageSize, syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return false, err
	}
	defer syscall.Munmap(res)
	off := (abi.LargePageSize - uint64(uintptr(unsafe.Pointer(&res[0])))) & (abi.LargePageSize - 1)
	b := res[off : off+abi.LargePageSize]
	before, err := filePmdMapped()
	if err != nil {
		return false, err
	}
	if err := mapFile(b, f, 0); err != nil {
		return false, err
	}
	syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	if err := syscall.Madvise(b, madvPopulateRead); err != nil {
		return false, err
	}
	after, err := filePmdMapped()
	return after > before, err
}

// filePmdMapped returns the process's FilePmdMapped, in KiB.
func filePmdMapped() (uint64, error) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	_, rest, ok := bytes.Cut(b, []byte("\nFilePmdMapped:"))
	if !ok {
		return 0, errors.New("smaps_rollup has no FilePmdMapped")
	}
	line, _, _ := bytes.Cut(rest, []byte("kB"))
	return strconv.ParseUint(string(bytes.TrimSpace(line)), 10, 64)
}

// romFilesMax is how many bytes of ROM files a folder keeps at most, the
// least recently used going first.
const romFilesMax = 512 << 20

// pruneROMFiles removes from dir the ROM files of the image path whose
// files' names start with prefix (Config.ROMFile), but for keep; those no
// boot used for profileAge; temporary files an interrupted write left; and
// the least recently used while the rest come to more than romFilesMax.
func pruneROMFiles(dir, prefix, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var kept []os.FileInfo
	total := int64(0)
	for _, e := range ents {
		fi, err := e.Info()
		p := filepath.Join(dir, e.Name())
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		age := time.Since(fi.ModTime())
		if p != keep && (age > profileAge || strings.HasPrefix(e.Name(), ".rom-") && age > time.Hour ||
			strings.HasPrefix(p, prefix+"-")) {
			os.Remove(p)
			continue
		}
		if p != keep && !strings.HasPrefix(e.Name(), ".rom-") {
			kept = append(kept, fi)
		}
		total += fi.Size()
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].ModTime().Before(kept[j].ModTime()) })
	for _, fi := range kept {
		if total <= romFilesMax {
			break
		}
		if os.Remove(filepath.Join(dir, fi.Name())) == nil {
			total -= fi.Size()
		}
	}
}
