// Package volume reads and creates block volumes on the host (unigo volume
// create|ls|cp|fsck), in the format of abi/volume.go. Opening a volume
// replays its journal in memory, as the kernel's mount would on the disk,
// so that what was committed before a crash is seen, without writing.
package volume

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"unigo.dev/unigo/abi"
)

const bs = abi.VolBlockSize

// castagnoli is made on first use: MakeTable takes 0.2 ms, which every
// start of unigo would pay otherwise.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Create makes a new, empty volume of size bytes (a multiple of 4 KiB, at
// least 4 MiB) at name, which must not exist. The file is sparse.
func Create(name string, size int64) error {
	if size%bs != 0 || size < abi.VolMinBlocks*bs {
		return fmt.Errorf("a volume is a whole number of 4 KiB blocks, at least 4M; %d bytes is not", size)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: create makes a new volume; remove the file first, or use it as it is", name)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	n := uint64(size / bs)
	journal, journalLen, bitmap, bitmapLen, inodes, inodesLen, data := abi.VolLayout(n)
	if err := f.Truncate(size); err != nil {
		return err
	}
	// The bitmap: the metadata blocks are in use.
	bm := make([]byte, bitmapLen*bs)
	for b := uint64(0); b < data; b++ {
		bm[b/8] |= 1 << (b % 8)
	}
	if _, err := f.WriteAt(bm, int64(bitmap*bs)); err != nil {
		return err
	}
	// The root directory: empty.
	in := make([]byte, abi.VolInodeSize)
	now := uint64(time.Now().UnixNano())
	binary.LittleEndian.PutUint32(in[abi.VolInMode:], syscall.S_IFDIR|0o755)
	binary.LittleEndian.PutUint32(in[abi.VolInNlink:], 2)
	binary.LittleEndian.PutUint32(in[abi.VolInParent:], abi.VolRootInode)
	for _, o := range []int{abi.VolInAtime, abi.VolInMtime, abi.VolInCtime} {
		binary.LittleEndian.PutUint64(in[o:], now)
	}
	if _, err := f.WriteAt(in, int64(inodes*bs+abi.VolRootInode*abi.VolInodeSize)); err != nil {
		return err
	}
	sb := make([]byte, bs)
	copy(sb, abi.VolMagic)
	binary.LittleEndian.PutUint32(sb[abi.VolSbVersion:], abi.VolVersion)
	binary.LittleEndian.PutUint32(sb[abi.VolSbBlockSize:], bs)
	binary.LittleEndian.PutUint64(sb[abi.VolSbGeneration:], 1)
	for o, v := range map[int]uint64{abi.VolSbBlocks: n, abi.VolSbJournalStart: journal, abi.VolSbJournalLen: journalLen,
		abi.VolSbBitmapStart: bitmap, abi.VolSbBitmapLen: bitmapLen, abi.VolSbInodeStart: inodes, abi.VolSbInodeLen: inodesLen,
		abi.VolSbDataStart: data, abi.VolSbJournalSeq: 1} {
		binary.LittleEndian.PutUint64(sb[o:], v)
	}
	binary.LittleEndian.PutUint32(sb[abi.VolSbCRC:], crc32.Checksum(sb[:abi.VolSbCRC], castagnoli()))
	if _, err := f.WriteAt(sb, 0); err != nil {
		return err
	}
	return f.Sync()
}

// Volume is an opened volume, read-only.
type Volume struct {
	f        *os.File
	sb       []byte
	overlay  map[uint64][]byte // blocks of committed transactions not yet at home
	Replayed int               // transactions the journal held
}

func (v *Volume) sb64(off int) uint64 { return binary.LittleEndian.Uint64(v.sb[off:]) }

// Blocks is the volume's size in blocks.
func (v *Volume) Blocks() uint64 { return v.sb64(abi.VolSbBlocks) }

// LastMount is the guest path the volume was last mounted at, or "".
func (v *Volume) LastMount() string {
	b := v.sb[abi.VolSbLastMount : abi.VolSbLastMount+256]
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Open opens the volume at name: the newer valid superblock, and the
// journal's committed transactions.
func Open(name string) (*Volume, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	v := &Volume{f: f, overlay: map[uint64][]byte{}}
	if err := v.readSuper(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := v.replay(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: journal: %w", name, err)
	}
	return v, nil
}

// Close closes the volume's file.
func (v *Volume) Close() error { return v.f.Close() }

func (v *Volume) readSuper() error {
	st, err := v.f.Stat()
	if err != nil {
		return err
	}
	var best []byte
	for i := int64(0); i < 2; i++ {
		sb := make([]byte, bs)
		if _, err := v.f.ReadAt(sb, i*bs); err != nil && err != io.EOF {
			return err
		}
		if string(sb[:8]) != abi.VolMagic || binary.LittleEndian.Uint32(sb[abi.VolSbVersion:]) != abi.VolVersion ||
			binary.LittleEndian.Uint32(sb[abi.VolSbCRC:]) != crc32.Checksum(sb[:abi.VolSbCRC], castagnoli()) {
			continue
		}
		if best == nil || binary.LittleEndian.Uint64(sb[abi.VolSbGeneration:]) > binary.LittleEndian.Uint64(best[abi.VolSbGeneration:]) {
			best = sb
		}
	}
	if best == nil {
		return errors.New("not a Unigo volume (no valid superblock); make one with unigo volume create")
	}
	v.sb = best
	n := v.Blocks()
	j, jl, b, bl, in, inl, d := abi.VolLayout(n)
	for _, c := range []struct {
		off  int
		want uint64
	}{{abi.VolSbJournalStart, j}, {abi.VolSbJournalLen, jl}, {abi.VolSbBitmapStart, b}, {abi.VolSbBitmapLen, bl},
		{abi.VolSbInodeStart, in}, {abi.VolSbInodeLen, inl}, {abi.VolSbDataStart, d}} {
		if v.sb64(c.off) != c.want {
			return fmt.Errorf("the superblock's layout field at %d is %d, want %d", c.off, v.sb64(c.off), c.want)
		}
	}
	if uint64(st.Size()) < n*bs {
		return fmt.Errorf("the file holds %d bytes; the volume is %d", st.Size(), n*bs)
	}
	if v.sb64(abi.VolSbJournalHead) >= jl {
		return fmt.Errorf("the journal head %d is beyond the journal", v.sb64(abi.VolSbJournalHead))
	}
	return nil
}

// raw reads block n from the file.
func (v *Volume) raw(n uint64) ([]byte, error) {
	if n >= v.Blocks() {
		return nil, fmt.Errorf("block %d beyond the volume's %d", n, v.Blocks())
	}
	b := make([]byte, bs)
	_, err := v.f.ReadAt(b, int64(n*bs))
	return b, err
}

// replay reads the transactions from the journal's head, as long as their
// sequence numbers follow on and their commit blocks check, into overlay.
func (v *Volume) replay() error {
	start, jl := v.sb64(abi.VolSbJournalStart), v.sb64(abi.VolSbJournalLen)
	seq, at := v.sb64(abi.VolSbJournalSeq), v.sb64(abi.VolSbJournalHead)
	for {
		d, err := v.raw(start + at)
		if err != nil {
			return err
		}
		count := uint64(binary.LittleEndian.Uint32(d[4:]))
		if binary.LittleEndian.Uint32(d) != abi.VolJDescMagic || binary.LittleEndian.Uint64(d[8:]) != seq ||
			count == 0 || count > abi.VolJMaxBlocks || at+count+2 > jl {
			return nil
		}
		h := crc32.New(castagnoli())
		h.Write(d)
		blocks := make([][]byte, count)
		for i := range blocks {
			if blocks[i], err = v.raw(start + at + 1 + uint64(i)); err != nil {
				return err
			}
			h.Write(blocks[i])
		}
		c, err := v.raw(start + at + 1 + count)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(c) != abi.VolJCommitMagic || binary.LittleEndian.Uint64(c[8:]) != seq ||
			uint64(binary.LittleEndian.Uint32(c[4:])) != count || binary.LittleEndian.Uint32(c[16:]) != h.Sum32() {
			return nil // torn: the transaction did not commit
		}
		for i := range blocks {
			home := binary.LittleEndian.Uint64(d[16+8*i:])
			if home < v.sb64(abi.VolSbBitmapStart) || home >= v.Blocks() {
				return fmt.Errorf("transaction %d writes block %d, outside the bitmap, inodes and data", seq, home)
			}
			v.overlay[home] = blocks[i]
		}
		v.Replayed++
		seq++
		at += count + 2
	}
}

// Block returns block n as it is after the journal.
func (v *Volume) Block(n uint64) ([]byte, error) {
	if b, ok := v.overlay[n]; ok {
		return b, nil
	}
	return v.raw(n)
}

// Inode is an inode's fields.
type Inode struct {
	Num                 uint32
	Mode, Nlink         uint32
	UID, GID            uint32
	Size                uint64
	Parent              uint32 // a directory's
	Atime, Mtime, Ctime int64
	Direct              [abi.VolDirect]uint64
	Indirect            [3]uint64 // single, double, triple
}

// Inode reads inode i.
func (v *Volume) Inode(i uint32) (*Inode, error) {
	per := uint64(bs / abi.VolInodeSize)
	if i == 0 || uint64(i) >= v.sb64(abi.VolSbInodeLen)*per {
		return nil, fmt.Errorf("inode %d beyond the table", i)
	}
	b, err := v.Block(v.sb64(abi.VolSbInodeStart) + uint64(i)/per)
	if err != nil {
		return nil, err
	}
	r := b[uint64(i)%per*abi.VolInodeSize:]
	in := &Inode{Num: i, Mode: le32(r, abi.VolInMode), Nlink: le32(r, abi.VolInNlink), UID: le32(r, abi.VolInUID),
		GID: le32(r, abi.VolInGID), Size: le64(r, abi.VolInSize), Parent: le32(r, abi.VolInParent), Atime: int64(le64(r, abi.VolInAtime)),
		Mtime: int64(le64(r, abi.VolInMtime)), Ctime: int64(le64(r, abi.VolInCtime))}
	for k := range in.Direct {
		in.Direct[k] = le64(r, abi.VolInDirect+8*k)
	}
	for k := range in.Indirect {
		in.Indirect[k] = le64(r, abi.VolInIndirect+8*k)
	}
	return in, nil
}

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

// BlockOf returns the block that holds block idx of in's data, 0 for a
// hole; visit, if not nil, sees every index block on the way.
func (v *Volume) BlockOf(in *Inode, idx uint64, visit func(uint64)) (uint64, error) {
	if idx < abi.VolDirect {
		return in.Direct[idx], nil
	}
	idx -= abi.VolDirect
	for level, span := 0, uint64(512); level < 3; level, span = level+1, span*512 {
		if idx >= span {
			idx -= span
			continue
		}
		b := in.Indirect[level]
		for l := level; b != 0; l-- {
			if visit != nil {
				visit(b)
			}
			blk, err := v.Block(b)
			if err != nil {
				return 0, err
			}
			span /= 512
			b = le64(blk, int(idx/span%512)*8)
			if l == 0 {
				return b, nil
			}
		}
		return 0, nil
	}
	return 0, fmt.Errorf("block %d beyond a file's reach", idx)
}

// ReadData returns in's bytes.
func (v *Volume) ReadData(in *Inode) ([]byte, error) {
	if in.Size > 1<<40 {
		return nil, fmt.Errorf("inode %d has a size of %d", in.Num, in.Size)
	}
	out := make([]byte, in.Size)
	for idx := uint64(0); idx*bs < in.Size; idx++ {
		b, err := v.BlockOf(in, idx, nil)
		if err != nil {
			return nil, err
		}
		if b == 0 {
			continue // a hole reads zeros
		}
		blk, err := v.Block(b)
		if err != nil {
			return nil, err
		}
		copy(out[idx*bs:], blk)
	}
	return out, nil
}

// Entry is a directory entry.
type Entry struct {
	Name string
	Ino  uint32
	Type uint8
}

// ReadDir returns directory in's entries.
func (v *Volume) ReadDir(in *Inode) ([]Entry, error) {
	if in.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, syscall.ENOTDIR
	}
	data, err := v.ReadData(in)
	if err != nil {
		return nil, err
	}
	var es []Entry
	for off := 0; off < len(data); {
		if off+abi.VolRecHdr > len(data) {
			return es, fmt.Errorf("directory %d: a record header past its end at %d", in.Num, off)
		}
		r := data[off:]
		ino, rl, nl := le32(r, 0), int(binary.LittleEndian.Uint16(r[4:])), int(r[6])
		if rl < abi.VolRecHdr || rl%8 != 0 || off/bs != (off+rl-1)/bs || off+rl > len(data) || (ino != 0 && (nl == 0 || abi.VolRecHdr+nl > rl)) {
			return es, fmt.Errorf("directory %d: a malformed record at %d", in.Num, off)
		}
		if ino != 0 {
			es = append(es, Entry{Name: string(r[abi.VolRecHdr : abi.VolRecHdr+nl]), Ino: ino, Type: r[7]})
		}
		off += rl
	}
	return es, nil
}

// Lookup returns the inode at the volume path p ("/" is the root); a path
// under the volume's last mount point may be given as the guest saw it.
// Symbolic links are not followed.
func (v *Volume) Lookup(p string) (*Inode, error) {
	p = path.Clean("/" + p)
	if m := v.LastMount(); m != "" && (p == m || strings.HasPrefix(p, m+"/")) {
		p = path.Clean("/" + strings.TrimPrefix(p, m))
	}
	in, err := v.Inode(abi.VolRootInode)
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if name == "" {
			continue
		}
		es, err := v.ReadDir(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		found := false
		for _, e := range es {
			if e.Name == name {
				if in, err = v.Inode(e.Ino); err != nil {
					return nil, err
				}
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: %w", p, os.ErrNotExist)
		}
	}
	return in, nil
}
