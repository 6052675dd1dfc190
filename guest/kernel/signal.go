package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// Signal delivery, as Linux does it on x86-64 (arch/x86/kernel/signal.c and
// signal_64.c): a pending, unblocked signal with a handler is delivered when
// its thread returns to user mode, by pushing an rt_sigframe on the user stack
// (or the alternate stack) and entering the handler; rt_sigreturn restores the
// saved context. The Go runtime needs this for asynchronous preemption: sysmon
// sends SIGURG with tgkill to a thread that has run one goroutine too long.

// fullReturn asks syscallEntry to return through intrExit, which restores
// every register and the vector state (after rt_sigreturn).
var fullReturn uint8

// Scratch for building and reading signal frames: trap context runs one at a
// time on the vCPU, and these are too big for nosplit stack frames.
var (
	sigframe linux.RtSigframe
	sigUc    linux.Ucontext
)

// sigSend makes sig pending on thread i. A thread that waits where Linux
// would end the wait for a signal (futex, nanosleep, epoll_wait) is woken, so
// that the signal is delivered now: futex reports a wake, which Go's callers
// treat as spurious, and epoll_wait EINTR. Waits on a blocking pipe, socket or
// lock go on; Go's own descriptors never block there.
//
//go:nosplit
func sigSend(i int, sig uintptr) {
	t := &threads[i]
	t.pending |= 1 << (sig - 1)
	if t.state == tsBlocked && t.sigmask&(1<<(sig-1)) == 0 && interruptible(t.wait) {
		wake(i)
	}
}

//go:nosplit
func interruptible(w waitKind) bool {
	return w == waitFutex || w == waitSleep || w == waitEpoll
}

// interrupted reports whether the running thread has a signal to take: a
// wait it was woken from ends with EINTR.
//
//go:nosplit
func interrupted() bool {
	t := &threads[cur]
	return t.pending&^t.sigmask != 0
}

// takeHostSignals makes the signals the host sent the process (unigo run's
// SIGINT and SIGTERM, unigo stop's SIGTERM) pending, each on one thread:
// from the own monitor a word of the CPU state block (abi.CsHostSignals),
// under PVH bytes on the control channel (abi.CtlPort). Trap context, at
// each tick and after each halt.
//
//go:nosplit
func takeHostSignals() {
	if pvh {
		if !ctl {
			return
		}
		for {
			b, ok := uartGet(abi.CtlPort)
			if !ok {
				return
			}
			if b >= 1 && b <= linux.NSIG {
				sigProcess(uintptr(b))
			}
		}
	}
	debugStopRequested()
	set := xchg64(abi.CPUStateAddr+abi.CsHostSignals, 0)
	for sig := uintptr(1); set != 0; sig++ {
		if set&1 != 0 {
			sigProcess(sig)
		}
		set >>= 1
	}
}

// takeHostSignalsFn is called through a function value from halt, deep in
// the blocking system calls' nosplit chains, which the linker bounds.
var takeHostSignalsFn = takeHostSignals

// sigProcess sends sig to the process, as Linux's complete_signal picks the
// thread: one that does not block it, a running one first, then one whose
// wait the signal ends, else the first. An ignored signal is dropped.
//
//go:nosplit
func sigProcess(sig uintptr) {
	if sigactions[sig%(linux.NSIG+1)].Handler == linux.SIG_IGN {
		return
	}
	bit := uint64(1) << (sig - 1)
	pick, first := -1, -1
	for i := range threads {
		t := &threads[i]
		if t.state != tsRunnable && t.state != tsBlocked {
			continue
		}
		if first < 0 {
			first = i
		}
		if t.sigmask&bit != 0 {
			continue
		}
		if t.state == tsRunnable {
			pick = i
			break
		}
		if pick < 0 && interruptible(t.wait) {
			pick = i
		}
	}
	if pick < 0 {
		pick = first
	}
	if pick >= 0 {
		sigSend(pick, sig)
	}
}

// forceSignal delivers the signal a fault in user code raises, blocked or
// not, as Linux's force_sig_fault does.
//
//go:nosplit
func forceSignal(f *trapFrame, sig uintptr, code int32, addr uint64) {
	threads[cur].sigmask &^= 1 << (sig - 1)
	deliver(f, sig, code, addr)
}

// deliverSignals delivers one pending signal of the running thread, whose
// user context is f. Trap context.
//
//go:nosplit
func deliverSignals(f *trapFrame) {
	t := &threads[cur]
	ready := t.pending &^ t.sigmask
	if ready == 0 {
		return
	}
	sig := uintptr(1)
	for ready&1 == 0 {
		ready >>= 1
		sig++
	}
	t.pending &^= 1 << (sig - 1)
	deliver(f, sig, linux.SI_TKILL, 1) // si_pid 1, si_uid 0
}

