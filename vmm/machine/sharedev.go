package machine

import (
	"encoding/binary"
	"fmt"
	"os"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/kvm"
	"unigo.dev/unigo/vmm/virtio"
)

// Share is a host directory the guest mounts through a virtio 9P device.
type Share struct {
	Path     string                  // where the guest mounts it: absolute
	ReadOnly bool                    // the guest mounts it read-only (the server refuses changes too)
	Serve    func(req []byte) []byte // the 9P server: a request to its reply
}

// shareWords names the share devices on the kernel command line: the
// virtio-mmio transports, as Linux reads them, and the mounts.
func shareWords(shares []Share) string {
	s := ""
	for i, sh := range shares {
		s += fmt.Sprintf("virtio_mmio.device=4K@%#x:%d %s ", abi.Virtio9pAddr+i*abi.PageSize, abi.Virtio9pIRQ+i,
			abi.MountWord(abi.ShareTag(i), sh.Path, sh.ReadOnly))
	}
	return s
}

// startShares creates the share devices.
func (m *Machine) startShares() {
	for i, sh := range m.cfg.Shares {
		m.shares = append(m.shares, virtio.NewP9(m.mem, abi.ShareTag(i), sh.Serve, m.raiseDevice, func(err error) {
			fmt.Fprintf(m.cfg.Stderr, "unigo: share %s: %v\n", sh.Path, err)
		}))
	}
}

// regDevice is a device behind a page of virtio-mmio registers.
type regDevice interface {
	Read(off uint64, size int) uint32
	Write(off uint64, v uint32)
}

// pageMMIO answers a guest access to the registers of one of devs, which
// lie a page each from base, if the address is one's.
func pageMMIO[D regDevice](mm *kvm.MMIO, base uint64, devs []D) bool {
	if mm.PhysAddr < base || (mm.PhysAddr-base)/abi.PageSize >= uint64(len(devs)) {
		return false
	}
	d := devs[(mm.PhysAddr-base)/abi.PageSize]
	off := mm.PhysAddr % abi.PageSize
	n := int(min(mm.Len, 4))
	if mm.IsWrite != 0 {
		var b [4]byte
		copy(b[:], mm.Data[:n])
		d.Write(off, binary.LittleEndian.Uint32(b[:]))
		return true
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:], d.Read(off, n))
	copy(mm.Data[:], b[:])
	return true
}

// Disk is a host file the guest sees as a block device (/dev/vda...).
type Disk struct {
	File     *os.File
	ReadOnly bool
	Mount    string // a block volume's guest path, which the kernel mounts; "" for a raw disk
}

// diskWords names the disks' virtio-mmio transports on the command line.
func diskWords(disks []Disk) string {
	s := ""
	for i, d := range disks {
		s += fmt.Sprintf("virtio_mmio.device=4K@%#x:%d ", abi.VirtioBlkAddr+i*abi.PageSize, abi.VirtioBlkIRQ+i)
		if d.Mount != "" {
			s += abi.MountWord(abi.DiskSerial(i), d.Mount, d.ReadOnly) + " "
		}
	}
	return s
}

// startDisks creates the block devices.
func (m *Machine) startDisks() error {
	for i, d := range m.cfg.Disks {
		name := d.File.Name()
		b, err := virtio.NewBlk(m.mem, d.File, abi.DiskSerial(i), d.ReadOnly, m.raiseDevice, func(err error) {
			fmt.Fprintf(m.cfg.Stderr, "unigo: disk %s: %v\n", name, err)
		})
		if err != nil {
			return err
		}
		m.disks = append(m.disks, b)
	}
	return nil
}

// devicePages returns the guest-physical page of each virtio-mmio device.
func (m *Machine) devicePages() []uint64 {
	var pages []uint64
	if m.net != nil {
		pages = append(pages, abi.VirtioNetAddr)
	}
	for i := range m.shares {
		pages = append(pages, abi.Virtio9pAddr+uint64(i)*abi.PageSize)
	}
	for i := range m.disks {
		pages = append(pages, abi.VirtioBlkAddr+uint64(i)*abi.PageSize)
	}
	for i := range m.vsock {
		pages = append(pages, abi.VirtioVsockAddr+uint64(i)*abi.PageSize)
	}
	return pages
}

// deviceAccess hands a guest access to a virtio-mmio device's page to the
// device; false if no device is there.
func (m *Machine) deviceAccess(mm *kvm.MMIO) bool {
	if m.net != nil && mm.PhysAddr >= abi.VirtioNetAddr && mm.PhysAddr < abi.VirtioNetAddr+abi.PageSize {
		m.deviceMMIO(mm)
		return true
	}
	return pageMMIO(mm, abi.Virtio9pAddr, m.shares) || pageMMIO(mm, abi.VirtioBlkAddr, m.disks) || pageMMIO(mm, abi.VirtioVsockAddr, m.vsock)
}

// coalesceLateWrites has KVM keep the guest's writes to the devices'
// registers that may take effect late (virtio.LateWrites) in its coalesced
// MMIO ring, which the vCPU's loop drains after each exit (lateWrite): a
// driver's set-up then exits for its reads and its status and queue-ready
// writes only, ~50 exits fewer for httpd's two devices, each ~20 µs of a
// round trip to the monitor here (BENCHMARKS.md). Without the capability
// every write exits, as before.
func (m *Machine) coalesceLateWrites() {
	m.lateWrite = func(mm *kvm.MMIO) { m.deviceAccess(mm) }
	for _, p := range m.devicePages() {
		for _, r := range virtio.LateWrites {
			if m.vm.RegisterCoalescedMMIO(p+r[0], uint32(r[1]-r[0])) != nil {
				return
			}
		}
	}
}
