// Package p9 holds the numbers of the 9P2000.L protocol that both sides use:
// the guest kernel's client and the own monitor's server (vmm/p9). Sources:
// the 9P2000.L description of the diod project (protocol.md) and Linux's
// include/net/9p/9p.h, for message numbers and layouts; 9P2000's intro(5)
// for the framing: size[4] type[1] tag[2], little-endian, strings as len[2]
// and bytes, a qid as type[1] version[4] path[8].
package p9

// Message types: T is the request, R = T+1 the reply.
const (
	Rlerror   = 7
	Tstatfs   = 8
	Tlopen    = 12
	Tlcreate  = 14
	Tsymlink  = 16
	Treadlink = 22
	Tgetattr  = 24
	Tsetattr  = 26
	Treaddir  = 40
	Tfsync    = 50
	Tlink     = 70
	Tmkdir    = 72
	Trenameat = 74
	Tunlinkat = 76
	Tversion  = 100
	Tattach   = 104
	Twalk     = 110
	Tread     = 116
	Twrite    = 118
	Tclunk    = 120
)

const (
	Version  = "9P2000.L"
	HeaderSz = 7  // size[4] type[1] tag[2]
	QidSz    = 13 // type[1] version[4] path[8]
	NoTag    = 0xffff
	NoFid    = 0xffffffff
	MaxWalk  = 16 // names in one Twalk (intro(5))

	// Qid types.
	QtDir     = 0x80
	QtSymlink = 0x02

	// Tgetattr's request mask: the basic stat fields.
	GetattrBasic = 0x7ff

	// Tsetattr's valid bits.
	SetattrMode     = 0x1
	SetattrUID      = 0x2
	SetattrGID      = 0x4
	SetattrSize     = 0x8
	SetattrAtime    = 0x10
	SetattrMtime    = 0x20
	SetattrCtime    = 0x40
	SetattrAtimeSet = 0x80
	SetattrMtimeSet = 0x100

	// Msize is the largest message either side sends: a 4 KiB-aligned
	// data payload of 128 KiB and its header.
	Msize = 128<<10 + 4096

	// The virtio 9P device (virtio 1.2 §5.11): its ID and the mount tag
	// feature (VIRTIO_9P_MOUNT_TAG); the tag, in the configuration space
	// after its 16-bit length, names the share.
	DeviceID     = 9
	FeatMountTag = 1
	MaxTag       = 32
)
