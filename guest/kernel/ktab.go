package kernel

import "unsafe"

// Kernel tables. The kernel's large tables of fixed capacity (tmpfs nodes,
// sockets, epoll registrations, 9P nodes) do not lie in the image, where
// their zeroed bytes would take guest RAM whether used or not, but each in
// its own window of kernel address space above the identity map. A table
// grows by entries: its used prefix (the entries in use or used before) is
// backed page by page as it grows, and scans stop at it. A program that
// never opens a socket spends no RAM on the socket table; hello's image
// shrinks by 750 KiB.

const (
	ktabBase   = 0x8_0000_0000 // 32 GiB: above the identity map, below userBase
	ktabStride = 16 << 20      // address space per table
)

// The tables' windows.
const (
	ktabTnodes = iota
	ktabSockets
	ktabEpoll
	ktabP9nodes
	nKtabs
)

// ktab is the state of one table: n entries of size bytes each are usable.
type ktab struct {
	n      int
	mapped uintptr // bytes of the window backed
}

var ktabs [nKtabs]ktab

// ktabInit points every table at its window: *(*[max]T) values the code
// indexes as arrays. Boot only (the stores are pointer stores).
//
//go:nosplit
func ktabInit() {
	tnodes = (*[maxTnodes]tnode)(kptr(ktabAddr(ktabTnodes)))
	sockets = (*[maxSockets]socket)(kptr(ktabAddr(ktabSockets)))
	epollRegs = (*[maxEpollRegs]epollReg)(kptr(ktabAddr(ktabEpoll)))
	p9nodes = (*[maxP9Nodes]p9node)(kptr(ktabAddr(ktabP9nodes)))
}

// Each table fits its window: the constants underflow, a build error, if
// one does not.
const (
	_ = ktabStride - unsafe.Sizeof([maxTnodes]tnode{})
	_ = ktabStride - unsafe.Sizeof([maxSockets]socket{})
	_ = ktabStride - unsafe.Sizeof([maxEpollRegs]epollReg{})
	_ = ktabStride - unsafe.Sizeof([maxP9Nodes]p9node{})
)

//go:nosplit
func ktabAddr(k int) uintptr { return ktabBase + uintptr(k)*ktabStride }

// ktabGrow adds one entry of size bytes to table k (capacity max entries),
// backing the pages it reaches with zeroed frames; it returns the new
// entry's index, or -1 when the table is full or RAM ran out.
//
//go:nosplit
func ktabGrow(k int, size uintptr, max int) int {
	t := &ktabs[k]
	if t.n >= max {
		return -1
	}
	end := uintptr(t.n+1) * size
	if end > t.mapped {
		base := ktabAddr(k)
		to := (end + pageSize - 1) &^ (pageSize - 1)
		if !populate(base+t.mapped, base+to, false) {
			return -1
		}
		t.mapped = to
	}
	t.n++
	return t.n - 1
}

// ktabLen is the used prefix of table k: the entries scans look at.
//
//go:nosplit
func ktabLen(k int) int { return ktabs[k].n }
