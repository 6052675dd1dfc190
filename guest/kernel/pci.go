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
