package machine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// A start profile is the set of guest RAM pages that a boot of an image
// touched. The monitor records it the first time the image boots, from the
// host's view of guest memory (its page map) when the guest exits, when the
// program first listens or after profileAfter, whichever comes first, and
// replays it at later boots: before
// the vCPU starts, it backs those pages on the host (MADV_POPULATE_WRITE).
// KVM's fault on such a page then needs no host page allocation, and maps
// the page's present neighbours in the same guest page table with it (the
// kernel marks its page-table entries accessed, see guest/kernel/mem.go):
// fewer faults, each cheaper, where each costs ~5-25 µs on a paging-based KVM
// (BENCHMARKS.md). This is working-set prefetching, as REAP does for the
// snapshots of serverless functions (Ustiugov et al., ASPLOS 2021). The pages
// are those the guest touches anyway, so the instance costs about the same
// memory.
//
// A profile only ever changes how fast a boot is: one that is missing, for
// another image file or another RAM size, or damaged, is recorded anew.

// profileAfter is how long a guest that neither exits nor listens runs
// before its profile is taken: long enough for most starts. A server's ends
// at its first listen(2) (listened), before any load it serves, whose pages
// a later boot that serves none would back for nothing.
const profileAfter = 500 * time.Millisecond

// listened reports whether the program has called listen(2), by the count
// the kernel keeps of it (abi.SyscallsAddr).
func (m *Machine) listened() bool {
	n, err := m.mem.U64(abi.SyscallsAddr + linux.SYS_LISTEN*8)
	return err == nil && n > 0
}

// The file: profileMagic, then four little-endian uint64s (the image file's
// size, modification time in ns and inode, the guest's RAM size), then one bit
// per 4 KiB page of RAM, least significant bit first.
const (
	profileMagic  = "UNIGOSP1"
	profileHeader = len(profileMagic) + 4*8
)

// profileKey says which boots a profile is valid for.
type profileKey [4]uint64

func (m *Machine) profileKey() (profileKey, bool) {
	if m.img.file == nil {
		return profileKey{}, false
	}
	fi, err := m.img.file.Stat()
	if err != nil {
		return profileKey{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return profileKey{}, false
	}
	return profileKey{uint64(fi.Size()), uint64(fi.ModTime().UnixNano()), st.Ino, m.mem.Size()}, true
}

// decodeProfile returns the page bitmap of a profile file for key, or an
// error if the file is not one.
func decodeProfile(b []byte, key profileKey) ([]byte, error) {
	if len(b) < profileHeader || string(b[:len(profileMagic)]) != profileMagic {
		return nil, errors.New("not a start profile")
	}
	for i, v := range key {
		if binary.LittleEndian.Uint64(b[len(profileMagic)+8*i:]) != v {
			return nil, errors.New("recorded for another image file or RAM size")
		}
	}
	bits := b[profileHeader:]
	if uint64(len(bits)) != (key[3]/abi.PageSize+7)/8 {
		return nil, fmt.Errorf("%d bytes of page bits for %d MiB of RAM", len(bits), key[3]>>20)
	}
	return bits, nil
}

func encodeProfile(key profileKey, bits []byte) []byte {
	b := append([]byte(profileMagic), make([]byte, 4*8)...)
	for i, v := range key {
		binary.LittleEndian.PutUint64(b[len(profileMagic)+8*i:], v)
	}
	return append(b, bits...)
}

// replayProfile backs the pages of the boot's profile, if it has a valid one,
// and otherwise arms its recording.
func (m *Machine) replayProfile() {
	if m.cfg.Profile == "" {
		return
	}
	key, ok := m.profileKey()
	if !ok {
		return
	}
	m.profile.key = key
	b, err := os.ReadFile(m.cfg.Profile)
	var bits []byte
	if err == nil {
		bits, err = decodeProfile(b, key)
	}
	if err != nil {
		m.profile.record = true
		if m.cfg.Debug && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(m.cfg.Stderr, "unigo: start profile %s: %v: recording it again\n", m.cfg.Profile, err)
		}
		return
	}
	n, err := m.mem.populate(bits)
	now := time.Now()
	os.Chtimes(m.cfg.Profile, now, now) // in use: not for pruneProfiles
	if m.cfg.Debug {
		fmt.Fprintf(m.cfg.Stderr, "unigo: start profile %s: %d pages backed before the boot (%v)\n", m.cfg.Profile, n, err)
	}
}

