package gdb

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Target is a stopped guest, as the debugger sees it. Its methods are called
// only from Stopped, on the caller's goroutine.
type Target interface {
	// Threads lists the guest's thread ids, the one that stopped first.
	Threads() []int
	ReadRegs(tid int) (Regs, error)
	WriteRegs(tid int, r Regs) error
	// ReadMemory and WriteMemory work on guest-virtual addresses.
	ReadMemory(addr uint64, b []byte) error
	WriteMemory(addr uint64, b []byte) error
}

// Regs are the registers of the 'g' packet, in GDB's amd64 order
// (gdb/features/i386/64bit-core.xml): rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp,
// r8-r15, rip, eflags, cs, ss, ds, es, fs, gs. The x87 and SSE registers that
// follow are reported unavailable.
type Regs struct {
	GPR    [16]uint64
	RIP    uint64
	EFLAGS uint32
	Seg    [6]uint32 // cs, ss, ds, es, fs, gs
	FSBase uint64    // with the target description only (see targetXML)
	GSBase uint64
}

const (
	regsSize  = 16*8 + 8 + 4 + 6*4 // GDB's default amd64 layout, up to gs
	regsXSize = regsSize + 2*8     // the target description's: fs_base, gs_base after
)

// regNames are the registers in 'g' order, as the target description names
// them; sizes in bytes.
var regNames = []struct {
	name string
	size int
}{
	{"rax", 8}, {"rbx", 8}, {"rcx", 8}, {"rdx", 8}, {"rsi", 8}, {"rdi", 8}, {"rbp", 8}, {"rsp", 8},
	{"r8", 8}, {"r9", 8}, {"r10", 8}, {"r11", 8}, {"r12", 8}, {"r13", 8}, {"r14", 8}, {"r15", 8},
	{"rip", 8}, {"eflags", 4}, {"cs", 4}, {"ss", 4}, {"ds", 4}, {"es", 4}, {"fs", 4}, {"gs", 4},
	{"fs_base", 8}, {"gs_base", 8},
}

