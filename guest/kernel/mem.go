package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
)

// Memory. Guest-physical RAM is identity-mapped below 4 GiB by the monitor's
// page tables (package abi). Memory that mmap(2) hands out lives at user
// virtual addresses from userBase up, backed by 4 KiB frames taken from the RAM
// above the image and mapped as the program commits it.

const (
	pageSize = abi.PageSize
	userBase = 0x10_0000_0000   // 64 GiB: above every identity-mapped address
	userTop  = 0x7fff_ffff_f000 // end of the canonical lower half (47 bits)

	// Page-table entry bits (Intel SDM Vol. 3A §4.5).
	ptePresent  = 1 << 0
	pteWrite    = 1 << 1
	pteUser     = 1 << 2
	pteLarge    = 1 << 7
	pteAddrMask = 0x000f_ffff_ffff_f000
	pteAccessed = 1 << 5
	pteDirty    = 1 << 6
	// User mappings are made accessed and dirty, as the CPU would mark
	// them at the first touch: KVM's shadow MMU then also maps a page's
	// neighbours in its page table at a fault, where their host pages are
	// there already (Linux's arch/x86/kvm/mmu/paging_tmpl.h, prefetch_gpte,
	// skips entries without the accessed bit), as the monitor's start
	// profile makes them (vmm/machine/profile.go).
	pteUserRW   = ptePresent | pteWrite | pteUser | pteAccessed | pteDirty
	pteProtNone = 1 << 9 // software bit: a frame kept while PROT_NONE (P clear)

	maxVMAs = 512

	// Anonymous mappings of at least lazyMin bytes that mmap places itself
	// are backed on first touch (demand paging) rather than when mapped: the
	// runtime maps a 32 MiB arena index of which it uses a few pages.
	lazyMin     = 1 << 20
	maxLazy     = 64
	faultAround = 64 << 10 // see lazyFault
)

var (
	physNext, physEnd uintptr // bump allocator over never-used frames (zero)
	lowNext, lowEnd   uintptr // the free RAM below the image, used after the above
	lowDirty          bool    // firmware (PVH boot) may have left bytes in it
	freeList          uintptr // freed frames, linked through their first word
	framesFree        uintptr // frames on freeList
	poolFrames        uintptr // all frames memInit found

	// Reserved user virtual ranges, append-only: munmap frees the frames but
	// keeps the range, so a hint never lands on memory the program still
	// believes it owns.
	vmas   [maxVMAs]struct{ start, end uintptr }
	nvmas  int
	vaNext uintptr = userBase
)

// memInit takes the RAM above the image, and the free RAM between
// abi.FreeLowAddr and the image's start (3 MiB for the Go linker's base), as
// frames. lowFree says whether that low RAM is there: the own monitor's
// memory map promises it; a PVH boot's firmware memory map has to show it.
//
// The own monitor's memory map may have gaps in RAM (boot info: RAM
// ranges): the image's read-only segments, which it maps outside RAM, and
// a hole where the image's largest zeroed objects lie, the image ending in
// the gap: the RAM above the hole is the frames', and the pages of the hole
// are backed when first touched, as a lazy range.
//
//go:nosplit
func memInit(bootInfo uintptr, lowFree, dirty bool) {
	physNext = (imageEnd() + pageSize - 1) &^ (pageSize - 1)
	physEnd = uintptr(load64(bootInfo + abi.BiMemSize))
	n := uintptr(min(uint32(load64(bootInfo+abi.BiMapCount)), abi.MaxMapEntries))
	for i := uintptr(0); i+1 < n; i++ {
		lo := bootInfo + abi.BiMap + i*abi.MapEntrySize
		hi := lo + abi.MapEntrySize
		holeStart := uintptr(load64(lo)) + uintptr(load64(lo+8))
		holeEnd := uintptr(load64(hi))
		if holeStart < physNext && physNext <= holeEnd {
			lazyAdd(holeStart, physNext)
			physNext, physEnd = holeEnd, holeEnd+uintptr(load64(hi+8))
		}
	}
	if physNext >= physEnd {
		fatal("guest memory ends inside the image")
	}
	if lowFree {
		lowNext, lowEnd, lowDirty = abi.FreeLowAddr, imageStart(), dirty
	}
	poolFrames = framesAvail()
}

