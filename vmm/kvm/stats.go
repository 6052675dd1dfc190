package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// KVM's binary statistics (api.rst 4.130 KVM_GET_STATS_FD): a file whose
// header locates the descriptors, each a name, a type and the offset of
// its value in the data block, which is read again at each look.
const (
	kvmGetStatsFD = 0xAECE // _IO(KVMIO, 0xce)

	statsHeaderLen = 24 // struct kvm_stats_header: flags, name_size, num_desc, id/desc/data offsets
	statsDescLen   = 16 // struct kvm_stats_desc before its name: flags, exponent, size, offset, bucket_size

	statsTypeMask       = 0xf << 0 // KVM_STATS_TYPE_*
	statsTypeCumulative = 0 << 0
	statsUnitMask       = 0xf << 4 // KVM_STATS_UNIT_*
	statsUnitNone       = 0 << 4
)

// Stats reads one vCPU's KVM statistics.
type Stats struct {
	f      *os.File
	names  []string // the cumulative counters without a unit: events
	offs   []int    // where each one's value is in the data block
	dataAt int64
	size   int // of the data block, up to the last of them
}

// OpenStats opens c's statistics. Any goroutine may read them while the
// vCPU runs.
func (c *VCPU) OpenStats() (*Stats, error) {
	fd, err := ioctl(c.fd, kvmGetStatsFD, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_STATS_FD: %w", err)
	}
	s := &Stats{f: os.NewFile(fd, "kvm-vcpu-stats")}
	if err := s.parse(); err != nil {
		s.f.Close()
		return nil, fmt.Errorf("KVM_GET_STATS_FD: %w", err)
	}
	return s, nil
}

func (s *Stats) parse() error {
	le := binary.LittleEndian
	h := make([]byte, statsHeaderLen)
	if _, err := s.f.ReadAt(h, 0); err != nil {
		return err
	}
	nameSize, n := le.Uint32(h[4:]), le.Uint32(h[8:])
	descAt, dataAt := int64(le.Uint32(h[16:])), int64(le.Uint32(h[20:]))
	if nameSize == 0 || nameSize > 256 || n > 4096 {
		return errors.New("a statistics header out of bounds")
	}
	each := statsDescLen + int(nameSize)
	d := make([]byte, int(n)*each)
	if _, err := s.f.ReadAt(d, descAt); err != nil {
		return err
	}
	for i := range int(n) {
		e := d[i*each : (i+1)*each]
		flags, size, off := le.Uint32(e), le.Uint16(e[6:]), le.Uint32(e[8:])
		if flags&statsTypeMask != statsTypeCumulative || flags&statsUnitMask != statsUnitNone || size != 1 {
			continue
		}
		name := e[statsDescLen:]
		for j, b := range name {
			if b == 0 {
				name = name[:j]
				break
			}
		}
		s.names = append(s.names, string(name))
		s.offs = append(s.offs, int(off))
		s.size = max(s.size, int(off)+8)
	}
	s.dataAt = dataAt
	return nil
}

// Events returns the vCPU's event counters by KVM's names (exits, pf_taken,
// halt_exits...).
func (s *Stats) Events() (map[string]uint64, error) {
	b := make([]byte, s.size)
	if _, err := s.f.ReadAt(b, s.dataAt); err != nil {
		return nil, fmt.Errorf("read KVM statistics: %w", err)
	}
	m := make(map[string]uint64, len(s.names))
	for i, name := range s.names {
		m[name] = binary.LittleEndian.Uint64(b[s.offs[i]:])
	}
	return m, nil
}

// Close releases the statistics file.
func (s *Stats) Close() error { return s.f.Close() }
