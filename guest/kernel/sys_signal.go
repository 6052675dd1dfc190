package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Signal bookkeeping: actions, masks and alternate stacks are recorded as
// Linux would, so the runtime's set-up succeeds. No signal is delivered yet.

var sigactions [linux.NSIG + 1]linux.Sigaction

// sysRtSigaction implements Linux syscall rt_sigaction(2).
//
//go:nosplit
func sysRtSigaction(f *trapFrame) uintptr {
	sig := f.arg(0)
	act := f.arg(1)
	oact := f.arg(2)
	size := f.arg(3)
	if sig == 0 || sig > linux.NSIG || size != 8 {
		return errno(linux.EINVAL)
	}
	old := sigactions[sig]
	if act != 0 {
		if sig == linux.SIGKILL || sig == linux.SIGSTOP {
			return errno(linux.EINVAL)
		}
		var sa linux.Sigaction
		if !copyIn(unsafe.Pointer(&sa), act, unsafe.Sizeof(sa)) {
			return errno(linux.EFAULT)
		}
		sigactions[sig] = sa
	}
	if oact != 0 && !copyOut(oact, unsafe.Pointer(&old), unsafe.Sizeof(old)) {
		return errno(linux.EFAULT)
	}
	return 0
}

// sysRtSigprocmask implements Linux syscall rt_sigprocmask(2).
//
//go:nosplit
func sysRtSigprocmask(f *trapFrame) uintptr {
	how := f.arg(0)
	set := f.arg(1)
	oset := f.arg(2)
	size := f.arg(3)
	if size != 8 {
		return errno(linux.EINVAL)
	}
	t := &threads[cur]
	old := t.sigmask
	if set != 0 {
		var m uint64
		if !copyIn(unsafe.Pointer(&m), set, 8) {
			return errno(linux.EFAULT)
		}
		m &^= 1<<(linux.SIGKILL-1) | 1<<(linux.SIGSTOP-1)
		switch how {
		case linux.SIG_BLOCK:
			t.sigmask |= m
		case linux.SIG_UNBLOCK:
			t.sigmask &^= m
		case linux.SIG_SETMASK:
			t.sigmask = m
		default:
			return errno(linux.EINVAL)
		}
	}
	if oset != 0 && !copyOut(oset, unsafe.Pointer(&old), 8) {
		return errno(linux.EFAULT)
	}
	return 0
}

// sysSigaltstack implements Linux syscall sigaltstack(2).
//
//go:nosplit
func sysSigaltstack(f *trapFrame) uintptr {
	ss := f.arg(0)
	oss := f.arg(1)
	t := &threads[cur]
	old := t.altstack
	if ss != 0 {
		var st linux.StackT
		if !copyIn(unsafe.Pointer(&st), ss, unsafe.Sizeof(st)) {
			return errno(linux.EFAULT)
		}
		if st.Flags&^linux.SS_DISABLE != 0 {
			return errno(linux.EINVAL)
		}
		t.altstack = st
	}
	if oss != 0 && !copyOut(oss, unsafe.Pointer(&old), unsafe.Sizeof(old)) {
		return errno(linux.EFAULT)
	}
	return 0
}
