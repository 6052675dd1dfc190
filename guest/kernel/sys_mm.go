package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// Memory system calls over the user address space of mem.go. Memory is
// committed when it is mapped readable or writable; PROT_NONE reserves
// address space only.

//go:nosplit
func pageRound(n uintptr) uintptr { return (n + pageSize - 1) &^ (pageSize - 1) }

// sysMmap implements Linux syscall mmap(2) for private anonymous memory and
// files (filemap.go).
//
//go:nosplit
func sysMmap(f *trapFrame) uintptr {
	addr := f.arg(0)
	length := f.arg(1)
	prot := f.arg(2)
	flags := f.arg(3)
	anon := flags&linux.MAP_ANONYMOUS != 0
	if anon && flags&linux.MAP_SHARED != 0 {
		return errno(linux.EINVAL) // shared anonymous memory: no fork, so not needed yet
	}
	n := pageRound(length)
	if length == 0 || n < length {
		return errno(linux.EINVAL)
	}
	fixed := flags&(linux.MAP_FIXED|linux.MAP_FIXED_NOREPLACE) != 0
	if fixed {
		if addr&(pageSize-1) != 0 || addr < userBase || addr+n < addr || addr+n > userTop {
			return errno(linux.EINVAL)
		}
		if flags&linux.MAP_FIXED_NOREPLACE != 0 && !vaFree(addr, addr+n) {
			return errno(linux.EEXIST)
		}
	} else if addr = vaAlloc(addr, n); addr == 0 {
		return errno(linux.ENOMEM)
	}
	if !vaReserve(addr, addr+n) {
		return errno(linux.ENOMEM)
	}
	if !anon {
		lazyRemove(addr, addr+n)
		return fileMmap(addr, n, prot, flags, f.arg(4), uint64(f.arg(5)))
	}
	if fixed {
		lazyRemove(addr, addr+n)
		fmapRemove(addr, addr+n)
	} else if prot != linux.PROT_NONE && n >= lazyMin && lazyAdd(addr, addr+n) {
		return addr
	}
	if prot == linux.PROT_NONE {
		unmap(addr, addr+n)
		return addr
	}
	if !commit(addr, addr+n, true) {
		return errno(linux.ENOMEM)
	}
	return addr
}

// eagerReserve is the least number of frames an eager commit leaves free.
const eagerReserve = 16 << 20 / pageSize

// commit backs the pages [start, end) that mmap or mprotect makes
// accessible (zeroing those already mapped if zero is set). While frames are
// plentiful it backs them now: a page fault costs about 80 µs on a
// paging-based KVM, a page-table entry well under 1 µs. When they are not,
// it backs them on first touch (the runtime commits its heap 4 MiB at a time
// and, in a small program, touches little of it), but only if the free
// frames could back the whole range now: otherwise the call fails with
// ENOMEM and the Go runtime reports its own out-of-memory error.
//
// The reserve left after an eager commit is at least eagerReserve: a
// populated 4 MiB arena takes frames whether touched or not, so in a small
// guest a commit backed now makes a later one fail that lazy backing lets
// through. With a quarter of the pool alone, hello in 12 MiB (1,430 frames)
// went either way, by whether a few frames had gone before its first
// arena's commit. At 8 MiB, httpd in 16 MiB had its first arena backed
// whole and under load found too little left for its third; at 16 MiB it
// serves there. Guests of 64 MiB and more are unchanged: their quarter is
// larger.
//
//go:nosplit
func commit(start, end uintptr, zero bool) bool {
	need := (end - start) / pageSize
	if framesAvail() >= need+max(poolFrames/4, eagerReserve) {
		return populate(start, end, zero)
	}
	if framesAvail() < need {
		if debug {
			debugCommitFn(need)
		}
		return false
	}
	if zero {
		unmap(start, end) // the old pages go; first touches get zeroed frames
	}
	if !lazyAdd(start, end) {
		return populate(start, end, zero)
	}
	return true
}

