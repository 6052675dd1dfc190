package machine

import "testing"

// TestMemoryHole checks Slice's translation and bounds around a hole in RAM:
// 8 MiB of RAM with a hole at [2 MiB, 6 MiB) is guest-physical [0, 2 MiB)
// and [6 MiB, 12 MiB).
func TestMemoryHole(t *testing.T) {
	const mib = 1 << 20
	m, err := newMemory(8*mib, 2*mib, 6*mib)
	if err != nil {
		t.Fatal(err)
	}
	defer m.free()
	for _, c := range []struct {
		gpa, n uint64
		off    int64 // offset in m.b, -1 for an error
	}{
		{0x1000, 8, 0x1000},
		{2*mib - 8, 8, 2*mib - 8},
		{2*mib - 4, 8, -1}, // runs into the hole
		{2 * mib, 1, -1},
		{6*mib - 1, 1, -1},
		{6 * mib, 8, 2 * mib},
		{12*mib - 8, 8, 8*mib - 8},
		{12*mib - 4, 8, -1}, // past the end of RAM
		{^uint64(0) - 3, 8, -1},
	} {
		b, err := m.Slice(c.gpa, c.n)
		if c.off < 0 {
			if err == nil {
				t.Errorf("Slice(%#x, %d) = no error, want one", c.gpa, c.n)
			}
			continue
		}
		if err != nil {
			t.Errorf("Slice(%#x, %d): %v", c.gpa, c.n, err)
			continue
		}
		b[0] = 0x5a
		if m.b[c.off] != 0x5a {
			t.Errorf("Slice(%#x, %d) is not at offset %#x of RAM", c.gpa, c.n, c.off)
		}
		m.b[c.off] = 0
	}
	if got := m.Map(); len(got) != 2 || got[1].Addr != 6*mib || got[1].Size != 6*mib {
		t.Errorf("Map() = %+v", got)
	}
}