// recordProfile writes the boot's profile, if it is to be recorded. Called
// on the vCPU's thread, while the guest is stopped.
func (m *Machine) recordProfile() {
	if !m.profile.record {
		return
	}
	m.profile.record = false
	// The folder first: where it cannot be made, the page map is not read.
	err := os.MkdirAll(filepath.Dir(m.cfg.Profile), 0o755)
	var bits []byte
	if err == nil {
		bits, err = m.mem.touched()
	}
	if err == nil {
		err = writeFileAtomic(m.cfg.Profile, encodeProfile(m.profile.key, bits))
	}
	pruneProfiles(filepath.Dir(m.cfg.Profile))
	if m.cfg.Debug {
		fmt.Fprintf(m.cfg.Stderr, "unigo: start profile %s: recorded (%v)\n", m.cfg.Profile, err)
	}
}

// writeFileAtomic writes b to path through a temporary file in its folder,
// so that an instance reading it at the same time sees all of it or none.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".profile-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

// profileAge is how long a profile that no boot used stays in its folder.
const profileAge = 30 * 24 * time.Hour

// pruneProfiles removes from dir the profiles older than profileAge, of
// images since rebuilt elsewhere or deleted, and temporary files an
// interrupted write left.
func pruneProfiles(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		age := time.Since(fi.ModTime())
		if age > profileAge || strings.HasPrefix(e.Name(), ".profile-") && age > time.Hour {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// touched returns a bit per page of RAM: set if the monitor's own anonymous
// memory backs it, the pages the guest (or the loader) touched in RAM. It
// reads /proc/self/pagemap (Linux's Documentation/admin-guide/mm/pagemap.rst:
// bit 63 present, bit 61 a file page or shared) rather than mincore(2),
// which counts the image's data segment, mapped from the file, as resident
// wherever the file is cached, touched or not: backing those pages for
// writing would copy each one.
func (m *Memory) touched() ([]byte, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pages := uint64(len(m.b)) / abi.PageSize
	start := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.b)))) / abi.PageSize
	bits := make([]byte, (pages+7)/8)
	buf := make([]byte, 8*4096)
	for p := uint64(0); p < pages; {
		n := min(pages-p, uint64(len(buf)/8))
		if _, err := f.ReadAt(buf[:8*n], int64((start+p)*8)); err != nil {
			return nil, fmt.Errorf("read pagemap: %w", err)
		}
		for i := uint64(0); i < n; i++ {
			if e := binary.LittleEndian.Uint64(buf[8*i:]); e&(1<<63) != 0 && e&(1<<61) == 0 {
				bits[(p+i)/8] |= 1 << ((p + i) % 8)
			}
		}
		p += n
	}
	return bits, nil
}

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): back the range
// with writable host pages now.
const madvPopulateWrite = 23

// populate backs every page of RAM whose bit is set, a run of pages per
// madvise(2), and returns how many it backed.
func (m *Memory) populate(bits []byte) (int, error) {
	pages := uint64(len(m.b)) / abi.PageSize
	set := func(p uint64) bool { return p < pages && p/8 < uint64(len(bits)) && bits[p/8]&(1<<(p%8)) != 0 }
	n := 0
	for p := uint64(0); p < pages; {
		if !set(p) {
			p++
			continue
		}
		q := p
		for set(q) {
			q++
		}
		if err := syscall.Madvise(m.b[p*abi.PageSize:q*abi.PageSize], madvPopulateWrite); err != nil {
			return n, fmt.Errorf("madvise(MADV_POPULATE_WRITE): %w", err)
		}
		n += int(q - p)
		p = q
	}
	return n, nil
}