// targetXML describes the registers for clients that ask for it (qXfer
// features, target.xml): Delve takes the FS base from it, where Go keeps g
// (its TLS slot at -8). GDB is not offered it (qSupported does not list
// qXfer:features:read) and keeps its default amd64 layout, without the
// bases. The <reg> elements are the root's own children: Delve reads them
// there. Made at the first ask, not at every start of unigo.
var targetXML = sync.OnceValue(func() string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><target version="1.0"><architecture>i386:x86-64</architecture>`)
	for i, r := range regNames {
		fmt.Fprintf(&b, `<reg name="%s" bitsize="%d" regnum="%d" group="general"/>`, r.name, 8*r.size, i)
	}
	b.WriteString(`</target>`)
	return b.String()
})

func (r Regs) bytes() []byte {
	b := make([]byte, 0, regsXSize)
	for _, v := range r.GPR {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, r.RIP)
	b = binary.LittleEndian.AppendUint32(b, r.EFLAGS)
	for _, v := range r.Seg {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, r.FSBase)
	return binary.LittleEndian.AppendUint64(b, r.GSBase)
}

func (r Regs) encode(size int) string { return hex.EncodeToString(r.bytes()[:size]) }

// setBytes takes registers from b, in 'g' order; b may stop after gs.
func (r *Regs) setBytes(b []byte) {
	for i := range r.GPR {
		r.GPR[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	r.RIP = binary.LittleEndian.Uint64(b[128:])
	r.EFLAGS = binary.LittleEndian.Uint32(b[136:])
	for i := range r.Seg {
		r.Seg[i] = binary.LittleEndian.Uint32(b[140+4*i:])
	}
	if len(b) >= regsXSize {
		r.FSBase = binary.LittleEndian.Uint64(b[regsSize:])
		r.GSBase = binary.LittleEndian.Uint64(b[regsSize+8:])
	}
}

// decodeRegs reads a 'G' packet's registers; what follows them is ignored.
func decodeRegs(s string, size int) (Regs, bool) {
	if len(s) < 2*size {
		return Regs{}, false
	}
	b, err := hex.DecodeString(s[:2*size])
	if err != nil {
		return Regs{}, false
	}
	var r Regs
	r.setBytes(b)
	return r, true
}

// regSpan is register n's offset and size in the 'g' bytes.
func regSpan(n int) (off, size int, ok bool) {
	if n < 0 || n >= len(regNames) {
		return 0, 0, false
	}
	for _, r := range regNames[:n] {
		off += r.size
	}
	return off, regNames[n].size, true
}

// Why a guest stopped, for the stop reply.
type Stop struct {
	Thread  int
	Signal  int  // as GDB numbers them: 5 SIGTRAP (breakpoints, steps), 2 SIGINT (interrupted)
	SWBreak bool // at one of Server's breakpoints, whose address the PC already is
}

// Resume says how the guest goes on after Stopped.
type Resume struct {
	Step   bool // one instruction of Thread, then stop again
	Thread int  // the thread to step (0: the one that stopped)
	Kill   bool // the debugger asked to end the guest
}

// Server is one debugger's session.
type Server struct {
	k       *conn
	bps     map[uint64]byte // software breakpoints: address → the byte INT3 replaced
	started bool            // the debugger has seen the guest stopped once: later stops are reported
	gone    bool            // the debugger detached: the guest runs free
	xml     bool            // the client read targetXML: 'g' has the FS and GS bases
}

// regsLen is the 'g' packet's size for this client.
func (s *Server) regsLen() int {
	if s.xml {
		return regsXSize
	}
	return regsSize
}

// Breakpoint is the x86 breakpoint instruction, INT3.
const Breakpoint = 0xcc

// Accept waits for a debugger on ln and returns its session; interrupt is
// called (from another goroutine) when the debugger asks to stop the guest.
func Accept(ln net.Listener, interrupt func()) (*Server, error) {
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	return &Server{k: newConn(c, interrupt), bps: map[uint64]byte{}}, nil
}

// Close ends the session.
func (s *Server) Close() error { return s.k.c.Close() }

// IsBreakpoint reports whether addr holds one of the debugger's breakpoints.
func (s *Server) IsBreakpoint(addr uint64) bool {
	_, ok := s.bps[addr]
	return ok
}

// Exited tells the debugger that the guest ended with status, and ends the
// session.
func (s *Server) Exited(status int) {
	if !s.gone {
		s.k.send(fmt.Sprintf("W%02x", status&0xff))
		s.gone = true
	}
	s.k.c.Close()
}

// Detached reports whether the debugger has gone: the guest runs on.
func (s *Server) Detached() bool { return s.gone }

// Stopped reports st to the debugger and serves it until it resumes the
// guest. The first call answers the debugger's opening queries, the stop
// among them; a debugger that went away resumes the guest, breakpoints
// removed.
func (s *Server) Stopped(t Target, st Stop) Resume {
	if s.gone {
		return Resume{}
	}
	if s.started {
		s.k.send(stopReply(st)) // the debugger resumed the guest and waits for this
	}
	defer func() { s.started = true }()
	sel := st.Thread // Hg: the thread whose registers g and G mean
	for {
		p, err := s.k.next()
		if err != nil {
			s.detach(t)
			return Resume{}
		}
		reply, res, done := s.handle(t, st, &sel, p)
		if res.Kill {
			s.k.send("OK")
			return res
		}
		if reply != "" || !done {
			s.k.send(reply)
		}
		if done {
			return res
		}
	}
}

// detach removes the breakpoints and lets the guest run.
func (s *Server) detach(t Target) {
	for a, orig := range s.bps {
		t.WriteMemory(a, []byte{orig})
	}
	clear(s.bps)
	s.gone = true
	s.k.c.Close()
}

func stopReply(st Stop) string {
	r := fmt.Sprintf("T%02xthread:%x;", st.Signal, st.Thread)
	if st.SWBreak {
		r += "swbreak:;"
	}
	return r
}

// handle answers packet p. done means resume with res (reply is then sent
// first if not empty).
func (s *Server) handle(t Target, st Stop, sel *int, p string) (reply string, res Resume, done bool) {
	threadOf := func(id string) (int, bool) {
		if strings.HasPrefix(id, "p") { // multiprocess form pPID.TID: one process
			_, id, _ = strings.Cut(id, ".")
		}
		switch id {
		case "-1", "0", "":
			return st.Thread, true
		}
		v, err := strconv.ParseInt(id, 16, 64)
		if err != nil {
			return 0, false
		}
		for _, tid := range t.Threads() {
			if tid == int(v) {
				return tid, true
			}
		}
		return 0, false
	}
	switch {
	case p == "?":
		return stopReply(st), res, false
	case strings.HasPrefix(p, "qSupported"):
		return "PacketSize=4000;QStartNoAckMode+;swbreak+;vContSupported+", res, false
	case p == "QStartNoAckMode":
		// The reply is the last packet gdb acknowledges: conn.read
		// acknowledges nothing from the next one on.
		s.k.noAck.Store(true)
		return "OK", res, false
	case p == "qAttached":
		return "1", res, false
	case p == "qC":
		return fmt.Sprintf("QC%x", st.Thread), res, false
	case p == "qfThreadInfo":
		var ids []string
		for _, tid := range t.Threads() {
			ids = append(ids, strconv.FormatInt(int64(tid), 16))
		}
		return "m" + strings.Join(ids, ","), res, false
	case p == "qsThreadInfo":
		return "l", res, false
	case p == "qSymbol::":
		return "OK", res, false
	case strings.HasPrefix(p, "H"): // Hg, Hc: select a thread
		if len(p) < 2 {
			return "E01", res, false
		}
		tid, ok := threadOf(p[2:])
		if !ok {
			return "E01", res, false
		}
		if p[1] == 'g' {
			*sel = tid
		}
		return "OK", res, false
	case strings.HasPrefix(p, "T"):
		if _, ok := threadOf(p[1:]); ok {
			return "OK", res, false
		}
		return "E01", res, false
	case p == "g":
		r, err := t.ReadRegs(*sel)
		if err != nil {
			return "E01", res, false
		}
		return r.encode(s.regsLen()), res, false
	case strings.HasPrefix(p, "G"):
		r, ok := decodeRegs(p[1:], s.regsLen())
		if !ok {
			return "E01", res, false
		}
		if err := t.WriteRegs(*sel, r); err != nil {
			return "E01", res, false
		}
		return "OK", res, false
	case strings.HasPrefix(p, "p") && s.xml:
		// One register, numbered as targetXML numbers them (GDB without
		// the description numbers past gs differently: it gets 'g' only).
		n, err := strconv.ParseInt(p[1:], 16, 64)
		off, size, ok := regSpan(int(n))
		r, rerr := t.ReadRegs(*sel)
		if err != nil || !ok || rerr != nil {
			return "E01", res, false
		}
		return hex.EncodeToString(r.bytes()[off : off+size]), res, false
	case strings.HasPrefix(p, "P") && s.xml:
		reg, val, _ := strings.Cut(p[1:], "=")
		n, err := strconv.ParseInt(reg, 16, 64)
		off, size, ok := regSpan(int(n))
		v, herr := hex.DecodeString(val)
		r, rerr := t.ReadRegs(*sel)
		if err != nil || !ok || herr != nil || len(v) != size || rerr != nil {
			return "E01", res, false
		}
		b := r.bytes()
		copy(b[off:], v)
		r.setBytes(b)
		return okOrErr(t.WriteRegs(*sel, r)), res, false
	case strings.HasPrefix(p, "qXfer:features:read:target.xml:"):
		s.xml = true
		off, n, ok := addrLen(strings.TrimPrefix(p, "qXfer:features:read:target.xml:"))
		if !ok {
			return "E01", res, false
		}
		xml := targetXML()
		if off >= uint64(len(xml)) {
			return "l", res, false
		}
		chunk := xml[off:min(off+n, uint64(len(xml)))]
		if off+uint64(len(chunk)) >= uint64(len(xml)) {
			return "l" + chunk, res, false
		}
		return "m" + chunk, res, false
	case strings.HasPrefix(p, "m"):
		addr, n, ok := addrLen(p[1:])
		if !ok || n > 0x2000 {
			return "E01", res, false
		}
		b := make([]byte, n)
		if err := t.ReadMemory(addr, b); err != nil {
			return "E14", res, false // EFAULT
		}
		return hex.EncodeToString(b), res, false
	case strings.HasPrefix(p, "M"):
		head, data, ok := strings.Cut(p[1:], ":")
		addr, n, ok2 := addrLen(head)
		b, err := hex.DecodeString(data)
		if !ok || !ok2 || err != nil || uint64(len(b)) != n {
			return "E01", res, false
		}
		if err := t.WriteMemory(addr, b); err != nil {
			return "E14", res, false
		}
		return "OK", res, false
	case strings.HasPrefix(p, "Z0,"), strings.HasPrefix(p, "z0,"):
		addr, _, ok := addrLen(p[3:])
		if !ok {
			return "E01", res, false
		}
		if p[0] == 'Z' {
			return okOrErr(s.insert(t, addr)), res, false
		}
		return okOrErr(s.remove(t, addr)), res, false
	case p == "vCont?":
		return "vCont;c;C;s;S", res, false
	case strings.HasPrefix(p, "vCont;"):
		return s.vCont(st, p[len("vCont;"):], threadOf)
	case p == "c" || strings.HasPrefix(p, "C"):
		return "", Resume{}, true
	case p == "s" || strings.HasPrefix(p, "S"):
		return "", Resume{Step: true, Thread: st.Thread}, true
	case p == "D" || strings.HasPrefix(p, "D;"):
		s.k.send("OK")
		s.detach(t)
		return "", Resume{}, true
	case p == "k" || strings.HasPrefix(p, "vKill"):
		return "", Resume{Kill: true}, true
	}
	return "", res, false // unsupported: the empty reply
}

// vCont resumes as the first action that applies: "s:TID" or "s" steps,
// "c" continues. The one vCPU runs every thread, so a continue is for all.
func (s *Server) vCont(st Stop, actions string, threadOf func(string) (int, bool)) (string, Resume, bool) {
	for _, a := range strings.Split(actions, ";") {
		verb, tid, _ := strings.Cut(a, ":")
		switch {
		case verb == "s" || strings.HasPrefix(verb, "S"):
			id, ok := threadOf(tid)
			if !ok {
				return "E01", Resume{}, false
			}
			return "", Resume{Step: true, Thread: id}, true
		case verb == "c" || strings.HasPrefix(verb, "C"):
			return "", Resume{}, true
		}
	}
	return "E01", Resume{}, false
}

func (s *Server) insert(t Target, addr uint64) error {
	if _, ok := s.bps[addr]; ok {
		return nil
	}
	var orig [1]byte
	if err := t.ReadMemory(addr, orig[:]); err != nil {
		return err
	}
	if err := t.WriteMemory(addr, []byte{Breakpoint}); err != nil {
		return err
	}
	s.bps[addr] = orig[0]
	return nil
}

func (s *Server) remove(t Target, addr uint64) error {
	orig, ok := s.bps[addr]
	if !ok {
		return nil
	}
	delete(s.bps, addr)
	return t.WriteMemory(addr, []byte{orig})
}

func okOrErr(err error) string {
	if err != nil {
		return "E14"
	}
	return "OK"
}

// addrLen reads "ADDR,LEN" (hexadecimal); a ",KIND" or more after is ignored.
func addrLen(s string) (addr, n uint64, ok bool) {
	a, rest, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, false
	}
	if i := strings.IndexByte(rest, ','); i >= 0 {
		rest = rest[:i]
	}
	addr, err1 := strconv.ParseUint(a, 16, 64)
	n, err2 := strconv.ParseUint(rest, 16, 64)
	return addr, n, err1 == nil && err2 == nil
}