// imageStart is where the image's first segment begins: its ELF header
// page, just below the text, rounded down to 2 MiB (the Go linker's base,
// 0x400000, is), so that it never lies above the header.
//
//go:nosplit
func imageStart() uintptr {
	return (imageText() - pageSize) &^ (abi.LargePageSize - 1)
}

// framesAvail is the number of frames allocFrame can still return.
//
//go:nosplit
func framesAvail() uintptr {
	return (physEnd-physNext)/pageSize + (lowEnd-lowNext)/pageSize + framesFree
}

// allocFrame returns a zeroed 4 KiB frame, or 0 when RAM is exhausted.
//
//go:nosplit
func allocFrame() uintptr {
	if f := freeList; f != 0 {
		freeList = uintptr(load64(f))
		framesFree--
		memclr(f, pageSize)
		return f
	}
	// The low RAM first: the RAM above the image is also where drivers take
	// contiguous DMA memory from (physNext).
	if lowEnd-lowNext >= pageSize {
		f := lowNext
		lowNext += pageSize
		if lowDirty {
			memclr(f, pageSize)
		}
		return f
	}
	if physEnd-physNext >= pageSize {
		f := physNext
		physNext += pageSize
		return f
	}
	return 0
}

// allocContig returns n bytes (whole pages) of contiguous, zeroed RAM,
// identity-mapped and taken for good, or 0 when too little is left: for
// kernel stacks, pipe rings and device buffers, which are addressed by
// guest-physical address or need more than a page in one piece.
//
//go:nosplit
func allocContig(n uintptr) uintptr {
	if physEnd-physNext < n {
		return 0
	}
	a := physNext // never-used frames: contiguous and zero
	physNext += n
	return a
}

//go:nosplit
func freeFrame(f uintptr) {
	store64(f, uint64(freeList))
	freeList = f
	framesFree++
}

// pte returns the address of the last-level entry mapping user address va,
// creating the page tables on the way if alloc is set. It returns 0 if a table
// is missing (and alloc is not set or RAM is exhausted).
//
//go:nosplit
func pte(va uintptr, alloc bool) uintptr {
	table := uintptr(abi.PML4Addr)
	for shift := uintptr(39); shift > 12; shift -= 9 {
		e := table + (va>>shift)&511*8
		v := uintptr(load64(e))
		if v&ptePresent == 0 {
			if !alloc {
				return 0
			}
			f := allocFrame()
			if f == 0 {
				return 0
			}
			store64(e, uint64(f|pteUserRW))
			v = f | pteUserRW
		}
		if v&pteLarge != 0 {
			return 0 // identity map: never a user mapping
		}
		table = v & pteAddrMask
	}
	return table + (va>>12)&511*8
}

// mapped reports whether va is mapped, in the identity map or in user memory.
//
//go:nosplit
func mapped(va uintptr) bool {
	table := uintptr(abi.PML4Addr)
	for shift := uintptr(39); shift >= 12; shift -= 9 {
		v := uintptr(load64(table + (va>>shift)&511*8))
		if v&ptePresent == 0 {
			return false
		}
		if shift == 12 || v&pteLarge != 0 {
			return true
		}
		table = v & pteAddrMask
	}
	return false
}

// userRange reports whether all n bytes at va are mapped, so the kernel may
// touch them. Both tests are needed: va+n may overflow.
//
//go:nosplit
func userRange(va, n uintptr) bool {
	if n == 0 {
		return true
	}
	if va+n < va || va < pageSize {
		return false
	}
	for p := va &^ (pageSize - 1); p < va+n; p += pageSize {
		if !mapped(p) && !lazyFault(p) && !fmapFault(p) {
			return false
		}
	}
	return true
}

