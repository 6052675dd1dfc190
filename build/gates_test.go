package build

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"unigo.dev/unigo/abi"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Function bodies as the Go 1.26 toolchain emits them (objdump of an image).
const (
	fnExit = "8b7c2408 b8e7000000 0f05 c3 cccccc" // runtime.exit: MOVL 8(SP), DI; MOVL $231, AX; SYSCALL; RET
	// internal/runtime/syscall/linux.Syscall6: four register moves, SYSCALL,
	// CMPQ AX, $-4095; JLS; ...
	fnSyscall6 = "4989f2 4889fa 4889ce 4889df 0f05 483d01f0ffff 7602 c3 c3"
	// runtime.raise: getpid, gettid, tgkill back to back.
	fnRaise = "b827000000 0f05 4189c4 b8ba000000 0f05 89c6 4489e7 8b542408 b8ea000000 0f05 c3"
)

func TestPlanSpans(t *testing.T) {
	const pc = 0x401000
	for _, tc := range []struct {
		name, body string
		want       []site
	}{
		{"exit", fnExit, []site{{pc + 4, pc + 9, pc + 11}}},
		{"Syscall6", fnSyscall6, []site{{pc + 9, pc + 12, pc + 14}}},
		{"raise", fnRaise, []site{{pc, pc + 5, pc + 7}, {pc + 10, pc + 15, pc + 17}, {pc + 26, pc + 31, pc + 33}}},
		// The SYSCALL is a branch target (the JMP at the start lands on it):
		// the span starts at it and takes what follows, a RET ending it.
		{"target", "eb05 b8e7000000 0f05 89442420 c3", []site{{pc + 7, pc + 7, pc + 13}}},
		// A RIP-relative load before it cannot move: the span follows.
		{"rip", "8b0500000000 0f05 483d01f0ffff c3", []site{{pc + 6, pc + 6, pc + 14}}},
		// Nothing movable before it and a RET right after: left in place
		// (an empty span).
		{"short", "e800000000 0f05 c3", []site{{syscall: pc + 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planFunc(pc, unhex(t, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("sites %x, want %x", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("site %d = %x, want %x", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestPlanRefusesIndirectJumps(t *testing.T) {
	// JMP *AX (a jump table's) anywhere in the function: its targets are
	// unknown, so no span may be chosen.
	sites, err := planFunc(0x401000, unhex(t, "b8e7000000 0f05 ffe0"))
	if err == nil || len(sites) != 1 {
		t.Fatalf("got %v, %v; want the site and an error", sites, err)
	}
}

// TestGateCode decodes what gate writes: the span becomes a jump to the
// gate, and the gate runs the moved instructions, tests the flag, enters
// syscallEntry as SYSCALL would or executes the SYSCALL, and jumps back.
func TestGateCode(t *testing.T) {
	const pc, room, entry = 0x401000, 0x500000, 0x480000
	body := unhex(t, fnSyscall6)
	sites, err := planFunc(pc, body)
	if err != nil || len(sites) != 1 {
		t.Fatal(sites, err)
	}
	s := sites[0]
	w := gateWriter{next: room, end: room + abi.GatesSize, entry: entry}
	if err := w.gate(s, body[s.start-pc:s.end-pc]); err != nil {
		t.Fatal(err)
	}
	in, err := x86asm.Decode(body[s.start-pc:], 64)
	if err != nil || in.Op != x86asm.JMP || s.start+uint64(in.Len)+uint64(int64(in.Args[0].(x86asm.Rel))) != room {
		t.Fatalf("the span starts with %v, want JMP %#x", in, room)
	}
	type step struct {
		op     x86asm.Op
		target uint64 // of a branch or a LEAQ's RIP-relative address, if nonzero
	}
	var got []step
	back := uint64(0)
	for off := 0; off < len(w.out); {
		in, err := x86asm.Decode(w.out[off:], 64)
		if err != nil {
			t.Fatalf("gate +%d: %v", off, err)
		}
		at := room + uint64(off) + uint64(in.Len)
		st := step{op: in.Op}
		switch a := in.Args[0].(type) {
		case x86asm.Rel:
			st.target = uint64(int64(at) + int64(a))
		}
		if m, ok := in.Args[1].(x86asm.Mem); ok && m.Base == x86asm.RIP {
			st.target = uint64(int64(at) + m.Disp)
		}
		if in.Op == x86asm.SYSCALL {
			back = at
		}
		got = append(got, st)
		off += in.Len
	}
	// The span holds the last MOVQ and the SYSCALL: nothing follows it in
	// the gate but the jump back.
	slow := room + uint64(len(w.out)) - 5 - 2 - 1
	want := []step{
		{x86asm.MOV, 0},     // the moved MOVQ BX, DI
		{x86asm.PUSHFQ, 0},  //
		{x86asm.TEST, 0},    // the CPU state flag
		{x86asm.JE, slow},   //
		{x86asm.POP, 0},     // R11
		{x86asm.PUSH, 0},    //
		{x86asm.POPFQ, 0},   //
		{x86asm.MOV, 0},     // the gate's mark
		{x86asm.LEA, back},  // RCX: where syscallEntry returns
		{x86asm.JMP, entry}, //
		{x86asm.POPFQ, 0},   // slow:
		{x86asm.SYSCALL, 0}, //
		{x86asm.JMP, s.end}, // back: to the span's end
	}
	if len(got) != len(want) {
		t.Fatalf("gate has %d instructions, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("gate instruction %d = %v %#x, want %v %#x", i, got[i].op, got[i].target, want[i].op, want[i].target)
		}
	}
	for _, c := range body[s.start-pc+jmpLen : s.end-pc] {
		if c != 0xcc {
			t.Errorf("the span's rest is %x, want INT3s", body[s.start-pc:s.end-pc])
			break
		}
	}
}

// TestGateImageTwice builds hello, whose SYSCALLs the build has gated, and
// gates the image again, as a build over an output go build left alone
// would: the second pass finds the gates in place and changes nothing.
func TestGateImageTwice(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	img := filepath.Join(t.TempDir(), "hello.img")
	if err := Build(Options{Package: "../examples/hello", Output: img}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rewriteSyscalls(img)
	if err != nil || !st.already {
		t.Fatalf("second pass: %v, %v; want the gates found in place", st, err)
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Error("the second pass changed the image")
	}
	// No SYSCALL instruction is left outside the gates' room.
	x, err := readText(before)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range x.funcs {
		if fn.Name == gatesFunc || fn.End <= fn.Entry {
			continue
		}
		sites, _ := planFunc(fn.Entry, x.at(fn.Entry)[:fn.End-fn.Entry])
		for _, s := range sites {
			t.Errorf("a SYSCALL in %s at %#x", fn.Name, s.syscall)
		}
	}
}
