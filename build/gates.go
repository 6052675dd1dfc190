package build

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/machine"
)

// System-call gates.
//
// On a paging-based KVM (prior-art §5, ARCHITECTURE.md "Why CPL 3") a
// SYSCALL instruction leaves the guest for the host's hypervisor, which
// puts the vCPU at LSTAR: 1-27 µs a round trip on this machine, depending on
// the hour, while the handler itself runs at CPL 3 at native speed. A jump
// to the same handler costs a few nanoseconds. So the build moves every
// SYSCALL instruction of the image into a gate in the kernel's room for them
// (guest/kernel.syscallGates): whole instructions around it, at least the 5
// bytes of a jump, become a jump to its gate; the gate runs them, then, on a
// paging-based KVM (the kernel has set abi.CsFlagSoftIntr), enters the
// kernel's syscallEntry with RCX and R11 as SYSCALL would have set them, and
// elsewhere (real x86, QEMU) executes the SYSCALL itself; then it runs the
// instructions that followed and jumps back. Rewriting the system-call
// instructions of unmodified binaries into jumps or calls is what HermiTux
// (Olivier et al., VEE 2019) and zpoline (Yasukata et al., USENIX ATC 2023)
// do; here the build does it once, with a disassembler and the image's own
// function table, so nothing changes at run time.

// Names in the image's function table (pclntab, kept by -ldflags=-s too).
const (
	gatesFunc        = KernelPackage + ".syscallGates"
	syscallEntryFunc = KernelPackage + ".syscallEntry"
	jmpLen           = 5 // JMP rel32
)

// gateStats says what rewriteSyscalls did.
type gateStats struct {
	gated, left int      // SYSCALL instructions moved into gates, and left in place
	why         []string // for each left: where and why
	bytes       int      // of the room used
	already     bool     // the image's gates were written by an earlier build
}

func (s gateStats) String() string {
	if s.already {
		return "in place already (an image go build left as it was)"
	}
	t := fmt.Sprintf("%d of %d SYSCALL instructions go through gates (%d bytes)", s.gated, s.gated+s.left, s.bytes)
	if len(s.why) > 0 {
		t += "; left in place: " + strings.Join(s.why, "; ")
	}
	return t
}

// rewriteSyscalls moves the SYSCALL instructions of the image at path into
// gates.
func rewriteSyscalls(path string) (gateStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return gateStats{}, err
	}
	st, err := gateImage(b)
	if err != nil || st.already {
		return st, err
	}
	return st, os.WriteFile(path, b, 0o755)
}

// imageText is an image's code and function table.
type imageText struct {
	addr  uint64 // of .text
	code  []byte // .text's bytes, within the file's
	funcs []gosym.Func
}

func (x *imageText) at(pc uint64) []byte { return x.code[pc-x.addr:] }
func (x *imageText) inText(pc uint64) bool {
	return pc >= x.addr && pc < x.addr+uint64(len(x.code))
}

// readText finds the code and function table of the ELF image in b.
func readText(b []byte) (*imageText, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	t, err := machine.FuncTable(f)
	if err != nil {
		return nil, err
	}
	text := f.Section(".text")
	if text.Type != elf.SHT_PROGBITS || text.Offset+text.Size > uint64(len(b)) {
		return nil, errors.New(".text lies outside the file")
	}
	return &imageText{addr: text.Addr, code: b[text.Offset : text.Offset+text.Size], funcs: t.Funcs}, nil
}