// populate maps a zeroed frame at every page of [start, end). Pages already
// mapped are zeroed if zero is set (mmap MAP_FIXED replaces them; a file's
// frame is replaced, not zeroed) and kept otherwise (mprotect). It fails with
// ENOMEM when RAM runs out.
//
//go:nosplit
func populate(start, end uintptr, zero bool) bool {
	var e uintptr
	for va := start; va < end; va, e = va+pageSize, e+8 {
		// Walk the tables once per page table (2 MiB); within it the
		// entries follow each other.
		if e == 0 || va&(abi.LargePageSize-1) == 0 {
			if e = pte(va, true); e == 0 {
				return false
			}
		}
		v := uintptr(load64(e))
		if v&(ptePresent|pteProtNone) != 0 && !(zero && v&pteShared != 0) {
			if zero {
				memclr(v&pteAddrMask, pageSize)
			}
			store64(e, uint64(v&(pteAddrMask|pteShared)|pteUserRW))
			continue
		}
		f := allocFrame()
		if f == 0 {
			return false
		}
		store64(e, uint64(f|pteUserRW))
	}
	return true
}

// unmap removes the mappings of [start, end) and frees their frames.
//
//go:nosplit
func unmap(start, end uintptr) {
	for va := start; va < end; {
		e := pte(va, false)
		if e == 0 {
			va = (va + abi.LargePageSize) &^ (abi.LargePageSize - 1) // no page table here
			continue
		}
		if v := uintptr(load64(e)); v&(ptePresent|pteProtNone) != 0 {
			store64(e, 0)
			if v&ptePresent != 0 {
				invlpg(va)
			}
			if v&pteShared == 0 { // a file's frame stays the file's
				freeFrame(v & pteAddrMask)
			}
		}
		va += pageSize
	}
}

// protectNone makes the mapped pages of [start, end) inaccessible, keeping
// their frames and contents for a later mprotect.
//
//go:nosplit
func protectNone(start, end uintptr) {
	for va := start; va < end; va += pageSize {
		e := pte(va, false)
		if e == 0 {
			continue
		}
		if v := uintptr(load64(e)); v&ptePresent != 0 {
			store64(e, uint64(v&(pteAddrMask|pteShared)|pteProtNone))
			invlpg(va)
		}
	}
}

// Lazy ranges: mapped readable and writable, each page backed by a zeroed
// frame when first touched (a page fault, or userRange for the kernel).
var (
	lazy  [maxLazy]struct{ start, end uintptr }
	nlazy int
)

//go:nosplit
func lazyAdd(start, end uintptr) bool {
	for i := 0; i < nlazy; i++ {
		if lazy[i].end == start { // the runtime commits its heap in adjoining chunks
			lazy[i].end = end
			return true
		}
	}
	if nlazy == maxLazy {
		return false
	}
	lazy[nlazy].start, lazy[nlazy].end = start, end
	nlazy++
	return true
}

// lazyRemove takes [start, end) out of every lazy range, splitting one that
// contains it: munmap, MAP_FIXED and mprotect decide those pages themselves.
//
//go:nosplit
func lazyRemove(start, end uintptr) {
	for i := 0; i < nlazy; i++ {
		r := &lazy[i]
		if end <= r.start || r.end <= start {
			continue
		}
		switch {
		case start <= r.start && r.end <= end: // all of it
			nlazy--
			lazy[i] = lazy[nlazy]
			i--
		case start <= r.start:
			r.start = end
		case r.end <= end:
			r.end = start
		default: // the middle: split
			if nlazy == maxLazy {
				// No slot for the upper part: back it now.
				populate(end, r.end, false)
				r.end = start
				continue
			}
			lazy[nlazy].start, lazy[nlazy].end = end, r.end
			nlazy++
			r.end = start
		}
	}
}

