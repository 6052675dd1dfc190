package kernel

// PCI enumeration on the PVH platform (PCI Local Bus Specification 3.0
// §6.1 for the configuration header; PCI Express Base Specification §7.2.2
// for ECAM): configuration space through ECAM where the ACPI MCFG gives it,
// else the legacy 0xcf8/0xcfc mechanism (Configuration Mechanism #1, PCI 3.0
// §3.2.2.3.2). The scan follows PCI-to-PCI bridges from bus 0, and records
// the functions it finds for the drivers of later issues.

const (
	pciConfAddr   = 0xcf8
	pciConfData   = 0xcfc
	pciVendor     = 0x00 // u16; 0xffff: nothing there
	pciClassRev   = 0x08 // u32: class, subclass, prog-if, revision
	pciHeaderType = 0x0e // u8; bit 7: multi-function
	pciBusNumbers = 0x18 // u32 in a bridge: primary, secondary, subordinate
	pciSubsystem  = 0x2c // u32: subsystem vendor, subsystem ID
	pciClassBridg = 0x0604
	maxPCIDevs    = 32
)

// pciDev is one PCI function.
type pciDev struct {
	bus, dev, fn   uint8
	vendor, device uint16
	class          uint32 // class<<16 | subclass<<8 | prog-if
}

var (
	pciDevs [maxPCIDevs]pciDev
	nPCI    int
	pciECAM bool // configuration space came through ECAM
)

// pciRead32 reads the configuration register at off (4-byte aligned).
//
//go:nosplit
func pciRead32(bus, dev, fn uint8, off uint16) uint32 {
	if acpi.ecamBase != 0 && bus >= acpi.ecamBus0 && bus <= acpi.ecamBus1 {
		a := acpi.ecamBase + uint64(bus-acpi.ecamBus0)<<20 | uint64(dev)<<15 | uint64(fn)<<12 | uint64(off&0xffc)
		if a < 4<<30 { // the identity map's end
			return load32(uintptr(a))
		}
	}
	if off >= 256 {
		return 0xffffffff
	}
	outl(pciConfAddr, 1<<31|uint32(bus)<<16|uint32(dev)<<11|uint32(fn)<<8|uint32(off&0xfc))
	return inl(pciConfData)
}

// pciWrite32 writes the configuration register at off (4-byte aligned).
//
//go:nosplit
func pciWrite32(bus, dev, fn uint8, off uint16, v uint32) {
	if acpi.ecamBase != 0 && bus >= acpi.ecamBus0 && bus <= acpi.ecamBus1 {
		a := acpi.ecamBase + uint64(bus-acpi.ecamBus0)<<20 | uint64(dev)<<15 | uint64(fn)<<12 | uint64(off&0xffc)
		if a < 4<<30 {
			store32(uintptr(a), v)
			return
		}
	}
	if off >= 256 {
		return
	}
	outl(pciConfAddr, 1<<31|uint32(bus)<<16|uint32(dev)<<11|uint32(fn)<<8|uint32(off&0xfc))
	outl(pciConfData, v)
}

// pciBDF packs a function's address as bus<<8 | dev<<3 | fn, the form the
// network component names it by.
//
//go:nosplit
func (d *pciDev) bdf() uint64 { return uint64(d.bus)<<8 | uint64(d.dev)<<3 | uint64(d.fn) }

// virtioType returns the virtio device type of a PCI function (virtio 1.2
// §4.1.2.1: vendor 0x1af4, device 0x1040+type, or a transitional device
// 0x1000-0x103f whose subsystem ID is the type), or 0.
//
//go:nosplit
func (d *pciDev) virtioType() uint32 {
	switch {
	case d.vendor != 0x1af4:
		return 0
	case d.device >= 0x1040 && d.device <= 0x107f:
		return uint32(d.device - 0x1040)
	case d.device >= 0x1000 && d.device <= 0x103f:
		return pciRead32(d.bus, d.dev, d.fn, pciSubsystem) >> 16
	}
	return 0
}

// pciFind returns the function with address bdf, or nil.
//
//go:nosplit
func pciFind(bdf uint64) *pciDev {
	for i := 0; i < nPCI; i++ {
		if pciDevs[i].bdf() == bdf {
			return &pciDevs[i]
		}
	}
	return nil
}

// pciScan enumerates the functions reachable from bus 0.
//
//go:nosplit
func pciScan() {
	pciECAM = acpi.ecamBase != 0
	var queue [32]uint8 // buses to scan; bus 0 first
	n := 1
	for i := 0; i < n; i++ {
		bus := queue[i]
		for dev := uint8(0); dev < 32; dev++ {
			for fn := uint8(0); fn < 8; fn++ {
				id := pciRead32(bus, dev, fn, pciVendor)
				if uint16(id) == 0xffff {
					if fn == 0 {
						break
					}
					continue
				}
				class := pciRead32(bus, dev, fn, pciClassRev) >> 8
				hdr := uint8(pciRead32(bus, dev, fn, pciHeaderType&^3) >> 16)
				if nPCI < maxPCIDevs {
					pciDevs[nPCI] = pciDev{bus, dev, fn, uint16(id), uint16(id >> 16), class}
					nPCI++
				}
				if class>>8 == pciClassBridg && hdr&0x7f == 1 && n < len(queue) {
					if sec := uint8(pciRead32(bus, dev, fn, pciBusNumbers) >> 8); sec > bus {
						queue[n] = sec
						n++
					}
				}
				if fn == 0 && hdr&0x80 == 0 {
					break // single-function device
				}
			}
		}
	}
}
