package machine

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/gdb"
)

// Debugger is the session a machine stops for (package gdb's Server).
type Debugger interface {
	Stopped(t gdb.Target, st gdb.Stop) gdb.Resume
	IsBreakpoint(addr uint64) bool
	Exited(status int) // the guest ended
}

// firstUserPC is where the guest first stops for a debugger: the main
// goroutine's start, before package initialization. Not earlier: until the
// runtime's first system call the kernel does not know whether its trap
// handlers run in ring 0 (see handlerCPL in package kernel), so a trap there
// cannot be taken on a paging-based KVM.
const firstUserPC = "runtime.main"

const rflagsTF = 1 << 8

// plantEntryStop puts a breakpoint of the monitor's own at firstUserPC, so
// that the debugger finds the guest stopped before the program's code.
func (m *Machine) plantEntryStop() error {
	tab, err := FuncTable(m.img.elf)
	if err != nil {
		return fmt.Errorf("--gdb: %w", err)
	}
	fn := tab.LookupFunc(firstUserPC)
	if fn == nil {
		return fmt.Errorf("--gdb: the image has no %s", firstUserPC)
	}
	b, err := m.mem.Code(fn.Entry, 1) // the image is identity-mapped
	if err != nil {
		return fmt.Errorf("--gdb: %s at %#x: %w", firstUserPC, fn.Entry, err)
	}
	m.entryStop, m.entryByte = fn.Entry, b[0]
	b[0] = gdb.Breakpoint
	return nil
}

// RequestDebugStop asks the guest to stop for the debugger (its Ctrl-C):
// the kernel takes the request at its next tick or halt. Safe to call from
// any goroutine.
func (m *Machine) RequestDebugStop() {
	b, err := m.mem.Slice(abi.CPUStateAddr+abi.CsDebugStop, 8)
	if err != nil {
		return
	}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[0])), 1)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// debugThread is one guest thread at a stop: its user context in guest
// memory, which the kernel resumes it from.
type debugThread struct {
	tid    int
	frame  []byte // abi.FrameWords words
	fsBase uint64 // its user FS base: Go's TLS, where g is
}

// debugTarget is the stopped guest, for the debugger.
type debugTarget struct {
	m       *Machine
	cr3     uint64
	threads []debugThread
}

// debugStop serves HcDebug: the guest stopped for why (abi.Debug*) with n
// threads listed in the bounce buffer. It reports whether the debugger
// asked to end the guest.
func (m *Machine) debugStop(why, n uint64) (kill bool, err error) {
	if m.cfg.Debugger == nil {
		return false, fmt.Errorf("the kernel stopped for a debugger (HcDebug) that is not attached")
	}
	if n == 0 || n > abi.HcBufSize/abi.DtSize {
		return false, fmt.Errorf("HcDebug with %d threads", n)
	}
	s, err := m.cpu.GetSregs()
	if err != nil {
		return false, err
	}
	t := &debugTarget{m: m, cr3: s.CR3}
	list, _ := m.mem.Slice(abi.HcBufAddr, n*abi.DtSize)
	for i := uint64(0); i < n; i++ {
		e := list[i*abi.DtSize:]
		gpa := binary.LittleEndian.Uint64(e[abi.DtFrame:])
		frame, err := m.mem.Slice(gpa, abi.FrameWords*8)
		if err != nil {
			return false, fmt.Errorf("HcDebug: thread %d's context at %#x: %w", i, gpa, err)
		}
		t.threads = append(t.threads, debugThread{tid: int(binary.LittleEndian.Uint64(e[abi.DtTID:])), frame: frame,
			fsBase: binary.LittleEndian.Uint64(e[abi.DtFSBase:])})
	}
	for _, th := range t.threads {
		putWord(th.frame, abi.FrameRFLAGS, word(th.frame, abi.FrameRFLAGS)&^rflagsTF) // a step ends here
	}
	cur := t.threads[0]
	st := gdb.Stop{Thread: cur.tid, Signal: 5} // SIGTRAP
	switch why {
	case abi.DebugStop:
		st.Signal = 2 // SIGINT: interrupted
	case abi.DebugBreak:
		at := word(cur.frame, abi.FrameRIP) - 1 // INT3 traps after itself
		switch {
		case m.entryStop != 0 && at == m.entryStop:
			b, _ := m.mem.Code(at, 1)
			b[0] = m.entryByte
			m.entryStop = 0
			putWord(cur.frame, abi.FrameRIP, at)
		case m.cfg.Debugger.IsBreakpoint(at):
			putWord(cur.frame, abi.FrameRIP, at)
			st.SWBreak = true
		}
	}
	res := m.cfg.Debugger.Stopped(t, st)
	if res.Kill {
		return true, nil
	}
	if res.Step {
		th := cur
		for _, x := range t.threads {
			if x.tid == res.Thread {
				th = x
			}
		}
		putWord(th.frame, abi.FrameRFLAGS, word(th.frame, abi.FrameRFLAGS)|rflagsTF)
	}
	return false, nil
}