// debugCommitFn is debugCommit as a function value, which keeps the
// console path out of commit's nosplit chains.
var debugCommitFn = debugCommit

// debugCommitBuf is debugCommit's line (too big for a nosplit frame).
var debugCommitBuf [96]byte

// debugCommit reports, with --debug, a commit refused for want of frames.
//
//go:nosplit
func debugCommit(need uintptr) {
	n := putString(debugCommitBuf[:], 0, "unigo: mmap: ")
	n = putDec(debugCommitBuf[:], n, uint64(need*pageSize>>10))
	n = putString(debugCommitBuf[:], n, " KiB to commit, ")
	n = putDec(debugCommitBuf[:], n, uint64(framesAvail()*pageSize>>10))
	n = putString(debugCommitBuf[:], n, " KiB of RAM free: ENOMEM\n")
	consoleWrite(2, uintptr(unsafe.Pointer(&debugCommitBuf[0])), uintptr(n))
}

// sysMunmap implements Linux syscall munmap(2).
//
//go:nosplit
func sysMunmap(f *trapFrame) uintptr {
	addr := f.arg(0)
	length := f.arg(1)
	n := pageRound(length)
	if addr&(pageSize-1) != 0 || length == 0 || n < length || addr+n < addr {
		return errno(linux.EINVAL)
	}
	if addr >= userBase {
		lazyRemove(addr, addr+n)
		fmapRemove(addr, addr+n)
		unmap(addr, min(addr+n, userTop))
	}
	return 0
}

// sysMprotect implements Linux syscall mprotect(2). Memory is readable and
// writable, or not accessible at all (PROT_NONE keeps the contents).
//
//go:nosplit
func sysMprotect(f *trapFrame) uintptr {
	addr := f.arg(0)
	length := f.arg(1)
	prot := f.arg(2)
	n := pageRound(length)
	if addr&(pageSize-1) != 0 || n < length || addr+n < addr || addr < userBase || addr+n > userTop {
		return errno(linux.EINVAL)
	}
	lazyRemove(addr, addr+n)
	if prot == linux.PROT_NONE {
		protectNone(addr, addr+n)
		return 0
	}
	if fmapAt(addr) >= 0 || fmapAt(addr+n-1) >= 0 {
		// A shared file mapping: its pages come back; the file's other
		// pages are still mapped at their first touch.
		populateKept(addr, addr+n)
		return 0
	}
	if !commit(addr, addr+n, false) {
		return errno(linux.ENOMEM)
	}
	return 0
}

// sysMadvise implements Linux syscall madvise(2). MADV_DONTNEED zero-fills
// the range as Linux guarantees for private anonymous memory (the frames are
// kept); hints that promise nothing are accepted.
//
//go:nosplit
func sysMadvise(f *trapFrame) uintptr {
	addr := f.arg(0)
	length := f.arg(1)
	advice := f.arg(2)
	n := pageRound(length)
	if addr&(pageSize-1) != 0 || n < length || addr+n < addr {
		return errno(linux.EINVAL)
	}
	switch advice {
	case linux.MADV_DONTNEED:
		for va := addr; va < addr+n; va += pageSize {
			if e := pte(va, false); e != 0 {
				// A file's page, or a copy of a volume's file, keeps the file's bytes.
				if v := uintptr(load64(e)); v&ptePresent != 0 && v&pteShared == 0 && !fmapCopied(va) {
					memclr(v&pteAddrMask, pageSize)
				}
			}
		}
		return 0
	case linux.MADV_NORMAL, linux.MADV_FREE, linux.MADV_HUGEPAGE, linux.MADV_NOHUGEPAGE, linux.MADV_COLLAPSE,
		linux.MADV_RANDOM, linux.MADV_SEQUENTIAL, linux.MADV_WILLNEED: // hints, taken as such
		return 0
	}
	return errno(linux.EINVAL)
}
