package machine

import (
	"bytes"
	"strings"
	"testing"

	"unigo.dev/unigo/abi"
)

// Hypercalls with synthetic guest memory: arguments a hostile guest chose.
func TestHypercalls(t *testing.T) {
	var out, errOut bytes.Buffer
	m := &Machine{mem: &Memory{b: make([]byte, 1<<20)}, cfg: Config{Stdout: &out, Stderr: &errOut}, reported: map[uint64]bool{}}
	set := func(a0, a1 uint64) {
		m.mem.PutU64(abi.HcPageAddr+abi.HcA0, a0)
		m.mem.PutU64(abi.HcPageAddr+abi.HcA1, a1)
	}
	ret := func() uint64 { v, _ := m.mem.U64(abi.HcPageAddr + abi.HcRet); return v }

	buf, _ := m.mem.Slice(abi.HcBufAddr, 5)
	copy(buf, "hello")
	set(1, 5)
	if _, _, err := m.hypercall(abi.HcConsoleWrite); err != nil || out.String() != "hello" || ret() != 5 {
		t.Fatalf("console write: %v, %q, ret %d", err, out.String(), ret())
	}
	set(2, abi.HcBufSize+1)
	if _, _, err := m.hypercall(abi.HcConsoleWrite); err == nil {
		t.Error("a console write longer than the buffer was accepted")
	}
	set(^uint64(0), 0)
	for i := 0; i < 3; i++ {
		if _, _, err := m.hypercall(abi.HcUnimplemented); err != nil {
			t.Fatal(err)
		}
	}
	set(12345678, 0)
	m.hypercall(abi.HcUnimplemented)
	if n := strings.Count(errOut.String(), "out of range"); n != 1 || len(m.reported) != 1 {
		t.Errorf("out-of-range numbers reported %d times, %d map entries; want 1 and 1:\n%s", n, len(m.reported), errOut.String())
	}
	set(0, 0)
	if _, _, err := m.hypercall(abi.HcHalt); err == nil || !strings.Contains(err.Error(), "deadlock") {
		t.Errorf("a wait with no deadline: %v, want a deadlock error", err)
	}
	set(3, 0)
	if done, status, err := m.hypercall(abi.HcExit); !done || status != 3 || err != nil {
		t.Errorf("exit: %v %d %v", done, status, err)
	}
	if _, _, err := m.hypercall(999); err == nil {
		t.Error("unknown hypercall accepted")
	}
}
