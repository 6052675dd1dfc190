package volume

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"unigo.dev/unigo/abi"
)

func TestCreateCheck(t *testing.T) {
	name := filepath.Join(t.TempDir(), "vol.img")
	if err := Create(name, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := Create(name, 64<<20); err == nil {
		t.Fatal("Create overwrote a volume")
	}
	v, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if p, notes := v.Check(); len(p)+len(notes) != 0 {
		t.Fatalf("a new volume has problems: %q %q", p, notes)
	}
	root, err := v.Lookup("/")
	if err != nil {
		t.Fatal(err)
	}
	if es, err := v.ReadDir(root); err != nil || len(es) != 0 {
		t.Fatalf("root: %v %v", es, err)
	}
	if _, err := v.Lookup("/nothing"); !os.IsNotExist(errUnwrap(err)) {
		t.Errorf("lookup of a missing name: %v", err)
	}
	st, _ := os.Stat(name)
	if st.Size() != 64<<20 {
		t.Errorf("size %d", st.Size())
	}
}

func errUnwrap(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{0, 1 << 20, 64<<20 + 1} {
		if err := Create(filepath.Join(dir, "v.img"), size); err == nil || !strings.Contains(err.Error(), "4 KiB blocks") {
			t.Errorf("size %d: %v", size, err)
		}
	}
}

// TestCorruption breaks a volume in the ways fsck must see: a bad
// superblock, a block marked free that is used, a wrong link count.
func TestCorruption(t *testing.T) {
	name := filepath.Join(t.TempDir(), "vol.img")
	Create(name, 16<<20)
	f, _ := os.OpenFile(name, os.O_RDWR, 0)
	defer f.Close()
	// The root's link count.
	_, _, _, _, inodes, _, _ := abi.VolLayout(16 << 20 / bs)
	f.WriteAt(binary.LittleEndian.AppendUint32(nil, 7), int64(inodes*bs+abi.VolRootInode*abi.VolInodeSize+abi.VolInNlink))
	v, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := v.Check()
	v.Close()
	if len(p) != 1 || !strings.Contains(p[0], "link count of 7") {
		t.Errorf("problems %q", p)
	}
	// A superblock with a wrong CRC: the volume is not opened.
	f.WriteAt([]byte{0xff}, abi.VolSbBlocks)
	if _, err := Open(name); err == nil || !strings.Contains(err.Error(), "unigo volume create") {
		t.Errorf("a broken superblock: %v", err)
	}
}

// writeTx writes a transaction of seq at journal block at: the blocks for
// homes; torn leaves its commit block out.
func writeTx(t *testing.T, f *os.File, n uint64, seq, at uint64, homes []uint64, blocks [][]byte, torn bool) {
	journal, _, _, _, _, _, _ := abi.VolLayout(n)
	d := make([]byte, bs)
	binary.LittleEndian.PutUint32(d, abi.VolJDescMagic)
	binary.LittleEndian.PutUint32(d[4:], uint32(len(homes)))
	binary.LittleEndian.PutUint64(d[8:], seq)
	for i, h := range homes {
		binary.LittleEndian.PutUint64(d[16+8*i:], h)
	}
	h := crc32.New(castagnoli())
	h.Write(d)
	f.WriteAt(d, int64((journal+at)*bs))
	for i, b := range blocks {
		h.Write(b)
		f.WriteAt(b, int64((journal+at+1+uint64(i))*bs))
	}
	c := make([]byte, bs)
	if !torn {
		binary.LittleEndian.PutUint32(c, abi.VolJCommitMagic)
		binary.LittleEndian.PutUint32(c[4:], uint32(len(homes)))
		binary.LittleEndian.PutUint64(c[8:], seq)
		binary.LittleEndian.PutUint32(c[16:], h.Sum32())
	}
	f.WriteAt(c, int64((journal+at+1+uint64(len(blocks)))*bs))
}

// TestJournalReplay commits two transactions that change the root inode's
// block, the second torn: opening sees the first, not the second.
func TestJournalReplay(t *testing.T) {
	name := filepath.Join(t.TempDir(), "vol.img")
	const n = 16 << 20 / bs
	Create(name, n*bs)
	_, _, _, _, inodes, _, _ := abi.VolLayout(n)
	v, _ := Open(name)
	blk, _ := v.Block(inodes)
	v.Close()
	one := append([]byte(nil), blk...)
	binary.LittleEndian.PutUint64(one[abi.VolRootInode*abi.VolInodeSize+abi.VolInMtime:], 111)
	two := append([]byte(nil), blk...)
	binary.LittleEndian.PutUint64(two[abi.VolRootInode*abi.VolInodeSize+abi.VolInMtime:], 222)
	f, _ := os.OpenFile(name, os.O_RDWR, 0)
	writeTx(t, f, n, 1, 0, []uint64{inodes}, [][]byte{one}, false)
	writeTx(t, f, n, 2, 3, []uint64{inodes}, [][]byte{two}, true)
	f.Close()
	v, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	root, _ := v.Inode(abi.VolRootInode)
	if v.Replayed != 1 || root.Mtime != 111 {
		t.Fatalf("replayed %d, root mtime %d: want the committed transaction only", v.Replayed, root.Mtime)
	}
	if p, _ := v.Check(); len(p) != 0 {
		t.Errorf("problems after replay: %q", p)
	}
}

// TestReadThroughJournal commits, in one transaction, a file /greeting
// with 5,000 bytes (two data blocks) and a subdirectory /sub: lookup,
// read, list and check see them as the kernel would have written them.
func TestReadThroughJournal(t *testing.T) {
	name := filepath.Join(t.TempDir(), "vol.img")
	const n = 16 << 20 / bs
	Create(name, n*bs)
	_, _, bitmap, _, inodes, _, data := abi.VolLayout(n)
	v, _ := Open(name)
	itab, _ := v.Block(inodes)
	bm, _ := v.Block(bitmap)
	v.Close()
	itab, bm = append([]byte(nil), itab...), append([]byte(nil), bm...)
	put := func(ino int, mode, nlink uint32, size uint64, parent uint32, direct ...uint64) {
		r := itab[ino*abi.VolInodeSize:]
		binary.LittleEndian.PutUint32(r[abi.VolInMode:], mode)
		binary.LittleEndian.PutUint32(r[abi.VolInNlink:], nlink)
		binary.LittleEndian.PutUint64(r[abi.VolInSize:], size)
		binary.LittleEndian.PutUint32(r[abi.VolInParent:], parent)
		for i, b := range direct {
			binary.LittleEndian.PutUint64(r[abi.VolInDirect+8*i:], b)
			bm[b/8] |= 1 << (b % 8)
		}
	}
	rootDir, f1, f2 := data, data+1, data+2
	put(1, 0o40755, 3, bs, 1, rootDir)
	put(2, 0o100644, 1, 5000, 0, f1, f2)
	put(3, 0o40700, 2, 0, 1)
	dir := make([]byte, bs)
	rec := func(off int, ino uint32, reclen int, typ uint8, name string) {
		binary.LittleEndian.PutUint32(dir[off:], ino)
		binary.LittleEndian.PutUint16(dir[off+4:], uint16(reclen))
		dir[off+6], dir[off+7] = uint8(len(name)), typ
		copy(dir[off+8:], name)
	}
	rec(0, 2, 24, 8, "greeting")
	rec(24, 3, 16, 4, "sub")
	rec(40, 0, bs-40, 0, "") // the rest of the block: free
	b1, b2 := make([]byte, bs), make([]byte, bs)
	for i := range b1 {
		b1[i], b2[i] = 'a', 'b'
	}
	f, _ := os.OpenFile(name, os.O_RDWR, 0)
	writeTx(t, f, n, 1, 0, []uint64{inodes, bitmap, rootDir, f1, f2}, [][]byte{itab, bm, dir, b1, b2}, false)
	f.Close()
	v, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	in, err := v.Lookup("/greeting")
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.ReadData(in)
	if err != nil || len(got) != 5000 || got[0] != 'a' || got[4095] != 'a' || got[4096] != 'b' || got[4999] != 'b' {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	root, _ := v.Lookup("/")
	es, err := v.ReadDir(root)
	if err != nil || len(es) != 2 || es[0].Name != "greeting" || es[1].Name != "sub" {
		t.Fatalf("root: %+v %v", es, err)
	}
	if p, notes := v.Check(); len(p)+len(notes) != 0 {
		t.Fatalf("problems: %q %q", p, notes)
	}
	// The same block used twice is a problem.
	put(3, 0o40700, 2, bs, 1, f1)
	f, _ = os.OpenFile(name, os.O_RDWR, 0)
	writeTx(t, f, n, 2, 7, []uint64{inodes}, [][]byte{itab}, false)
	f.Close()
	v2, _ := Open(name)
	defer v2.Close()
	if p, _ := v2.Check(); len(p) == 0 || !strings.Contains(strings.Join(p, "\n"), "used twice") {
		t.Errorf("a block used twice: problems %q", p)
	}
}