func word(frame []byte, i int) uint64 { return binary.LittleEndian.Uint64(frame[8*i:]) }

func putWord(frame []byte, i int, v uint64) { binary.LittleEndian.PutUint64(frame[8*i:], v) }

// gdbOrder maps GDB's general registers (gdb.Regs.GPR) to frame words.
var gdbOrder = [16]int{abi.FrameRAX, abi.FrameRBX, abi.FrameRCX, abi.FrameRDX, abi.FrameRSI, abi.FrameRDI, abi.FrameRBP, abi.FrameRSP,
	abi.FrameR8, abi.FrameR9, abi.FrameR10, abi.FrameR11, abi.FrameR12, abi.FrameR13, abi.FrameR14, abi.FrameR15}

func (t *debugTarget) Threads() []int {
	ids := make([]int, len(t.threads))
	for i, th := range t.threads {
		ids[i] = th.tid
	}
	return ids
}

func (t *debugTarget) thread(tid int) (debugThread, error) {
	for _, th := range t.threads {
		if th.tid == tid {
			return th, nil
		}
	}
	return debugThread{}, fmt.Errorf("no thread %d", tid)
}

func (t *debugTarget) ReadRegs(tid int) (gdb.Regs, error) {
	th, err := t.thread(tid)
	if err != nil {
		return gdb.Regs{}, err
	}
	var r gdb.Regs
	for i, w := range gdbOrder {
		r.GPR[i] = word(th.frame, w)
	}
	r.RIP = word(th.frame, abi.FrameRIP)
	r.EFLAGS = uint32(word(th.frame, abi.FrameRFLAGS))
	cs, ss := uint32(word(th.frame, abi.FrameCS)), uint32(word(th.frame, abi.FrameSS))
	r.Seg = [6]uint32{cs, ss, ss, ss, 0, 0}
	r.FSBase = th.fsBase
	return r, nil
}

// WriteRegs changes a thread's user context. The selectors, the segment
// bases and the privileged flags stay the kernel's.
func (t *debugTarget) WriteRegs(tid int, r gdb.Regs) error {
	th, err := t.thread(tid)
	if err != nil {
		return err
	}
	for i, w := range gdbOrder {
		putWord(th.frame, w, r.GPR[i])
	}
	putWord(th.frame, abi.FrameRIP, r.RIP)
	const userFlags = 0x254dd5 // arithmetic flags, TF, DF, AC, ID: what sigreturn allows too
	old := word(th.frame, abi.FrameRFLAGS)
	putWord(th.frame, abi.FrameRFLAGS, old&^userFlags|uint64(r.EFLAGS)&userFlags)
	return nil
}

// access copies between b and guest-virtual memory at addr, a page at a
// time through the guest's page tables.
func (t *debugTarget) access(addr uint64, b []byte, write bool) error {
	for len(b) > 0 {
		gpa, err := t.m.mem.Translate(t.cr3, addr)
		if err != nil {
			return err
		}
		n := min(uint64(len(b)), abi.PageSize-addr%abi.PageSize)
		host, err := t.m.mem.Code(gpa, n) // breakpoints go into the ROM
		if err != nil {
			return err
		}
		if write {
			copy(host, b[:n])
		} else {
			copy(b[:n], host)
		}
		b, addr = b[n:], addr+n
	}
	return nil
}

func (t *debugTarget) ReadMemory(addr uint64, b []byte) error  { return t.access(addr, b, false) }
func (t *debugTarget) WriteMemory(addr uint64, b []byte) error { return t.access(addr, b, true) }
