package abi

// The image's read-only file tree (unigo build --files), as the build
// writes it and the kernel reads it in place. Little-endian:
//
//	header  RofsHeader bytes: RofsMagic (u64), the entry count (u32), zero (u32)
//	entries RofsEntry bytes each; entry 0 is the root directory "/"
//	then the names and the files' contents, where the entries point
//
// An entry is a directory or a regular file: its name (one path element)
// and parent entry make the tree; a file's bytes are at its data offset.
// Offsets count from the start of the archive.
const (
	RofsMagic  = 0x3153464f47494e55 // "UNIGOFS1"
	RofsHeader = 16
	RofsEntry  = 40

	RofsNameOff = 0  // u32
	RofsNameLen = 4  // u32
	RofsParent  = 8  // u32: the parent's entry; the root's is 0
	RofsMode    = 12 // u32: S_IFDIR or S_IFREG, and the permission bits
	RofsSize    = 16 // u64: a file's length
	RofsData    = 24 // u64: a file's first byte
	RofsMtime   = 32 // i64: modification time, Unix seconds
)
