package kernel

import "unsafe"

// The file-descriptor table. Files are kept in a static array so that trap
// context can create and close them without allocating.

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
	fdRofs    // a file or directory of the image (rofs.go): ino is its entry, count its offset
)

const maxFiles = 1024

type file struct {
	kind    fileKind
	cloexec bool
	flags   uint32 // O_ flags visible through F_GETFL
	count   uint64 // eventfd counter
	sema    bool   // EFD_SEMAPHORE
	pipe    uint8  // pipe index of a pipe end
	sock    uint16 // socket index of a socket
	ino     uint32 // entry of an image file
	gen     uint32 // bumped on each change of readiness, for EPOLLET
}

//go:nosplit
func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

var files = [maxFiles]file{
	{kind: fdConsole, flags: 0},
	{kind: fdConsole, flags: 1},
	{kind: fdConsole, flags: 1},
}

// getFile returns the open file fd, or nil.
//
//go:nosplit
func getFile(fd uintptr) *file {
	if fd >= maxFiles || files[fd].kind == fdFree {
		return nil
	}
	return &files[fd]
}

// allocFD returns the lowest free descriptor, or -1.
//
//go:nosplit
func allocFD(kind fileKind) int {
	for i := range files {
		if files[i].kind == fdFree {
			files[i] = file{kind: kind}
			return i
		}
	}
	return -1
}
