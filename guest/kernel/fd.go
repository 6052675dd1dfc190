package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// The file-descriptor table. A descriptor names an open file description
// (open(2)): dup(2) makes another descriptor for the same description, which
// shares its offset and status flags, and the description is released when
// its last descriptor closes. Both tables are static arrays, so that trap
// context can create and close files without allocating.

type fileKind uint8

const (
	fdFree    fileKind = iota
	fdConsole          // 0, 1, 2: stdin reads EOF; stdout and stderr go to the host
	fdEventfd
	fdEpoll
	fdPipeR // the read end of a pipe
	fdPipeW // the write end
	fdSocket
	fdSynth   // a synthetic read-only file (synth.go): pipe is its index, count its offset
	fdNetlink // a route netlink socket (sys_netlink.go)
	fdDev     // a character device (devfs.go): pipe is which
	fdVnode   // a file or directory of a file system (vfs.go): vn is its node, count its offset
	fdBlk     // a disk (blk.go): pipe is which, count its offset
)

const maxFiles = 1024

// file is an open file description.
type file struct {
	kind  fileKind
	refs  uint16 // descriptors naming it
	flags uint32 // O_ flags visible through F_GETFL
	count uint64 // eventfd counter; file offset
	sema  bool   // EFD_SEMAPHORE
	pipe  uint8  // pipe index of a pipe end
	sock  uint16 // socket index of a socket
	vn    vnode  // node of a file system's file
	lock  uint8  // flock(2) held: lockSh or lockEx
	p9fid uint32 // a share's file: the fid opened for this description
	gen   uint32 // bumped on each change of readiness, for EPOLLET
}

// fdEnt is a descriptor: its description (index+1, 0 when free) and the
// one flag that belongs to the descriptor, FD_CLOEXEC.
type fdEnt struct {
	d       uint16
	cloexec bool
}

//go:nosplit
func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

// The descriptor table and the open file descriptions. They are zeroed
// data, set up by fdInit rather than by initializers: an initialized array
// is file bytes in every image (descs alone is 40 KiB).
var (
	fdt   [maxFiles]fdEnt
	descs [maxFiles]file
)

// fdInit opens stdin, stdout and stderr on the console. Called by kinit.
//
//go:nosplit
func fdInit() {
	for fd := range 3 {
		flags := uint32(linux.O_WRONLY)
		if fd == 0 {
			flags = linux.O_RDONLY
		}
		descs[fd] = file{kind: fdConsole, refs: 1, flags: flags}
		fdt[fd] = fdEnt{d: uint16(fd + 1)}
	}
}

// getFile returns the description open as fd, or nil.
//
//go:nosplit
func getFile(fd uintptr) *file {
	if fd >= maxFiles || fdt[fd].d == 0 {
		return nil
	}
	return &descs[uint(fdt[fd].d-1)%maxFiles]
}

// fdFile returns the description of fd, which the caller knows is open.
//
//go:nosplit
func fdFile(fd int) *file { return getFile(uintptr(fd)) }

// readyGen is what EPOLLET compares: a description's gen, and for a socket
// its socket's, which sockChanged bumps without a walk over descriptions.
//
//go:nosplit
func readyGen(d *file) uint32 {
	if d.kind == fdSocket && uint(d.sock) < uint(len(sockets)) {
		return d.gen + sockets[d.sock].gen
	}
	return d.gen
}

// allocFD returns the lowest free descriptor, naming a new description of
// kind, or -1.
//
//go:nosplit
func allocFD(kind fileKind) int {
	fd := freeFDFrom(0)
	if fd < 0 {
		return -1
	}
	for i := range descs {
		if descs[i].kind == fdFree {
			descs[i] = file{kind: kind, refs: 1}
			fdt[fd] = fdEnt{d: uint16(i + 1)}
			return fd
		}
	}
	return -1
}

// freeFDFrom returns the lowest free descriptor not below min, or -1.
//
//go:nosplit
func freeFDFrom(min int) int {
	for fd := max(min, 0); fd < maxFiles; fd++ {
		if fdt[fd].d == 0 {
			return fd
		}
	}
	return -1
}

// freeFD undoes an allocFD whose call failed later.
//
//go:nosplit
func freeFD(fd int) {
	*fdFile(fd) = file{}
	fdt[fd] = fdEnt{}
}

// dupTo makes descriptor to name fd's description; to must be free.
//
//go:nosplit
func dupTo(fd uintptr, to int, cloexec bool) {
	fdt[to] = fdEnt{d: fdt[fd].d, cloexec: cloexec}
	getFile(fd).refs++
}