// deliver enters the handler of sig with a signal frame for context f.
//
//go:nosplit
func deliver(f *trapFrame, sig uintptr, code int32, union uint64) {
	t := &threads[cur]
	sa := &sigactions[sig%(linux.NSIG+1)]
	switch sa.Handler {
	case linux.SIG_IGN:
		return
	case linux.SIG_DFL:
		switch sig {
		case linux.SIGURG, 17, 28: // SIGURG, SIGCHLD, SIGWINCH: ignored by default
			return
		}
		exit(128 + int(sig)) // terminate, as a shell reports a signal death
	}

	// Where the frame goes: the alternate stack if asked for and not in use.
	sp := uintptr(f.rsp) - 128 // the red zone of the System V ABI
	alt := t.altstack
	onAlt := alt.Flags&linux.SS_DISABLE == 0 && uintptr(f.rsp) >= alt.SP && uintptr(f.rsp) < alt.SP+alt.Size
	if sa.Flags&linux.SA_ONSTACK != 0 && alt.Flags&linux.SS_DISABLE == 0 && !onAlt {
		sp = alt.SP + alt.Size
	}
	// The vector state of interrupted code was saved by intrNative; at a
	// system call it is dead (the Go ABI treats it as clobbered).
	var fpstate uintptr
	if f.vector != vecSyscall {
		sp = (sp - xsaveLen) &^ 63
		fpstate = sp
	}
	const frameSize = unsafe.Sizeof(linux.RtSigframe{})
	frame := (sp-frameSize)&^15 - 8 // at entry, RSP+8 is 16-aligned as after a CALL
	if !userRange(frame, sp-frame) || (fpstate != 0 && !userRange(fpstate, xsaveLen)) {
		exit(128 + linux.SIGSEGV) // Linux forces SIGSEGV when the frame cannot be written
	}
	if fpstate != 0 {
		memmove(fpstate, curXsave, xsaveLen)
	}
	fr := &sigframe
	*fr = linux.RtSigframe{}
	fr.Pretcode = uint64(sa.Restorer)
	fr.Uc.Stack = alt
	if onAlt {
		fr.Uc.Stack.Flags |= linux.SS_ONSTACK
	}
	mc := &fr.Uc.Mcontext
	mc.R8, mc.R9, mc.R10, mc.R11 = f.r8, f.r9, f.r10, f.r11
	mc.R12, mc.R13, mc.R14, mc.R15 = f.r12, f.r13, f.r14, f.r15
	mc.Rdi, mc.Rsi, mc.Rbp, mc.Rbx = f.rdi, f.rsi, f.rbp, f.rbx
	mc.Rdx, mc.Rax, mc.Rcx, mc.Rsp = f.rdx, f.rax, f.rcx, f.rsp
	mc.Rip, mc.Eflags = f.rip, f.rflags
	mc.Cs, mc.Ss = selUserCode, selUserData
	mc.Fpstate = uint64(fpstate)
	fr.Uc.Sigmask = t.sigmask
	fr.Info.Signo = int32(sig)
	fr.Info.Code = code
	fr.Info.Union = union
	mc.Trapno, mc.Err = f.vector, f.errcode
	if f.vector == 14 {
		mc.Cr2 = union
	}
	memmove(frame, uintptr(unsafe.Pointer(fr)), frameSize)

	if sa.Flags&linux.SA_NODEFER == 0 {
		t.sigmask |= 1 << (sig - 1)
	}
	t.sigmask |= sa.Mask
	f.rsp = uint64(frame)
	f.rip = uint64(sa.Handler)
	f.rdi = uint64(sig)
	f.rsi = uint64(frame + unsafe.Offsetof(fr.Info))
	f.rdx = uint64(frame + unsafe.Offsetof(fr.Uc))
	f.rax = 0
	f.rflags &^= 1 << 10 // DF clear, as the ABI wants at a call
}

// sysRtSigreturn implements Linux syscall rt_sigreturn(2): the context saved
// by deliverSignals comes back, from the frame the handler returned from.
//
//go:nosplit
func sysRtSigreturn(f *trapFrame) uintptr {
	uc := &sigUc
	if !copyIn(unsafe.Pointer(uc), uintptr(f.rsp), unsafe.Sizeof(*uc)) {
		exit(128 + linux.SIGSEGV)
	}
	mc := &uc.Mcontext
	f.r8, f.r9, f.r10, f.r11 = mc.R8, mc.R9, mc.R10, mc.R11
	f.r12, f.r13, f.r14, f.r15 = mc.R12, mc.R13, mc.R14, mc.R15
	f.rdi, f.rsi, f.rbp, f.rbx = mc.Rdi, mc.Rsi, mc.Rbp, mc.Rbx
	f.rdx, f.rcx, f.rsp, f.rip = mc.Rdx, mc.Rcx, mc.Rsp, mc.Rip
	// User mode may change only the arithmetic flags, TF, DF, AC and ID.
	const userFlags = 0x254dd5
	f.rflags = f.rflags&^userFlags | mc.Eflags&userFlags
	f.cs, f.ss = selUserCode, selUserData
	threads[cur].sigmask = uc.Sigmask &^ (1<<(linux.SIGKILL-1) | 1<<(linux.SIGSTOP-1))
	if fp := uintptr(mc.Fpstate); fp != 0 {
		if !userRange(fp, xsaveLen) {
			exit(128 + linux.SIGSEGV)
		}
		memmove(curXsave, fp, xsaveLen)
	}
	fullReturn = 1
	return uintptr(mc.Rax)
}

// sysTgkill implements Linux syscall tgkill(2) within the one process.
//
//go:nosplit
func sysTgkill(f *trapFrame) uintptr {
	tgid := f.arg(0)
	tid := f.arg(1)
	sig := f.arg(2)
	if tgid != 1 {
		return errno(linux.ESRCH)
	}
	return kill(tid, sig)
}

// sysTkill implements Linux syscall tkill(2).
//
//go:nosplit
func sysTkill(f *trapFrame) uintptr { return kill(f.arg(0), f.arg(1)) }

//go:nosplit
func kill(tid, sig uintptr) uintptr {
	if sig > linux.NSIG {
		return errno(linux.EINVAL)
	}
	for i := range threads {
		t := &threads[i]
		if (t.state == tsRunnable || t.state == tsBlocked) && uintptr(t.tid) == tid {
			if sig != 0 {
				sigSend(i, sig)
			}
			return 0
		}
	}
	return errno(linux.ESRCH)
}
