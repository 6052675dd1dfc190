package machine

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"unigo.dev/unigo/abi"
)

// TestProfileFile checks the start profile's encoding and that a file for
// another image, another RAM size or of the wrong length is refused.
func TestProfileFile(t *testing.T) {
	key := profileKey{13553789, 1796303158320272942, 4242, 8 << 20}
	bits := make([]byte, 8<<20/abi.PageSize/8)
	bits[0], bits[17] = 0x81, 0xff
	b := encodeProfile(key, bits)
	got, err := decodeProfile(b, key)
	if err != nil || !bytes.Equal(got, bits) {
		t.Fatalf("decode: %v, %x", err, got[:20])
	}
	for name, c := range map[string]struct {
		b   []byte
		key profileKey
	}{
		"another file":     {b, profileKey{13553789, 1, 4242, 8 << 20}},
		"another RAM size": {encodeProfile(profileKey{13553789, 1796303158320272942, 4242, 16 << 20}, bits), profileKey{13553789, 1796303158320272942, 4242, 16 << 20}},
		"truncated":        {b[:len(b)-1], key},
		"not a profile":    {[]byte("hello, world: not a profile at all, no header"), key},
		"empty":            {nil, key},
	} {
		if _, err := decodeProfile(c.b, c.key); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestProfileTouchedPopulate checks, on real host memory, that touched sees
// the pages written and only those, and that populate backs exactly the
// pages a profile names.
func TestProfileTouchedPopulate(t *testing.T) {
	m, err := newMemory(4<<20, 0, 0, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.free()
	for _, p := range []int{0, 1, 7, 300, 1023} {
		m.b[p*abi.PageSize+5] = 1
	}
	bits, err := m.touched()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{0: true, 1: true, 7: true, 300: true, 1023: true}
	for p := 0; p < 1024; p++ {
		if got := bits[p/8]&(1<<(p%8)) != 0; got != want[p] {
			t.Errorf("page %d: touched %v, want %v", p, got, want[p])
		}
	}
	n, err := newMemory(4<<20, 0, 0, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer n.free()
	backed, err := n.populate(bits)
	if errors.Is(err, syscall.EINVAL) {
		t.Skipf("the host cannot back pages in advance (MADV_POPULATE_WRITE, Linux 5.14): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if backed != len(want) {
		t.Errorf("populate backed %d pages, want %d", backed, len(want))
	}
	again, err := n.touched()
	if err != nil || !bytes.Equal(again, bits) {
		t.Errorf("after populate, touched %x, want %x (%v)", again[:8], bits[:8], err)
	}
}
