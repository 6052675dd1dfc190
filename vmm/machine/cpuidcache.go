package machine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"unigo.dev/unigo/vmm/kvm"
)

// KVM_GET_SUPPORTED_CPUID executes CPUID on the host for every leaf it
// reports (arch/x86/kvm/cpuid.c, do_host_cpuid), and under a nested host
// each CPUID exits to the hypervisor below: 0.3-0.5 ms of every boot here
// (BENCHMARKS.md). What KVM supports is fixed when it is loaded
// (kvm_set_cpu_caps, from the CPU's features at boot and KVM's parameters),
// so the monitor keeps the answer in a file of the user cache folder named
// by the host's boot and KVM's load, and asks KVM again once either changed.

// The file: cpuidMagic, a little-endian uint32 count, then that many
// kvm_cpuid_entry2 (ten little-endian uint32s each).
const cpuidMagic = "UNIGOCP1"

// cpuidFileName names the host's boot and KVM's load: the boot's random
// boot_id, the kernel's release, and where KVM is a module its lines of
// /proc/modules, whose load addresses change when it is loaded again (with
// other parameters, perhaps). "" if the boot cannot be told.
func cpuidFileName() string {
	id := readProc("/proc/sys/kernel/random/boot_id", 64)
	if len(bytes.TrimSpace(id)) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write(id)
	h.Write(readProc("/proc/sys/kernel/osrelease", 256))
	// Absent where nothing is a module; a line is "kvm_intel 401408 0 - Live 0xffffffffc0a2e000".
	for _, l := range bytes.Split(readProc("/proc/modules", 1<<20), []byte("\n")) {
		if bytes.HasPrefix(l, []byte("kvm")) {
			h.Write(l)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// readProc returns up to max bytes of a /proc file, nil if it cannot be
// read: with plain system calls, since os.Open would register the file with
// Go's poller first.
func readProc(path string, max int) []byte {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	b := make([]byte, 0, min(max, 4096))
	for len(b) < max {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := syscall.Read(fd, b[len(b):min(cap(b), max)])
		if n <= 0 || err != nil {
			break
		}
		b = b[:len(b)+n]
	}
	return b
}

// supportedCPUID returns the CPUID leaves KVM offers, from the file in
// Config.CPUIDCache that names this host boot, or else from KVM, written to
// that file (and any other file of the folder, of an earlier boot, removed).
func (m *Machine) supportedCPUID() ([]kvm.CPUIDEntry, error) {
	name := ""
	if m.cfg.CPUIDCache != "" {
		name = cpuidFileName()
	}
	if name == "" {
		return m.sys.SupportedCPUID()
	}
	path := filepath.Join(m.cfg.CPUIDCache, name)
	if b, err := os.ReadFile(path); err == nil {
		if ents, ok := decodeCPUID(b); ok {
			return ents, nil
		}
	}
	ents, err := m.sys.SupportedCPUID()
	if err != nil {
		return nil, err
	}
	// The file only saves time: a boot goes on without it.
	if os.MkdirAll(m.cfg.CPUIDCache, 0o755) == nil && writeFileAtomic(path, encodeCPUID(ents)) == nil {
		if old, err := os.ReadDir(m.cfg.CPUIDCache); err == nil {
			for _, e := range old {
				if e.Name() != name {
					os.Remove(filepath.Join(m.cfg.CPUIDCache, e.Name()))
				}
			}
		}
	}
	return ents, nil
}

const cpuidEntrySize = int(unsafe.Sizeof(kvm.CPUIDEntry{})) // kvm_cpuid_entry2, 40

// entryBytes is ents as the kernel lays them out (the monitor runs on
// little-endian amd64 only).
func entryBytes(ents []kvm.CPUIDEntry) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ents))), len(ents)*cpuidEntrySize)
}

func encodeCPUID(ents []kvm.CPUIDEntry) []byte {
	b := binary.LittleEndian.AppendUint32([]byte(cpuidMagic), uint32(len(ents)))
	return append(b, entryBytes(ents)...)
}

// decodeCPUID reads a file encodeCPUID wrote; false if it is not one.
func decodeCPUID(b []byte) ([]kvm.CPUIDEntry, bool) {
	h := len(cpuidMagic) + 4
	if len(b) < h || string(b[:len(cpuidMagic)]) != cpuidMagic {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b[len(cpuidMagic):])
	if n == 0 || n > kvm.MaxCPUID || len(b) != h+int(n)*cpuidEntrySize {
		return nil, false
	}
	ents := make([]kvm.CPUIDEntry, n)
	copy(entryBytes(ents), b[h:])
	return ents, true
}
