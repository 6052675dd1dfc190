//go:build !unigo_nodrivers

package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
	"unigo.dev/unigo/proto/p9"
)

// The 9P2000.L client over virtio-mmio 9P devices (virtio 1.2 §5.11): a
// share named on the command line (abi.MountWord) is the device whose mount
// tag matches. Each request is one round trip on the device's polled queue
// (virtq.go): two descriptors, the request, then room for the reply. The
// request and reply buffers are shared by all shares, since one system call
// runs at a time.

// p9dev is a share's device and queue.
type p9dev struct {
	q     virtq
	msize uint32
}

var (
	p9devs        [abi.MaxShares]p9dev
	p9req, p9resp uintptr // the buffers, p9.Msize each
	p9w           uintptr // the request's write position
	p9r, p9rEnd   uintptr // the reply's read position and end
	p9bad         bool    // a read past the reply's end
	p9fidUsed     [maxP9Fids]bool
)

const maxP9Fids = 4096

// p9Open starts the 9P session (Tversion) of share k on its opened device
// queue. It reports whether the device works.
//
//go:nosplit
func p9Open(k int) bool {
	d := &p9devs[uint(k)%abi.MaxShares]
	if p9req == 0 {
		n := uintptr(2 * p9.Msize)
		if physEnd-physNext < n+pageSize {
			return false
		}
		p9req, p9resp = physNext, physNext+p9.Msize
		physNext += n
	}
	d.msize = p9.Msize
	// The two descriptors every request uses: the request, then the reply.
	vqDesc(&d.q, 0, p9req, 0, vqDescNext, 1)
	vqDesc(&d.q, 1, p9resp, p9.Msize, vqDescWrite, 0)

	p9begin(p9.Tversion)
	p9put32(p9.Msize)
	p9putStr(uintptr(unsafe.Pointer(unsafe.StringData(p9.Version))), uintptr(len(p9.Version)))
	if p9rpc(k) != 0 {
		return false
	}
	if m := p9get32(); m < d.msize {
		d.msize = m
	}
	return d.msize >= 8192
}

// p9tagIs reports whether the device of q has the mount tag of the n
// bytes at tag (its configuration: u16 length, then the tag).
//
//go:nosplit
func p9tagIs(q *virtq, tag, n uintptr) bool {
	if uintptr(q.config32(0)&0xffff) != n {
		return false
	}
	for i := uintptr(0); i < n; i++ {
		if byte(q.config32((2+i)&^3)>>(8*((2+i)&3))) != load8(tag+i) {
			return false
		}
	}
	return true
}

// p9begin starts a request of type typ.
//
//go:nosplit
func p9begin(typ uint8) {
	store8(p9req+4, typ)
	store8(p9req+5, 1) // tag 1: one request at a time
	store8(p9req+6, 0)
	p9w = p9req + p9.HeaderSz
}

//go:nosplit
func p9put8(v uint8) { store8(p9w, v); p9w++ }

//go:nosplit
func p9put16(v uint16) { store8(p9w, uint8(v)); store8(p9w+1, uint8(v>>8)); p9w += 2 }

//go:nosplit
func p9put32(v uint32) { p9put16(uint16(v)); p9put16(uint16(v >> 16)) }

//go:nosplit
func p9put64(v uint64) { p9put32(uint32(v)); p9put32(uint32(v >> 32)) }

// p9putStr adds the n bytes at s as a 9P string.
//
//go:nosplit
func p9putStr(s, n uintptr) {
	p9put16(uint16(n))
	memmove(p9w, s, n)
	p9w += n
}

// p9rpc sends the request on share k's device and waits for the reply:
// 0 for the reply that request expects, else the errno (Rlerror's, or EIO
// for a device that does not answer or answers nonsense).
//
//go:nosplit
func p9rpc(k int) linux.Errno {
	d := &p9devs[uint(k)%abi.MaxShares]
	typ := load8(p9req + 4)
	n := p9w - p9req
	store32(p9req, uint32(n))
	store32(d.q.ring+8, uint32(n)) // descriptor 0's length
	used, ok := vqRun(&d.q)
	if !ok {
		return linux.EIO
	}
	rlen := uintptr(used)
	p9r, p9rEnd, p9bad = p9resp+p9.HeaderSz, p9resp+rlen, false
	if rlen < p9.HeaderSz || uintptr(load32(p9resp)) != rlen || rlen > p9.Msize {
		return linux.EIO
	}
	switch load8(p9resp + 4) {
	case typ + 1:
		return 0
	case p9.Rlerror:
		if e := linux.Errno(p9get32()); e != 0 && !p9bad {
			return e
		}
	}
	return linux.EIO
}

//go:nosplit
func p9get8() uint8 {
	if p9r+1 > p9rEnd {
		p9bad = true
		return 0
	}
	p9r++
	return load8(p9r - 1)
}

//go:nosplit
func p9get16() uint16 { return uint16(p9get8()) | uint16(p9get8())<<8 }

//go:nosplit
func p9get32() uint32 { return uint32(p9get16()) | uint32(p9get16())<<16 }

//go:nosplit
func p9get64() uint64 { return uint64(p9get32()) | uint64(p9get32())<<32 }

// p9getQid reads a qid: its type and path.
//
//go:nosplit
func p9getQid() (uint8, uint64) {
	t := p9get8()
	p9get32() // version
	return t, p9get64()
}

// p9fid takes a free fid number, or 0.
//
//go:nosplit
func p9fid() uint32 {
	for i := range p9fidUsed {
		if !p9fidUsed[i] {
			p9fidUsed[i] = true
			return uint32(i + 1)
		}
	}
	return 0
}

// p9clunk lets go of fid on share k.
//
//go:nosplit
func p9clunk(k int, fid uint32) {
	if fid == 0 {
		return
	}
	p9begin(p9.Tclunk)
	p9put32(fid)
	p9rpc(k)
	p9fidUsed[(fid-1)%maxP9Fids] = false
}
