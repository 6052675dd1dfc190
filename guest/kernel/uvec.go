package kernel

import "unigo.dev/unigo/abi/linux"

// uvec is user memory that a read scatters into or a write gathers from:
// one buffer (read, sendto) or an iovec array (readv, sendmsg).
type uvec struct {
	iov, cnt uintptr // struct iovec[cnt] when iov != 0
	buf, n   uintptr // else one buffer
	total    uintptr // bytes in all pieces, set by check
	trunc    bool    // set by a datagram receive: the datagram was longer
}

// maxIOV is Linux's UIO_MAXIOV.
const maxIOV = 1024

// check validates every piece and sums their lengths: EINVAL for too many
// pieces or a total past what one call moves (MAX_RW_COUNT), EFAULT for
// memory that is not the program's.
//
//go:nosplit
func (v *uvec) check() uintptr {
	if v.iov == 0 {
		if !userRange(v.buf, v.n) {
			return errno(linux.EFAULT)
		}
		v.total = v.n
		return 0
	}
	if v.cnt > maxIOV {
		return errno(linux.EINVAL)
	}
	if !userRange(v.iov, v.cnt*16) {
		return errno(linux.EFAULT)
	}
	v.total = 0
	for i := uintptr(0); i < v.cnt; i++ {
		base, n := v.piece(i)
		if n > 0x7ffff000 || !userRange(base, n) {
			return errno(linux.EFAULT)
		}
		v.total += n
		if v.total > 0x7ffff000 {
			return errno(linux.EINVAL)
		}
	}
	return 0
}

//go:nosplit
func (v *uvec) pieces() uintptr {
	if v.iov == 0 {
		return 1
	}
	return v.cnt
}

//go:nosplit
func (v *uvec) piece(i uintptr) (uintptr, uintptr) {
	if v.iov == 0 {
		return v.buf, v.n
	}
	return uintptr(load64(v.iov + 16*i)), uintptr(load64(v.iov + 16*i + 8))
}

// ringCopyV copies k bytes between v, from its byte off on, and ring g
// (into g when in, else out of it).
//
//go:nosplit
func ringCopyV(g *ring, v *uvec, off, k uintptr, in bool) {
	for i := uintptr(0); i < v.pieces() && k > 0; i++ {
		base, n := v.piece(i)
		if off >= n {
			off -= n
			continue
		}
		c := min(n-off, k)
		ringCopy(g, base+off, c, in)
		off, k = 0, k-c
	}
}
