package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

const cloneThreadFlags = linux.CLONE_VM | linux.CLONE_FS | linux.CLONE_FILES | linux.CLONE_SIGHAND | linux.CLONE_THREAD

// sysClone implements Linux syscall clone(2) for threads (the flags the Go
// runtime passes); a new process cannot be created in a unikernel.
//
//go:nosplit
func sysClone(f *trapFrame) uintptr {
	flags := f.arg(0)
	stack := f.arg(1)
	tls := f.arg(4)
	if flags&cloneThreadFlags != cloneThreadFlags {
		return errno(linux.ENOSYS)
	}
	if flags&(linux.CLONE_PARENT_SETTID|linux.CLONE_CHILD_SETTID|linux.CLONE_CHILD_CLEARTID) != 0 {
		return errno(linux.EINVAL)
	}
	i := newThread()
	if i < 0 {
		return errno(linux.EAGAIN)
	}
	t := &threads[i]
	t.fsbase = threads[cur].fsbase
	if flags&linux.CLONE_SETTLS != 0 {
		t.fsbase = tls
	}
	t.sigmask = threads[cur].sigmask

	// The child resumes in sysexit with a copy of the parent's registers,
	// RAX = 0 and its new stack; swtch pops BP and returns into sysexit.
	frame := kstackTopOf(i) - unsafe.Sizeof(trapFrame{})
	child := (*trapFrame)(kptr(frame))
	*child = *f
	child.rax = 0
	initVectorState(i)
	if stack != 0 {
		child.rsp = uint64(stack)
	}
	store64(frame-8, uint64(sysexitPC()))
	store64(frame-16, 0)
	t.ksp = frame - 16
	t.state = tsRunnable
	return uintptr(t.tid)
}

// sysExit implements Linux syscall exit(2): the calling thread ends.
//
//go:nosplit
func sysExit(f *trapFrame) uintptr {
	exitThread(int(f.arg(0) & 0xff))
	return 0
}

// sysExitGroup implements Linux syscall exit_group(2).
//
//go:nosplit
func sysExitGroup(f *trapFrame) uintptr {
	volSyncAll() // what was written reaches the volumes, as Linux's unmount at shutdown would see to
	exit(int(f.arg(0) & 0xff))
	return 0
}

// sysFutex implements Linux syscall futex(2): FUTEX_WAIT with a relative
// timeout and FUTEX_WAKE, private or not (there is one process).
//
//go:nosplit
func sysFutex(f *trapFrame) uintptr {
	addr := f.arg(0)
	op := f.arg(1)
	val := f.arg(2)
	timeout := f.arg(3)
	if addr&3 != 0 || !userRange(addr, 4) {
		return errno(linux.EFAULT)
	}
	switch op &^ (linux.FUTEX_PRIVATE_FLAG | linux.FUTEX_CLOCK_REALTIME) {
	case linux.FUTEX_WAIT:
		if op&linux.FUTEX_CLOCK_REALTIME != 0 {
			return errno(linux.ENOSYS)
		}
		var deadline int64
		if timeout != 0 {
			var ts linux.Timespec
			if !copyIn(unsafe.Pointer(&ts), timeout, unsafe.Sizeof(ts)) {
				return errno(linux.EFAULT)
			}
			if ts.Sec < 0 || ts.Nsec < 0 || ts.Nsec >= 1e9 {
				return errno(linux.EINVAL)
			}
			deadline = nanotime() + ts.Sec*1e9 + ts.Nsec
			if deadline == 0 {
				deadline = 1
			}
		}
		if uint32(load64(addr&^7)>>(8*(addr&7))) != uint32(val) {
			return errno(linux.EAGAIN)
		}
		if !block(waitFutex, addr, deadline) {
			return errno(linux.ETIMEDOUT)
		}
		return 0
	case linux.FUTEX_WAKE:
		n := uintptr(0)
		for i := range threads {
			if n >= val {
				break
			}
			t := &threads[i]
			if t.state == tsBlocked && t.wait == waitFutex && t.waitAddr == addr {
				wake(i)
				n++
			}
		}
		return n
	}
	return errno(linux.ENOSYS)
}

// sysSchedYield implements Linux syscall sched_yield(2).
//
//go:nosplit
func sysSchedYield(f *trapFrame) uintptr {
	schedule()
	return 0
}

// sysGettid implements Linux syscall gettid(2).
//
//go:nosplit
func sysGettid(f *trapFrame) uintptr { return uintptr(threads[cur].tid) }

// sysGetpid implements Linux syscall getpid(2): the program is process 1.
//
//go:nosplit
func sysGetpid(f *trapFrame) uintptr { return 1 }

// sysArchPrctl implements Linux syscall arch_prctl(2) for the FS base.
//
//go:nosplit
func sysArchPrctl(f *trapFrame) uintptr {
	code := f.arg(0)
	addr := f.arg(1)
	switch code {
	case linux.ARCH_SET_FS:
		if addr >= userTop && addr < 0xffff_8000_0000_0000 {
			return errno(linux.EPERM) // not canonical
		}
		threads[cur].fsbase = addr
		userFS = addr
		return 0
	case linux.ARCH_GET_FS:
		fs := uint64(threads[cur].fsbase)
		if !copyOut(addr, unsafe.Pointer(&fs), 8) {
			return errno(linux.EFAULT)
		}
		return 0
	}
	return errno(linux.EINVAL)
}

// sysSchedGetaffinity implements Linux syscall sched_getaffinity(2): one CPU.
//
//go:nosplit
func sysSchedGetaffinity(f *trapFrame) uintptr {
	size := f.arg(1)
	mask := f.arg(2)
	if size < 8 || size&7 != 0 {
		return errno(linux.EINVAL)
	}
	one := uint64(1)
	if !copyOut(mask, unsafe.Pointer(&one), 8) {
		return errno(linux.EFAULT)
	}
	return 8
}