// gateImage rewrites the ELF image in b in place.
func gateImage(b []byte) (gateStats, error) {
	x, err := readText(b)
	if err != nil {
		return gateStats{}, err
	}
	at, inText := x.at, x.inText
	var room *gosym.Func
	var entry uint64
	for i := range x.funcs {
		switch fn := &x.funcs[i]; fn.Name {
		case gatesFunc:
			room = fn
		case syscallEntryFunc:
			entry = fn.Entry
		}
	}
	if room == nil || !inText(room.Entry) || !inText(entry) || room.End <= room.Entry {
		return gateStats{}, fmt.Errorf("the kernel has no %s or %s in .text", gatesFunc, syscallEntryFunc)
	}
	end := min(room.End, room.Entry+abi.GatesSize)
	if !allPadding(at(room.Entry)[:end-room.Entry]) {
		// An image this build gated before, which go build found up to
		// date and left alone.
		return gateStats{already: true}, nil
	}
	w := gateWriter{next: room.Entry, end: end, entry: entry}
	var st gateStats
	for i := range x.funcs {
		fn := &x.funcs[i]
		if fn == room || fn.End <= fn.Entry || !inText(fn.Entry) || !inText(fn.End-1) {
			continue
		}
		// FIPS 140 mode checks the module's code against a checksum taken
		// at link time: its bytes must stay as linked.
		if strings.HasPrefix(fn.Name, "crypto/internal/fips140") {
			continue
		}
		body := at(fn.Entry)[:fn.End-fn.Entry]
		if !hasSyscallBytes(body) {
			continue
		}
		sites, bad := planFunc(fn.Entry, body)
		for _, s := range sites {
			err := bad
			if err == nil {
				err = w.gate(s, at(s.start)[:s.end-s.start])
			}
			if err != nil {
				st.left++
				st.why = append(st.why, fmt.Sprintf("%s+%#x: %v", fn.Name, s.syscall-fn.Entry, err))
				continue
			}
			st.gated++
		}
	}
	copy(at(room.Entry), w.out)
	st.bytes = len(w.out)
	return st, nil
}

func hasSyscallBytes(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == 0x0f && b[i+1] == 0x05 {
			return true
		}
	}
	return false
}

// site is the span of whole instructions [start, end) that a jump to a gate
// replaces, holding the SYSCALL at syscall.
type site struct{ start, syscall, end uint64 }

// planFunc decodes the function at pc and chooses a span for each of its
// SYSCALL instructions. A function that does not decode cleanly, or that
// jumps through a register or memory (a jump table, whose targets it cannot
// see), gets an error and no rewrite: its SYSCALLs stay.
func planFunc(pc uint64, body []byte) ([]site, error) {
	type ins struct {
		pc uint64
		in x86asm.Inst
	}
	var list []ins
	targets := map[uint64]bool{}
	var syscalls []int
	var bad error
	for off := 0; off < len(body); {
		in, err := x86asm.Decode(body[off:], 64)
		if err != nil {
			if allPadding(body[off:]) {
				break // INT3s to the next function
			}
			bad = fmt.Errorf("undecodable bytes at +%#x", off)
			break
		}
		p := pc + uint64(off)
		list = append(list, ins{pc: p, in: in})
		if in.Op == x86asm.SYSCALL {
			syscalls = append(syscalls, len(list)-1)
		}
		if rel, ok := in.Args[0].(x86asm.Rel); ok {
			targets[uint64(int64(p)+int64(in.Len)+int64(rel))] = true
		} else if in.Op == x86asm.JMP {
			bad = fmt.Errorf("an indirect jump at +%#x", off)
		}
		off += in.Len
	}
	var sites []site
	if bad != nil {
		for _, k := range syscalls {
			sites = append(sites, site{syscall: list[k].pc})
		}
		if len(sites) == 0 {
			return nil, bad
		}
		return sites, bad
	}
	used := -1 // the last instruction a span took
	for _, k := range syscalls {
		s := site{syscall: list[k].pc}
		// Before it: the instructions that lead to it, none a branch target
		// but the first.
		n, j := list[k].in.Len, k
		for n < jmpLen && j-1 > used && movable(list[j-1].in) && !targets[list[j].pc] {
			j--
			n += list[j].in.Len
		}
		if n >= jmpLen {
			s.start, s.end = list[j].pc, list[k].pc+uint64(list[k].in.Len)
			used = k
			sites = append(sites, s)
			continue
		}
		// After it: the SYSCALL first, then what follows; a RET may end it.
		n, j = list[k].in.Len, k
		for n < jmpLen && j+1 < len(list) && !targets[list[j+1].pc] && (movable(list[j+1].in) || list[j+1].in.Op == x86asm.RET) && list[j].in.Op != x86asm.RET {
			j++
			n += list[j].in.Len
		}
		if n < jmpLen {
			sites = append(sites, s) // start == end: left in place
			continue
		}
		s.start, s.end = list[k].pc, list[j].pc+uint64(list[j].in.Len)
		used = j
		sites = append(sites, s)
	}
	return sites, nil
}

