package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi/linux"
)

// What the network component needs to drive a device from ordinary Go code:
// the virtio devices found at boot (virtio-mmio, and PCI functions with
// their configuration space), DMA memory (contiguous RAM whose
// identity-mapped address is its physical address), the device's interrupt
// routed through the I/O APIC (82093AA data sheet) or MSI-X to vecDevice, and the
// command line's network settings.

const (
	ioapicBase      = 0xfec00000
	ioapicRegSel    = 0x00
	ioapicWin       = 0x10
	ioapicRedirTbl  = 0x10 // 2 registers per input pin
	lapicID         = 0x020
	virtioIntStatus = 0x060 // virtio-mmio InterruptStatus
	virtioIntACK    = 0x064 // virtio-mmio InterruptACK
	maxNetConfig    = 256
)

var (
	netIRQ       bool    // the device interrupted since the component last looked
	netIRQDevice uintptr // the virtio-mmio base whose interrupt is routed and acknowledged
	irqEvents    bool    // the own monitor's device interrupts need no acknowledgement (abi.BootFlagIRQEvent)
	netConfig    [maxNetConfig]byte
	netConfigLen int
)

// netConfigWord keeps a "net.KEY=VALUE" word of the command line at [p, end).
//
//go:nosplit
func netConfigWord(p, end uintptr) {
	if netConfigLen+int(end-p)+1 > maxNetConfig {
		return
	}
	if netConfigLen > 0 {
		netConfig[netConfigLen] = ' '
		netConfigLen++
	}
	for ; p < end; p++ {
		netConfig[netConfigLen] = load8(p)
		netConfigLen++
	}
}

//go:nosplit
func ioapicWrite(reg, v uint32) {
	store32(ioapicBase+ioapicRegSel, reg)
	store32(ioapicBase+ioapicWin, v)
}

//go:nosplit
func sysNetDev(nr uintptr, f *trapFrame) uintptr {
	switch nr {
	case SysNetDevice:
		return netDevice(f.arg(0), f.arg(1))
	case SysNetPCIRead, SysNetPCIWrite, SysNetMSI:
		return netPCI(nr, f)
	case SysNetDMA:
		n := (f.arg(0) + pageSize - 1) &^ (pageSize - 1)
		if n == 0 || n > 16<<20 {
			return errno(linux.ENOMEM)
		}
		if a := allocContig(n); a != 0 {
			return a
		}
		return errno(linux.ENOMEM)
	case SysNetIRQ:
		base, irq := f.arg(0), f.arg(1)
		known := false
		for i := 0; i < nMMIO; i++ {
			known = known || (mmioDevs[i].base == uint64(base) && mmioDevs[i].irq == uint32(irq))
		}
		if !known || irq >= 24 {
			return errno(linux.EINVAL)
		}
		if irqEvents {
			// The own monitor injects DeviceVector once for each batch of
			// used buffers the driver asked to hear of, whether or not the
			// last was acknowledged (vmm/virtio.Net): reading
			// InterruptStatus and writing InterruptACK would only cost two
			// VM exits per interrupt.
			return 0
		}
		netIRQDevice = base
		if !pvh {
			return 0 // an older own monitor: it injects DeviceVector itself
		}
		// Edge-triggered, active high, fixed delivery to this CPU: the
		// ISA convention microvm's virtio-mmio lines follow.
		ioapicWrite(ioapicRedirTbl+2*uint32(irq)+1, lapicRead(lapicID)&0xff000000)
		ioapicWrite(ioapicRedirTbl+2*uint32(irq), vecDevice)
	case SysNetConfig:
		buf, n := f.arg(0), f.arg(1)
		k := min(n, uintptr(netConfigLen))
		if !userRange(buf, k) {
			return errno(linux.EFAULT)
		}
		memmove(buf, uintptr(unsafe.Pointer(&netConfig[0])), k)
		return k
	}
	return 0
}

// netPCI lends a virtio PCI function's configuration space to the driver,
// and gives it the MSI message for this CPU.
//
//go:nosplit
func netPCI(nr uintptr, f *trapFrame) uintptr {
	d := pciFind(uint64(f.arg(0)))
	if d == nil || d.virtioType() == 0 {
		return errno(linux.ENODEV) // only virtio functions the scan found
	}
	switch nr {
	case SysNetPCIRead, SysNetPCIWrite:
		off := f.arg(1)
		if off >= 4096 || off&3 != 0 {
			return errno(linux.EINVAL)
		}
		if nr == SysNetPCIRead {
			return uintptr(pciRead32(d.bus, d.dev, d.fn, uint16(off)))
		}
		pciWrite32(d.bus, d.dev, d.fn, uint16(off), uint32(f.arg(2)))
		return 0
	}
	if !pvh {
		return errno(linux.ENODEV)
	}
	netIRQDevice = 0 // MSI-X: nothing to acknowledge at the device
	// SDM Vol. 3A §11.11.1-2: fixed delivery, edge, to this CPU's APIC ID
	// in physical destination mode.
	return uintptr(0xfee00000|(lapicRead(lapicID)>>24)<<12) | uintptr(vecDevice)<<32
}

// netDevice writes virtio device i's location, transport, interrupt line
// and type at out: first the virtio-mmio devices, then the PCI functions.
//
//go:nosplit
func netDevice(i, out uintptr) uintptr {
	var v [4]uint64
	if i < uintptr(nMMIO) {
		d := &mmioDevs[i]
		v = [4]uint64{d.base, NetTransportMMIO, uint64(d.irq), uint64(d.deviceID)}
	} else {
		k := int(i) - nMMIO
		for j := 0; j < nPCI; j++ {
			if t := pciDevs[j].virtioType(); t != 0 {
				if k == 0 {
					v = [4]uint64{pciDevs[j].bdf(), NetTransportPCI, 0, uint64(t)}
					break
				}
				k--
			}
		}
		if v[1] == 0 {
			return errno(linux.ENOENT)
		}
	}
	if !copyOut(out, unsafe.Pointer(&v), 32) {
		return errno(linux.EFAULT)
	}
	return 0
}

// deviceIRQ takes the network device's interrupt: it acknowledges it at the
// device, so that the line drops, and rings the component's doorbell. Trap
// context.
//
//go:nosplit
func deviceIRQ() {
	if netIRQDevice != 0 {
		store32(netIRQDevice+virtioIntACK, load32(netIRQDevice+virtioIntStatus))
	}
	if pvh {
		lapicWrite(LAPIC_EOI, 0)
	}
	netIRQ = true
	ringDoorbell()
}

// cmdlineDevices reads the virtio_mmio.device= and net.* words of the
// command line at cmd (the own monitor's; pvhCmdline reads PVH's).
//
//go:nosplit
func cmdlineDevices(cmd uintptr) {
	for p := cmd; cmd != 0; {
		for load8(p) == ' ' {
			p++
		}
		if load8(p) == 0 {
			return
		}
		start := p
		for c := load8(p); c != 0 && c != ' '; c = load8(p) {
			p++
		}
		switch load8(start) {
		case 'v':
			virtioMMIOWord(start, p)
		case 'm':
			mountWord(start, p)
		case 'c':
			cwdWord(start, p)
		case 'n':
			if p-start > 4 && load8(start+3) == '.' {
				netConfigWord(start, p)
			}
		}
	}
}
