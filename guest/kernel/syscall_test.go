package kernel

import (
	"testing"
	"unsafe"

	"unigo.dev/unigo/abi"
)

// The trap frame's layout is the contract with cpu_amd64.s; the argument
// order is the Linux x86-64 system call convention.
func TestTrapFrameArgs(t *testing.T) {
	f := trapFrame{rdi: 1, rsi: 2, rdx: 3, r10: 4, r8: 5, r9: 6, rax: 99}
	for i := 0; i < 6; i++ {
		if got := f.arg(i); got != uintptr(i+1) {
			t.Errorf("arg(%d) = %d, want %d", i, got, i+1)
		}
	}
	// The monitor reads trap frames with abi's Frame* offsets.
	for _, c := range []struct {
		name string
		off  uintptr
		word int
	}{
		{"rax", unsafe.Offsetof(f.rax), abi.FrameRAX},
		{"rbp", unsafe.Offsetof(f.rbp), abi.FrameRBP},
		{"r15", unsafe.Offsetof(f.r15), abi.FrameR15},
		{"vector", unsafe.Offsetof(f.vector), abi.FrameVector},
		{"rip", unsafe.Offsetof(f.rip), abi.FrameRIP},
		{"rsp", unsafe.Offsetof(f.rsp), abi.FrameRSP},
		{"ss", unsafe.Offsetof(f.ss), abi.FrameSS},
	} {
		if c.off != uintptr(c.word)*8 {
			t.Errorf("trapFrame.%s at byte %d, abi says word %d", c.name, c.off, c.word)
		}
	}
	if unsafe.Sizeof(f) != abi.FrameWords*8 || unsafe.Sizeof(f)%16 != 0 {
		t.Errorf("trapFrame is %d bytes, want %d and 16-byte multiple", unsafe.Sizeof(f), abi.FrameWords*8)
	}
}

func TestTableHasRuntimeCalls(t *testing.T) {
	// The calls every Go 1.26 program makes at start-up (prior-art §3).
	for _, nr := range []int{9, 11, 12, 13, 14, 28, 56, 60, 72, 131, 158, 202, 204, 228, 231, 232, 257, 281, 290, 302, 318} {
		if nr == 12 { // brk: the runtime does not use it
			continue
		}
		if table[nr].fn == nil {
			t.Errorf("system call %d has no handler", nr)
		}
	}
}

// An explicit ENOSYS entry (supNone) has no handler: it must not succeed.
func TestTableEntriesConsistent(t *testing.T) {
	for nr, e := range table {
		if e.fn != nil && e.sup == supNone {
			t.Errorf("system call %d has a handler but says supNone", nr)
		}
	}
}
