package kernel

import (
	"unigo.dev/unigo/abi/linux"
	"unigo.dev/unigo/proto/p9"
)

// The nodes of host folder shares (p9fs.go): the table the VFS looks into
// for a share's file. It is in every image, so that the VFS compiles the
// same with or without the share and disk drivers (nodrivers.go).

const (
	maxP9Nodes = 1024
	p9NameMax  = 95 // names kept for getcwd; a longer one's getcwd is ENAMETOOLONG
)

type p9node struct {
	used   bool
	gone   bool  // removed: never found again, freed when nothing holds it
	share  uint8 // the share's index (its device)
	lockEx bool  // flock(2)
	nlen   uint8 // of name; p9NameMax+1: too long to keep
	mode   uint32
	fid    uint32
	parent uint32
	kids   uint16 // nodes whose parent this is
	opens  uint16 // open descriptions and shared mappings
	lockSh uint16
	qpath  uint64
	name   [p9NameMax]byte
}

var p9nodes *[maxP9Nodes]p9node // a kernel table (ktab.go)

//go:nosplit
func p9nodeOf(i uint32) *p9node { return &p9nodes[i%maxP9Nodes] }

//go:nosplit
func p9vn(i uint32) vnode { return vnode(fs9p<<24 | i) }

// p9modeOf is the file type a qid type gives.
//
//go:nosplit
func p9modeOf(qt uint8) uint32 {
	switch {
	case qt&p9.QtDir != 0:
		return linux.S_IFDIR
	case qt&p9.QtSymlink != 0:
		return linux.S_IFLNK
	}
	return linux.S_IFREG
}
