package volume

import (
	"fmt"
	"strings"
	"syscall"

	"unigo.dev/unigo/abi"
)

// Check verifies the volume's consistency, as it is after the journal: the
// tree from the root (records, inodes, link counts, no directory reached
// twice), every block pointer inside the data area and used once, and the
// bitmap exactly the blocks in use. It returns the problems found, none for
// a clean volume, and notes (allocated inodes no directory names: files
// removed while open, which the next mount frees).
func (v *Volume) Check() (problems, notes []string) {
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	n := v.Blocks()
	data := v.sb64(abi.VolSbDataStart)
	owner := map[uint64]uint32{} // data block → the inode using it
	use := func(b uint64, ino uint32, what string) {
		switch {
		case b < data || b >= n:
			bad("inode %d: %s block %d outside the data area [%d, %d)", ino, what, b, data, n)
		case owner[b] != 0:
			bad("block %d used twice: by inode %d and inode %d", b, owner[b], ino)
		default:
			owner[b] = ino
		}
	}
	refs := map[uint32]uint32{abi.VolRootInode: 1}
	if root, err := v.Inode(abi.VolRootInode); err == nil && (root.Mode&syscall.S_IFMT != syscall.S_IFDIR || root.Parent != abi.VolRootInode) {
		bad("the root inode is not a directory that is its own parent")
	}
	subdirs := map[uint32]uint32{}
	seenDir := map[uint32]bool{}
	queue := []uint32{abi.VolRootInode}
	inodes := map[uint32]*Inode{}
	for len(queue) > 0 {
		ino := queue[0]
		queue = queue[1:]
		in, err := v.Inode(ino)
		if err != nil {
			bad("%v", err)
			continue
		}
		inodes[ino] = in
		if in.Mode == 0 {
			bad("inode %d is named by a directory but free", ino)
			continue
		}
		// Its blocks: within the size, inside the data area, used once.
		last := (in.Size + bs - 1) / bs
		for idx := uint64(0); idx < last; idx++ {
			b, err := v.BlockOf(in, idx, func(ib uint64) {
				if owner[ib] != ino { // an index block is reached once per data block under it
					use(ib, ino, "index")
				}
			})
			if err != nil {
				bad("inode %d: %v", ino, err)
				break
			}
			if b != 0 {
				use(b, ino, "data")
			}
		}
		for k := last; k < abi.VolDirect; k++ {
			if in.Direct[k] != 0 {
				bad("inode %d: a block past its size (%d bytes)", ino, in.Size)
			}
		}
		if in.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			continue
		}
		if seenDir[ino] {
			bad("directory %d is reached twice", ino)
			continue
		}
		seenDir[ino] = true
		es, err := v.ReadDir(in)
		if err != nil {
			bad("%v", err)
		}
		names := map[string]bool{}
		for _, e := range es {
			if e.Type == 4 {
				if sub, err := v.Inode(e.Ino); err == nil && sub.Parent != ino {
					bad("directory %d names %d its parent, but directory %d holds it", e.Ino, sub.Parent, ino)
				}
			}
			switch {
			case e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00"):
				bad("directory %d holds the name %q", ino, e.Name)
			case names[e.Name]:
				bad("directory %d holds %q twice", ino, e.Name)
			}
			names[e.Name] = true
			refs[e.Ino]++
			if refs[e.Ino] == 1 {
				queue = append(queue, e.Ino)
			}
			if e.Type == 4 { // DT_DIR
				subdirs[ino]++
			}
		}
	}
	for ino, in := range inodes {
		if in.Mode == 0 {
			continue
		}
		want := refs[ino]
		if in.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			want = 2 + subdirs[ino]
			if refs[ino] > 1 {
				bad("directory %d has %d names", ino, refs[ino])
			}
		}
		if in.Nlink != want {
			bad("inode %d has a link count of %d, want %d", ino, in.Nlink, want)
		}
	}
	// Inodes in use that no directory names.
	per := uint64(bs / abi.VolInodeSize)
	for i := uint64(1); i < v.sb64(abi.VolSbInodeLen)*per; i++ {
		if _, ok := inodes[uint32(i)]; ok {
			continue
		}
		in, err := v.Inode(uint32(i))
		if err != nil || in.Mode == 0 {
			continue
		}
		if in.Nlink == 0 {
			notes = append(notes, fmt.Sprintf("inode %d: removed while open; the next mount frees it", i))
			continue
		}
		bad("inode %d is in use (%d links) but no directory names it", i, in.Nlink)
	}
	// The bitmap: the metadata and exactly the blocks the tree uses.
	bm := v.sb64(abi.VolSbBitmapStart)
	for b := uint64(0); b < n; b++ {
		if b%(bs*8) == 0 {
			if _, err := v.Block(bm + b/(bs*8)); err != nil {
				bad("bitmap: %v", err)
				break
			}
		}
		blk, _ := v.Block(bm + b/(bs*8))
		set := blk[b%(bs*8)/8]&(1<<(b%8)) != 0
		inUse := b < data || owner[b] != 0
		switch {
		case set && !inUse && len(notes) == 0:
			bad("block %d is marked in use but nothing uses it", b)
		case !set && inUse:
			bad("block %d is in use (inode %d) but not marked", b, owner[b])
		}
	}
	return problems, notes
}
