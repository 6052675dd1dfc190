package kernel

// virtio-mmio device discovery (Virtual I/O Device (VIRTIO) Version 1.2,
// §4.2): QEMU's microvm and Firecracker describe their devices on the
// kernel command line the way Linux reads them,
//
//	virtio_mmio.device=<size>@<base>:<irq>[:<id>]
//
// (Linux, drivers/virtio/virtio_mmio.c), with C-style numbers and a K, M or
// G suffix on the size. Each is checked for the magic value and recorded,
// with its device ID, for the drivers of later issues.

const (
	virtioMMIOMagic    = 0x000 // u32 "virt"
	virtioMMIOVersion  = 0x004 // u32: 1 legacy, 2 virtio 1.x
	virtioMMIODeviceID = 0x008 // u32: 0 means no device behind the transport
	virtioMagicValue   = 0x74726976
	maxMMIODevs        = 16
)

type mmioDev struct {
	base, size uint64
	irq        uint32
	version    uint32
	deviceID   uint32
}

var (
	mmioDevs [maxMMIODevs]mmioDev
	nMMIO    int
)

// virtioMMIOParam is the command-line word's prefix.
const virtioMMIOParam = "virtio_mmio.device="

// virtioMMIOWord reads one virtio_mmio.device= word in [p, end) and probes
// the transport it names.
//
//go:nosplit
func virtioMMIOWord(p, end uintptr) {
	for i := 0; i < len(virtioMMIOParam); i++ {
		if p+uintptr(i) >= end || load8(p+uintptr(i)) != virtioMMIOParam[i] {
			return
		}
	}
	p += uintptr(len(virtioMMIOParam))
	size, p := cmdNumber(p, end, true)
	if p >= end || load8(p) != '@' {
		return
	}
	base, p := cmdNumber(p+1, end, false)
	if p >= end || load8(p) != ':' {
		return
	}
	irq, _ := cmdNumber(p+1, end, false)
	if size < 0x100 || base == 0 || base+size > 4<<30 || nMMIO == maxMMIODevs {
		return
	}
	if load32(uintptr(base)+virtioMMIOMagic) != virtioMagicValue {
		return
	}
	mmioDevs[nMMIO] = mmioDev{
		base: base, size: size, irq: uint32(irq),
		version:  load32(uintptr(base) + virtioMMIOVersion),
		deviceID: load32(uintptr(base) + virtioMMIODeviceID),
	}
	nMMIO++
}

// cmdNumber reads a C-style number (0x hex, else decimal) at p, with a K, M
// or G suffix where suffix is set.
//
//go:nosplit
func cmdNumber(p, end uintptr, suffix bool) (uint64, uintptr) {
	base := uint64(10)
	if p+1 < end && load8(p) == '0' && (load8(p+1) == 'x' || load8(p+1) == 'X') {
		base, p = 16, p+2
	}
	var v uint64
	for ; p < end; p++ {
		c := load8(p)
		d := uint64(unhex(c))
		if d == 0 && c != '0' || d >= base {
			break
		}
		v = v*base + d
	}
	if suffix && p < end {
		switch load8(p) {
		case 'K', 'k':
			v, p = v<<10, p+1
		case 'M', 'm':
			v, p = v<<20, p+1
		case 'G', 'g':
			v, p = v<<30, p+1
		}
	}
	return v, p
}
