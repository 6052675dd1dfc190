package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Threads. Each runtime M is a kernel thread with its own kernel stack; one
// vCPU runs them in turn. A thread gives up the CPU when it blocks in the
// kernel (futex, nanosleep, epoll) or yields; when none can run, the vCPU waits
// in the monitor until the earliest deadline.

type threadState uint8

const (
	tsFree threadState = iota
	tsRunnable
	tsBlocked
	tsDead
)

type waitKind uint8

const (
	waitNone waitKind = iota
	waitFutex
	waitSleep
	waitEpoll
	waitPipe
	waitSock
	waitFlock
)

type thread struct {
	state    threadState
	wait     waitKind
	timedOut bool
	tid      int32
	ksp      uintptr // saved kernel stack pointer while switched out
	fsbase   uintptr // user FS base (arch_prctl, clone TLS)
	waitAddr uintptr // futex word or epoll fd being waited on
	deadline int64   // nanotime at which a wait times out; 0 = never
	sigmask  uint64
	pending  uint64 // signals sent to the thread, bit sig-1
	altstack linux.StackT
}

var (
	threads [maxThreads]thread
	cur     int   // index of the running thread
	nextTID int32 = 1
	live    int   // threads not free or dead
)

//go:nosplit
func threadInit() {
	kstackAlloc(0)
	setupKernelG(0)
	t := &threads[0]
	t.state = tsRunnable
	t.tid = nextTID
	t.altstack.Flags = linux.SS_DISABLE
	nextTID++
	live = 1
	cur = 0
	kstackTop = kstackTopOf(0)
	kernelFS = uintptr(unsafe.Pointer(&ktls[0][1]))
	curXsave = xsaveArea(0)
	initVectorState(0)
	setRSP0(kstackTop)
}

// kstackBase is the lowest address of each thread slot's kernel stack and,
// at index maxThreads, of the exception stack (IST1); 0 until kstackAlloc
// takes it. A slot
// allocation is the stack and, above its top, the slot's vector-state save
// area: [base, base+kstackSize) then [base+kstackSize, +xsaveSize). Slot 0's
// stack is kstack0, the boot stack, its save area xsave0.
var kstackBase [maxThreads + 1]uintptr

// xsave0 is slot 0's vector-state save area, with room to align it.
var xsave0 [xsaveSize + 64]byte

// kstackAlloc gives slot i a kernel stack (and save area) if it has none.
// Kernel stacks are identity-mapped RAM, taken for good: the monitor writes
// soft-interrupt frames on them by guest-physical address, and a slot's next
// thread reuses its stack. False when RAM ran out.
//
//go:nosplit
func kstackAlloc(i int) bool {
	if kstackBase[i] != 0 {
		return true
	}
	if i == 0 {
		kstackBase[0] = uintptr(unsafe.Pointer(&kstack0[0]))
		return true
	}
	kstackBase[i] = allocContig(kstackSize + xsaveSize)
	return kstackBase[i] != 0
}

//go:nosplit
func kstackTopOf(i int) uintptr {
	return kstackBase[i] + kstackSize
}

// xsaveArea is slot i's vector-state save area, 64-byte aligned as XSAVE
// needs (SDM Vol. 1 §13.4).
//
//go:nosplit
func xsaveArea(i int) uintptr {
	if i == 0 {
		return (uintptr(unsafe.Pointer(&xsave0[0])) + 63) &^ 63
	}
	return kstackBase[i] + kstackSize
}

// setupKernelG gives thread slot i its kernel g and kernel TLS.
//
//go:nosplit
func setupKernelG(i int) {
	g := &kgs[i]
	g.lo = kstackBase[i]
	g.hi = g.lo + kstackSize
	g.guard0 = g.lo + stackGuard
	g.guard1 = g.guard0
	ktls[i][0] = uintptr(unsafe.Pointer(g))
}

// newThread returns a free thread slot, or -1.
//
//go:nosplit
func newThread() int {
	for i := range threads {
		if i != cur && (threads[i].state == tsFree || threads[i].state == tsDead) {
			if !kstackAlloc(i) {
				return -1
			}
			threads[i] = thread{state: tsBlocked, tid: nextTID}
			threads[i].altstack.Flags = linux.SS_DISABLE
			nextTID++
			live++
			setupKernelG(i)
			return i
		}
	}
	return -1
}

// block puts the running thread to sleep until wake or its deadline.
// It reports whether the thread was woken (true) or timed out (false).
//
//go:nosplit
func block(kind waitKind, addr uintptr, deadline int64) bool {
	t := &threads[cur]
	t.state = tsBlocked
	t.wait = kind
	t.waitAddr = addr
	t.deadline = deadline
	t.timedOut = false
	schedule()
	return !threads[cur].timedOut
}

//go:nosplit
func wake(i int) {
	t := &threads[i]
	t.state = tsRunnable
	t.wait = waitNone
	t.deadline = 0
}

// schedule switches to the next runnable thread, round robin, waiting in the
// monitor while none is. The running thread may be picked again.
//
//go:nosplit
func schedule() {
	for {
		now := nanotime()
		var earliest int64
		for i := range threads {
			t := &threads[i]
			if t.state != tsBlocked || t.deadline == 0 {
				continue
			}
			if t.deadline <= now {
				wake(i)
				t.timedOut = true
			} else if earliest == 0 || t.deadline < earliest {
				earliest = t.deadline
			}
		}
		for k := 1; k <= maxThreads; k++ {
			i := (cur + k) % maxThreads
			if threads[i].state == tsRunnable {
				switchTo(i)
				return
			}
		}
		if earliest == 0 {
			halt(0) // the monitor reports the deadlock
		}
		halt(earliest - now)
	}
}

//go:nosplit
func switchTo(i int) {
	if i == cur {
		return
	}
	old := cur
	cur = i
	kstackTop = kstackTopOf(i)
	kernelFS = uintptr(unsafe.Pointer(&ktls[i][1]))
	userFS = threads[i].fsbase
	curXsave = xsaveArea(i)
	setRSP0(kstackTop)
	swtch(&threads[old].ksp, threads[i].ksp, kernelFS)
}

// exitThread ends the running thread; the process ends with the last one.
//
//go:nosplit
func exitThread(code int) {
	threads[cur].state = tsDead
	live--
	if live == 0 {
		exit(code)
	}
	schedule()
	fatal("a dead thread was scheduled")
}