// lazyFault backs the page at va if it lies in a lazy range, and reports
// whether it did. While frames are plentiful (eagerReserve, as for commit)
// it backs the aligned faultAround bytes around it too (within the range): a
// page fault costs about 80 µs on a paging-based KVM, where exceptions go
// through emulated ring 0, so a program filling a buffer takes one fault per
// 64 KiB instead of one per page. When they are not, it backs the one page:
// the runtime's first touches are scattered over many small mappings, and at
// 64 KiB each they took 800 KiB before hello's first heap arena, which in an
// 8 MiB guest then found too little RAM left to commit.
//
//go:nosplit
func lazyFault(va uintptr) bool {
	around := uintptr(faultAround)
	if framesAvail() < eagerReserve {
		around = pageSize
	}
	for i := range lazy { // not i < nlazy: the range bounds i, so no bounds check in trap context
		if i == nlazy {
			break
		}
		r := &lazy[i]
		if va >= r.start && va < r.end {
			start := max(va&^(around-1), r.start)
			end := min(start+around, r.end)
			if populate(start, end, false) {
				return true
			}
			// Memory committed on first touch (see commit) and taken by
			// others since: the end, as Linux's OOM killer would end it.
			page := va &^ (pageSize - 1)
			if !populate(page, page+pageSize, false) {
				outOfMemoryFn()
			}
			return true
		}
	}
	return false
}

// outOfMemoryFn is called through a function value, which keeps fatal's
// console path out of the nosplit chains of lazyFault's callers.
var outOfMemoryFn = outOfMemory

//go:nosplit
func outOfMemory() {
	fatal("out of memory: no free frame for a page the program committed; give the guest more memory (unigo run -m)")
}

// vaFree reports whether [start, end) overlaps no reserved range.
//
//go:nosplit
func vaFree(start, end uintptr) bool {
	for i := 0; i < nvmas; i++ {
		if start < vmas[i].end && vmas[i].start < end {
			return false
		}
	}
	return true
}

//go:nosplit
func vaReserve(start, end uintptr) bool {
	for i := 0; i < nvmas; i++ {
		if vmas[i].end == start {
			vmas[i].end = end
			return true
		}
	}
	if nvmas == maxVMAs {
		return false
	}
	vmas[nvmas].start, vmas[nvmas].end = start, end
	nvmas++
	return true
}

// vaAlloc picks n bytes of free user address space, at hint if it is free.
//
//go:nosplit
func vaAlloc(hint, n uintptr) uintptr {
	if hint >= userBase && hint&(pageSize-1) == 0 && hint+n > hint && hint+n <= userTop && vaFree(hint, hint+n) {
		return hint
	}
	for vaNext+n > vaNext && vaNext+n <= userTop {
		a := vaNext
		vaNext += n
		if vaFree(a, a+n) {
			return a
		}
	}
	return 0
}

// copyIn copies n bytes from user address src to the kernel object dst.
//
//go:nosplit
func copyIn(dst unsafe.Pointer, src, n uintptr) bool {
	if !userRange(src, n) {
		return false
	}
	memmove(uintptr(dst), src, n)
	return true
}

// copyOut copies n bytes of the kernel object src to user address dst.
//
//go:nosplit
func copyOut(dst uintptr, src unsafe.Pointer, n uintptr) bool {
	if !userRange(dst, n) {
		return false
	}
	memmove(dst, uintptr(src), n)
	return true
}

// populateKept makes the kept pages of [start, end) accessible again (an
// mprotect after PROT_NONE), mapping nothing new.
//
//go:nosplit
func populateKept(start, end uintptr) {
	for va := start; va < end; va += pageSize {
		if e := pte(va, false); e != 0 {
			if v := uintptr(load64(e)); v&pteProtNone != 0 {
				store64(e, uint64(v&(pteAddrMask|pteShared)|pteUserRW))
			}
		}
	}
}
