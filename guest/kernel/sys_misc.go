package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// sysGetrandom implements Linux syscall getrandom(2) from RDRAND.
//
//go:nosplit
func sysGetrandom(f *trapFrame) uintptr {
	buf := f.arg(0)
	n := f.arg(1)
	if f.arg(2)&^(linux.GRND_NONBLOCK|linux.GRND_RANDOM|linux.GRND_INSECURE) != 0 {
		return errno(linux.EINVAL)
	}
	if !userRange(buf, n) {
		return errno(linux.EFAULT)
	}
	return fillRandom(buf, n)
}

// fillRandom fills the n bytes at buf with RDRAND's words; it returns n,
// or what it filled before RDRAND failed (EIO if nothing).
//
//go:nosplit
func fillRandom(buf, n uintptr) uintptr {
	for done := uintptr(0); done < n; {
		v, ok := random64()
		if !ok {
			if done > 0 {
				return done
			}
			return errno(linux.EIO)
		}
		k := min(n-done, 8)
		memmove(buf+done, uintptr(unsafe.Pointer(&v)), k)
		done += k
	}
	return n
}

// random64 returns a word from RDRAND, retrying as Intel's DRNG guide advises
// (10 tries before reporting failure).
//
//go:nosplit
func random64() (uint64, bool) {
	for i := 0; i < 10; i++ {
		if v, ok := rdrand(); ok {
			return v, true
		}
	}
	return 0, false
}

// sysUname implements Linux syscall uname(2).
//
//go:nosplit
func sysUname(f *trapFrame) uintptr {
	var u linux.Utsname
	put := func(dst *[65]byte, s string) {
		for i := 0; i < len(s) && i < 64; i++ {
			dst[i] = s[i]
		}
	}
	put(&u.Sysname, "Linux")
	put(&u.Nodename, "unigo")
	put(&u.Release, "6.1.0-unigo")
	put(&u.Version, "#1 Unigo")
	put(&u.Machine, "x86_64")
	if !copyOut(f.arg(0), unsafe.Pointer(&u), unsafe.Sizeof(u)) {
		return errno(linux.EFAULT)
	}
	return 0
}

var nofile = linux.Rlimit{Cur: maxFiles, Max: maxFiles}

// sysPrlimit64 implements Linux syscall prlimit64(2) for RLIMIT_NOFILE (the
// size of the descriptor table); other limits are reported as unlimited and
// cannot be changed.
//
//go:nosplit
func sysPrlimit64(f *trapFrame) uintptr {
	pid := f.arg(0)
	res := f.arg(1)
	nw := f.arg(2)
	old := f.arg(3)
	if pid != 0 && pid != 1 {
		return errno(linux.ESRCH)
	}
	lim := linux.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}
	if res == linux.RLIMIT_NOFILE {
		lim = nofile
	}
	if old != 0 && !copyOut(old, unsafe.Pointer(&lim), unsafe.Sizeof(lim)) {
		return errno(linux.EFAULT)
	}
	if nw != 0 {
		var n linux.Rlimit
		if !copyIn(unsafe.Pointer(&n), nw, unsafe.Sizeof(n)) {
			return errno(linux.EFAULT)
		}
		if n.Cur > n.Max || res != linux.RLIMIT_NOFILE || n.Max > maxFiles {
			return errno(linux.EPERM)
		}
		nofile = n
	}
	return 0
}

// sysPrctl implements Linux syscall prctl(2): no option is supported yet;
// EINVAL is what Linux answers for an unknown option, and what the runtime
// tolerates for PR_SET_VMA.
//
//go:nosplit
func sysPrctl(f *trapFrame) uintptr { return errno(linux.EINVAL) }

// sysGetuid implements getuid(2), geteuid(2), getgid(2) and getegid(2): root.
//
//go:nosplit
func sysGetuid(f *trapFrame) uintptr { return 0 }

// sysGetppid implements Linux syscall getppid(2): no parent.
//
//go:nosplit
func sysGetppid(f *trapFrame) uintptr { return 0 }