// movable reports whether in may run at another address: no relative
// branch or RIP-relative operand, no jump, call or return, no other
// system call.
func movable(in x86asm.Inst) bool {
	switch in.Op {
	case x86asm.JMP, x86asm.CALL, x86asm.RET, x86asm.LJMP, x86asm.LCALL, x86asm.LRET,
		x86asm.SYSCALL, x86asm.SYSENTER, x86asm.INT, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ:
		return false
	}
	for _, a := range in.Args {
		switch a := a.(type) {
		case x86asm.Rel:
			return false
		case x86asm.Mem:
			if a.Base == x86asm.RIP {
				return false
			}
		}
	}
	return true
}

func allPadding(b []byte) bool {
	for _, c := range b {
		if c != 0xcc {
			return false
		}
	}
	return true
}

// gateWriter assembles gates into the room [next, end).
type gateWriter struct {
	next, end uint64 // where the next gate goes; the room's end
	entry     uint64 // syscallEntry
	out       []byte // the gates written so far, from the room's start
}

// gate writes the gate for s, whose bytes are span, and the jump to it over
// span. A site with an empty span is reported as left in place.
func (w *gateWriter) gate(s site, span []byte) error {
	if s.start == s.end {
		return errors.New("no span of 5 bytes of whole, movable instructions around it")
	}
	pre, post := span[:s.syscall-s.start], span[s.syscall-s.start+2:]
	flags, via := uint64(abi.CPUStateAddr+abi.CsFlags), uint64(abi.CPUStateAddr+abi.CsViaGate)
	if flags >= 1<<31 || via >= 1<<31 || abi.CsFlagSoftIntr > 0xff {
		return errors.New("the CPU state block is out of an absolute operand's reach")
	}
	le := binary.LittleEndian
	base := w.next
	rel32 := func(g []byte, at int, to uint64) { // the rel32 ending at g[at+4]
		le.PutUint32(g[at:], uint32(int32(int64(to)-int64(base+uint64(at)+4))))
	}
	g := append([]byte(nil), pre...)
	g = append(g, 0x9c)             // PUSHFQ
	g = append(g, 0xf6, 0x04, 0x25) // TESTB $CsFlagSoftIntr, flags (absolute)
	g = le.AppendUint32(g, uint32(flags))
	g = append(g, abi.CsFlagSoftIntr)
	je := len(g)
	g = append(g, 0x74, 0)          // JE slow
	g = append(g, 0x41, 0x5b)       // POPQ R11: RFLAGS, as SYSCALL saves them
	g = append(g, 0x6a, 0x02, 0x9d) // PUSHQ $2; POPFQ: TF, DF, AC off, as SFMASK turns them off
	g = append(g, 0xc6, 0x04, 0x25) // MOVB $1, via (absolute): counted as a gate's
	g = le.AppendUint32(g, uint32(via))
	g = append(g, 1)
	lea := len(g)
	g = append(g, 0x48, 0x8d, 0x0d, 0, 0, 0, 0) // LEAQ back(RIP), CX: the return address, as SYSCALL saves it
	jmp := len(g)
	g = append(g, 0xe9, 0, 0, 0, 0) // JMP syscallEntry
	g[je+1] = byte(len(g) - (je + 2))
	g = append(g, 0x9d, 0x0f, 0x05) // slow: POPFQ; SYSCALL
	rel32(g, lea+3, base+uint64(len(g)))
	rel32(g, jmp+1, w.entry)
	g = append(g, post...)          // back:
	g = append(g, 0xe9, 0, 0, 0, 0) // JMP to the span's end
	rel32(g, len(g)-4, s.end)
	if base+uint64(len(g)) > w.end {
		return fmt.Errorf("no room left for its gate (%d bytes)", abi.GatesSize)
	}
	w.out = append(w.out, g...)
	w.next += uint64(len(g))
	span[0] = 0xe9
	le.PutUint32(span[1:], uint32(int32(int64(base)-int64(s.start+jmpLen))))
	for i := jmpLen; i < len(span); i++ {
		span[i] = 0xcc // never reached: no branch lands inside a span
	}
	return nil
}
