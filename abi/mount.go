package abi

// A host directory share reaches the kernel as a command-line word
// "mount=TAG:PATH" or "mount=TAG:PATH:ro": the 9P device whose mount tag is
// TAG is mounted at the absolute guest path PATH, read-only with ":ro". A
// block volume's word names its disk's serial (DiskSerial) as the TAG.
// Both monitors write it; PATH holds no space and no colon (the CLI
// refuses those), so the word needs no quoting.

// MountWordPrefix starts a share's word.
const MountWordPrefix = "mount="

// CwdWordPrefix starts the word "cwd=PATH" that names the program's first
// working directory (unigo run -w), an absolute guest path without spaces.
const CwdWordPrefix = "cwd="

// MountWord returns the word for a share.
func MountWord(tag, path string, readOnly bool) string {
	w := MountWordPrefix + tag + ":" + path
	if readOnly {
		w += ":ro"
	}
	return w
}

// ShareTag returns the mount tag of share i.
func ShareTag(i int) string { return "share" + string(rune('0'+i)) }

// DiskSerial is disk i's serial number, which its device answers to
// VIRTIO_BLK_T_GET_ID on both monitors: the kernel names it /dev/vd + 'a'+i.
func DiskSerial(i int) string { return "unigo-blk" + string(rune('0'+i)) }
