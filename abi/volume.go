package abi

// The block volume format (unigo volume create; mounted by the kernel with
// -v FILE.img:/NAME): a small journaling file system in 4 KiB blocks, all
// integers little-endian, checksums CRC-32C (Castagnoli).
//
//	block 0, 1        superblocks: the valid one with the higher generation counts
//	journal           VolJournalBlocks: transactions replayed at mount
//	bitmap            one bit per block of the volume, set when in use
//	inode table       VolInodeSize-byte inodes; inode 1 is the root, 0 means none
//	data              file and directory blocks
//
// Why this design: the kernel writes it from trap context with static
// buffers, so every structure has a fixed place and a fixed size, and crash
// safety comes from one mechanism, a redo journal of whole blocks (data
// included: data=journal in ext3's terms), whose replay is idempotent. A
// transaction is a descriptor block (the home block numbers), the new
// blocks, and a commit block whose CRC covers the descriptor and the
// blocks; it counts once its commit block is on the disk (after a flush),
// and fsync returns only then. Blocks reach their home places after the
// commit. The superblock moves the journal's head only when the journal
// starts over (at mount, at exit, and when it has no room left, each after
// a flush): until then a replay writes some transactions home again, which
// changes nothing. After a crash, replay writes every transaction from the
// head whose sequence numbers follow on and whose CRC holds; a torn one at
// the end is ignored. Files removed while open keep their inodes (link
// count 0) until closed; a mount frees those a crash left.
// Directories are records that never cross a block (the tmpfs layout) and
// know their parent; files map blocks through 6 direct pointers and a
// single, double and triple indirect block.
const (
	VolMagic     = "UNIGOVOL"
	VolVersion   = 1
	VolBlockSize = 4096
	VolInodeSize = 128
	VolRootInode = 1
	VolMinBlocks = 1024 // 4 MiB

	// Superblock fields (byte offsets).
	VolSbMagic        = 0  // [8]byte
	VolSbVersion      = 8  // u32
	VolSbBlockSize    = 12 // u32
	VolSbGeneration   = 16 // u64: the newer valid superblock wins
	VolSbBlocks       = 24 // u64: the volume's size in blocks
	VolSbJournalStart = 32 // u64
	VolSbJournalLen   = 40 // u64, blocks
	VolSbBitmapStart  = 48
	VolSbBitmapLen    = 56
	VolSbInodeStart   = 64
	VolSbInodeLen     = 72
	VolSbDataStart    = 80
	VolSbJournalSeq   = 88  // u64: the sequence number of the first transaction to replay
	VolSbJournalHead  = 96  // u64: where it starts, in blocks from the journal's start
	VolSbLastMount    = 128 // [256]byte: the guest path it was last mounted at, NUL-padded
	VolSbCRC          = 508 // u32: CRC-32C of bytes [0, 508)

	// Inode fields.
	VolInMode     = 0  // u32: type and permission bits; 0 for a free inode
	VolInNlink    = 4  // u32
	VolInUID      = 8  // u32
	VolInGID      = 12 // u32
	VolInSize     = 16 // u64
	VolInAtime    = 24 // i64, ns
	VolInMtime    = 32
	VolInCtime    = 40
	VolInDirect   = 48  // 6 × u64 block numbers (0: a hole)
	VolInParent   = 96  // u32: a directory's parent (the root's is itself), for ".." and getcwd
	VolInIndirect = 104 // u64: a block of 512 block numbers
	VolInDouble   = 112 // u64
	VolInTriple   = 120 // u64
	VolDirect     = 6

	// Journal blocks.
	VolJDescMagic   = 0x444a5655 // "UVJD": u32 magic, u32 count, u64 seq, count × u64 home blocks
	VolJCommitMagic = 0x434a5655 // "UVJC": u32 magic, u32 count, u64 seq, u32 CRC of the descriptor and the blocks
	VolJMaxBlocks   = 500        // blocks of one transaction: the home numbers fit the descriptor

	// Directory records: ino u32 (0: free), reclen u16, name length u8,
	// DT_ type u8, the name; 8-byte aligned, never crossing a block.
	VolRecHdr = 8
)

// VolLayout returns where the regions of a volume of n blocks start and
// how long they are: journal, bitmap, inode table (blocks), and the first
// data block. (The kernel calls it in trap context, hence nosplit.)
//
//go:nosplit
func VolLayout(n uint64) (journal, journalLen, bitmap, bitmapLen, inodes, inodesLen, data uint64) {
	journalLen = min(max(n/64, 256), 8192)
	bitmapLen = (n + VolBlockSize*8 - 1) / (VolBlockSize * 8)
	inodesLen = max(n/16/(VolBlockSize/VolInodeSize), 1) // an inode per 64 KiB
	journal = 2
	bitmap = journal + journalLen
	inodes = bitmap + bitmapLen
	data = inodes + inodesLen
	return
}
