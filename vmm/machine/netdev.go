package machine

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/kvm"
	"unigo.dev/unigo/vmm/virtio"
)

// NetBackend is the network behind the guest's virtio-net device: the
// monitor's user-mode network (vmm/usernet) or a tap device.
type NetBackend interface {
	// Start begins handing frames from the network to deliver.
	Start(deliver func(frame []byte)) error
	// Send takes a frame the guest sent.
	Send(frame []byte)
}

// validChecksums is a NetBackend whose frames always carry correct
// checksums (an in-process network), so the guest need not check them.
type validChecksums interface{ ChecksumsValid() bool }

// streamBackend is a NetBackend that forwards host TCP ports into the guest
// (vmm/usernet with -p): the monitor gives the guest a socket device
// (virtio-vsock) too, and the backend hands it each connection it accepts,
// which then reaches the guest's listening socket with no TCP/IP stack on
// either side.
type streamBackend interface {
	// StreamPorts reports whether the backend forwards TCP ports.
	StreamPorts() bool
	// SetStreams gives the backend the device's Connect: connect asks the
	// guest to accept c on guestPort, and reports false when the guest's
	// driver is not up (an image without one): then the backend forwards
	// c itself.
	SetStreams(connect func(guestPort int, c net.Conn) bool)
}

// wantsStreams reports whether the machine gets a socket device.
func wantsStreams(b NetBackend) bool {
	sb, ok := b.(streamBackend)
	return ok && sb.StreamPorts()
}

// vsockWord names the socket device on the kernel command line.
var vsockWord = fmt.Sprintf("virtio_mmio.device=4K@%#x:%d", abi.VirtioVsockAddr, abi.VirtioVsockIRQ)

// guestMAC is the guest's Ethernet address (a locally administered one, as
// QEMU's default).
var guestMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// virtioNetWord names the device on the kernel command line as Linux would
// read it (see guest/kernel/virtio_mmio.go).
var virtioNetWord = fmt.Sprintf("virtio_mmio.device=4K@%#x:%d", abi.VirtioNetAddr, abi.VirtioNetIRQ)

// startNet creates the device and starts the backend.
func (m *Machine) startNet() error {
	m.net = virtio.NewNet(m.mem, guestMAC, m.cfg.Net.Send, m.raiseDevice, func(err error) {
		fmt.Fprintf(m.cfg.Stderr, "unigo: %v\n", err)
	})
	if v, ok := m.cfg.Net.(validChecksums); ok {
		m.net.ValidChecksums = v.ChecksumsValid()
	}
	if wantsStreams(m.cfg.Net) {
		d := virtio.NewVsock(m.mem, abi.VsockGuestCID, m.raiseDevice, func(err error) {
			fmt.Fprintf(m.cfg.Stderr, "unigo: %v\n", err)
		})
		m.vsock = []*virtio.Vsock{d}
		m.cfg.Net.(streamBackend).SetStreams(func(port int, c net.Conn) bool { return d.Connect(uint32(port), c) })
	}
	return m.cfg.Net.Start(m.net.Receive)
}

// raiseDevice makes the device's interrupt pending and gets the vCPU to
// take it: out of KVM_RUN with a signal, or out of a halt. Any goroutine.
// While one is pending, more raises add nothing: the devices raise an event
// per batch of used buffers (vmm/virtio.Net), and a signal each would be a
// VM exit each.
func (m *Machine) raiseDevice() {
	if m.devPending.Swap(true) {
		return
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	if m.inRun.Load() {
		syscall.Tgkill(m.pid, m.tid, syscall.SIGURG)
	}
}

// deviceMMIO answers a guest access to the device's registers.
func (m *Machine) deviceMMIO(mm *kvm.MMIO) {
	off := mm.PhysAddr - abi.VirtioNetAddr
	n := int(min(mm.Len, 4))
	if mm.IsWrite != 0 {
		var b [4]byte
		copy(b[:], mm.Data[:n])
		m.net.Write(off, binary.LittleEndian.Uint32(b[:]))
		return
	}
	v := m.net.Read(off, n)
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:], v)
	copy(mm.Data[:], b[:])
}
