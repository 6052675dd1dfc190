package virtio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"unigo.dev/unigo/proto/dhcp"
)

// ram is guest memory with the monitor's contract: Slice checks every range.
type ram []byte

func (r ram) Slice(gpa, n uint64) ([]byte, error) {
	if gpa > uint64(len(r)) || n > uint64(len(r))-gpa {
		return nil, fmt.Errorf("[%#x, +%#x) outside %#x bytes", gpa, n, len(r))
	}
	return r[gpa : gpa+n : gpa+n], nil
}

const (
	descAt   = 0x1000
	driverAt = 0x2000
	deviceAt = 0x3000
	bufAt    = 0x4000
)

// setup brings a device up as the driver would, with queues of num entries.
func setup(t testing.TB, mem ram, num uint32) (*Net, *[][]byte, *error) {
	return setupWith(t, mem, num, 0)
}

// setupWith is setup with the driver accepting features.
func setupWith(t testing.TB, mem ram, num uint32, features uint64) (*Net, *[][]byte, *error) {
	return setupRaising(t, mem, num, features, func() {})
}

// setupRaising is setupWith with raise called for each interrupt.
func setupRaising(t testing.TB, mem ram, num uint32, features uint64, raise func()) (*Net, *[][]byte, *error) {
	var sent [][]byte
	var failed error
	d := NewNet(mem, [6]byte{2, 0, 0, 0, 0, 1}, func(f []byte) { sent = append(sent, append([]byte(nil), f...)) },
		raise, func(err error) { failed = err })
	d.Write(regStatus, 1|2)
	for sel := uint32(0); sel < 2; sel++ {
		d.Write(regDeviceFeatSel, sel)
		offered := d.Read(regDeviceFeatures, 4)
		d.Write(regDriverFeatSel, sel)
		d.Write(regDriverFeatures, offered&uint32(features>>(32*sel)))
	}
	d.Write(regStatus, 1|2|8)
	for q := uint32(0); q < 2; q++ {
		d.Write(regQueueSel, q)
		d.Write(regQueueNum, num)
		base := uint32(q) * 0x400
		d.Write(regQueueDescLo, descAt+base)
		d.Write(regQueueDriverLo, driverAt+base)
		d.Write(regQueueDeviceLo, deviceAt+base)
		d.Write(regQueueReady, 1)
	}
	d.Write(regStatus, 1|2|4|8)
	return d, &sent, &failed
}

func putDesc(mem ram, q, i int, addr uint64, n uint32, flags, next uint16) {
	b := mem[descAt+q*0x400+i*16:]
	binary.LittleEndian.PutUint64(b, addr)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

func offer(mem ram, q int, heads ...uint16) {
	a := driverAt + q*0x400
	idx := binary.LittleEndian.Uint16(mem[a+2:])
	for _, h := range heads {
		binary.LittleEndian.PutUint16(mem[a+4+int(idx%8)*2:], h)
		idx++
	}
	binary.LittleEndian.PutUint16(mem[a+2:], idx)
}

func TestTransmitAndReceive(t *testing.T) {
	mem := make(ram, 0x10000)
	d, sent, failed := setup(t, mem, 8)
	if d.Read(regMagic, 4) != magic || d.Read(regVersion, 4) != 2 || d.Read(regDeviceID, 4) != 1 {
		t.Fatal("identification registers")
	}
	if mac := d.Read(regConfig, 4); mac != 0x00000002 {
		t.Errorf("config MAC bytes 0-3 = %#x", mac)
	}
	// A frame in two pieces: the header with the start of the frame, then the rest.
	frame := []byte("an ethernet frame, more or less")
	copy(mem[bufAt:], make([]byte, netHdrLen))
	copy(mem[bufAt+netHdrLen:], frame[:5])
	copy(mem[bufAt+0x100:], frame[5:])
	putDesc(mem, 1, 0, bufAt, netHdrLen+5, descNext, 1)
	putDesc(mem, 1, 1, bufAt+0x100, uint32(len(frame)-5), 0, 0)
	offer(mem, 1, 0)
	d.Write(regQueueNotify, 1)
	if *failed != nil || len(*sent) != 1 || !bytes.Equal((*sent)[0], frame) {
		t.Fatalf("sent %q, failure %v", *sent, *failed)
	}
	if used := binary.LittleEndian.Uint16(mem[deviceAt+0x400+2:]); used != 1 {
		t.Errorf("transmit used index %d, want 1", used)
	}
	if d.Read(regIntStatus, 4)&1 == 0 {
		t.Error("no interrupt after a transmit")
	}
	d.Write(regIntACK, 1)

	// Receive into a device-writable buffer.
	putDesc(mem, 0, 3, bufAt+0x800, 0x200, descWrite, 0)
	offer(mem, 0, 3)
	d.Receive(frame)
	e := mem[deviceAt+4:]
	if id, n := binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:]); id != 3 || n != uint32(netHdrLen+len(frame)) {
		t.Fatalf("used element {%d, %d}", id, n)
	}
	if got := mem[bufAt+0x800+netHdrLen : bufAt+0x800+netHdrLen+len(frame)]; !bytes.Equal(got, frame) {
		t.Errorf("received %q", got)
	}
	d.Receive(frame) // no buffer left: held, not an error
	if d.Dropped != 0 || len(d.held) != 1 || *failed != nil {
		t.Errorf("dropped %d, held %d, failure %v", d.Dropped, len(d.held), *failed)
	}
}

// TestReceiveHolds checks that frames that find no receive buffer wait, in
// order, for the driver's next buffers: the device asks to be notified of
// them (VIRTQ_USED_F_NO_NOTIFY clear) and puts the frames at the notify;
// past maxHeld bytes it drops.
func TestReceiveHolds(t *testing.T) {
	mem := make(ram, 0x10000)
	raised := 0
	d, _, failed := setupRaising(t, mem, 8, 0, func() { raised++ })
	usedFlags := func() uint16 { return binary.LittleEndian.Uint16(mem[deviceAt:]) }
	if usedFlags()&usedNoNotify == 0 {
		t.Fatal("the device asks to hear of receive buffers while it holds nothing")
	}
	putDesc(mem, 0, 0, bufAt, 0x200, descWrite, 0)
	offer(mem, 0, 0)
	for _, f := range []string{"first", "second", "third"} {
		d.Receive([]byte(f))
	}
	if len(d.held) != 2 || usedFlags()&usedNoNotify != 0 || raised != 1 {
		t.Fatalf("held %d frames, used flags %#x, raised %d: want 2 held, notifications asked for, 1 interrupt", len(d.held), usedFlags(), raised)
	}
	for i := 1; i <= 2; i++ {
		putDesc(mem, 0, i, bufAt+uint64(i)*0x200, 0x200, descWrite, 0)
		offer(mem, 0, uint16(i))
	}
	d.Write(regQueueNotify, 0)
	for i, f := range []string{"first", "second", "third"} {
		if got := string(mem[bufAt+i*0x200+netHdrLen : bufAt+i*0x200+netHdrLen+len(f)]); got != f {
			t.Errorf("buffer %d holds %q, want %q", i, got, f)
		}
	}
	if len(d.held) != 0 || usedFlags()&usedNoNotify == 0 || raised != 2 || *failed != nil {
		t.Errorf("after the notify: held %d, used flags %#x, raised %d, failure %v", len(d.held), usedFlags(), raised, *failed)
	}
	big := make([]byte, 60000)
	for range maxHeld/len(big) + 2 {
		d.Receive(big)
	}
	if d.Dropped == 0 || d.heldBytes > maxHeld {
		t.Errorf("held %d bytes, dropped %d: want at most %d held and the rest dropped", d.heldBytes, d.Dropped, maxHeld)
	}
}

// TestInterruptPerBatch checks that the interrupt is an event for each
// batch of used buffers, acknowledged or not (the contract of
// abi.BootFlagIRQEvent), that none comes while the driver asks for none,
// and that InterruptStatus and InterruptACK still work as the spec says.
func TestInterruptPerBatch(t *testing.T) {
	mem := make(ram, 0x10000)
	raised := 0
	d, _, failed := setupRaising(t, mem, 8, 0, func() { raised++ })
	for i := range 3 {
		putDesc(mem, 0, i, bufAt+uint64(i)*0x200, 0x200, descWrite, 0)
		offer(mem, 0, uint16(i))
	}
	frame := []byte("a frame")
	d.Receive(frame)
	d.Receive(frame) // not acknowledged: raised again all the same
	if raised != 2 || *failed != nil {
		t.Fatalf("raised %d times for two frames (failure %v), want 2", raised, *failed)
	}
	if d.Read(regIntStatus, 4)&1 == 0 {
		t.Error("InterruptStatus clear before the acknowledgement")
	}
	d.Write(regIntACK, 1)
	if d.Read(regIntStatus, 4)&1 != 0 {
		t.Error("InterruptStatus set after the acknowledgement")
	}
	binary.LittleEndian.PutUint16(mem[driverAt:], availNoInterrupt) // the driver is emptying the ring
	d.Receive(frame)
	if raised != 2 {
		t.Errorf("raised while the driver asked for no interrupts")
	}
}

// TestOffloads checks the negotiated offloads (§5.1.6): a checksum the
// driver leaves to the device, DATA_VALID on frames from a network whose
// checksums are right, and a frame spread over two receive buffers.
func TestOffloads(t *testing.T) {
	mem := make(ram, 0x10000)
	d, sent, failed := setupWith(t, mem, 8, featCSUM|featGuestCSUM|featMrgRxbuf|featVersion1)
	d.ValidChecksums = true

	// A UDP frame with its checksum replaced by the pseudo-header sum, as a
	// driver that offloads it writes it; the device must give back the
	// original, whose checksum gVisor's header package accepts.
	want := dhcp.Frame([6]byte{2}, dhcp.Broadcast, netip.MustParseAddrPort("10.0.2.15:5000"),
		netip.MustParseAddrPort("10.0.2.2:53"), []byte("a datagram with an odd length"))
	ip := header.IPv4(want[header.EthernetMinimumSize:])
	partial := append([]byte(nil), want...)
	binary.BigEndian.PutUint16(partial[14+20+6:], header.PseudoHeaderChecksum(header.UDPProtocolNumber,
		ip.SourceAddress(), ip.DestinationAddress(), uint16(len(ip.Payload()))))
	hdr := make([]byte, netHdrLen)
	hdr[0] = hdrNeedsCsum
	binary.LittleEndian.PutUint16(hdr[6:], 14+20) // csum_start
	binary.LittleEndian.PutUint16(hdr[8:], 6)     // csum_offset
	copy(mem[bufAt:], append(hdr, partial...))
	putDesc(mem, 1, 0, bufAt, uint32(netHdrLen+len(partial)), 0, 0)
	// And one whose csum_offset points past its end: dropped, not sent.
	binary.LittleEndian.PutUint16(hdr[8:], 0x7fff)
	copy(mem[bufAt+0x800:], append(hdr, partial...))
	putDesc(mem, 1, 1, bufAt+0x800, uint32(netHdrLen+len(partial)), 0, 0)
	offer(mem, 1, 0, 1)
	d.Write(regQueueNotify, 1)
	if *failed != nil || len(*sent) != 1 || !bytes.Equal((*sent)[0], want) {
		t.Fatalf("sent %x, failure %v; want %x", *sent, *failed, want)
	}
	if d.Dropped != 1 {
		t.Errorf("dropped %d frames, want the malformed one", d.Dropped)
	}

	// 100 bytes of frame into two 64-byte buffers: two used elements,
	// num_buffers 2, DATA_VALID.
	frame := bytes.Repeat([]byte("0123456789"), 10)
	putDesc(mem, 0, 0, bufAt+0x1000, 64, descWrite, 0)
	putDesc(mem, 0, 1, bufAt+0x1100, 64, descWrite, 0)
	offer(mem, 0, 0, 1)
	d.Receive(frame)
	if used := binary.LittleEndian.Uint16(mem[deviceAt+2:]); used != 2 {
		t.Fatalf("receive used index %d, want 2", used)
	}
	e := mem[deviceAt+4:]
	n0, n1 := binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[12:])
	got := append(append([]byte(nil), mem[bufAt+0x1000:bufAt+0x1000+int(n0)]...), mem[bufAt+0x1100:bufAt+0x1100+int(n1)]...)
	if n0 != 64 || int(n0+n1) != netHdrLen+len(frame) || !bytes.Equal(got[netHdrLen:], frame) {
		t.Fatalf("used lengths %d+%d, frame %q", n0, n1, got)
	}
	if got[0] != hdrDataValid || binary.LittleEndian.Uint16(got[10:]) != 2 {
		t.Errorf("header flags %#x, num_buffers %d; want DATA_VALID and 2", got[0], binary.LittleEndian.Uint16(got[10:]))
	}
}

// TestNoMergedBuffers: without VIRTIO_NET_F_MRG_RXBUF a frame larger than
// one chain is dropped and the buffer returned empty.
func TestNoMergedBuffers(t *testing.T) {
	mem := make(ram, 0x10000)
	d, _, failed := setup(t, mem, 8)
	putDesc(mem, 0, 0, bufAt, 64, descWrite, 0)
	putDesc(mem, 0, 1, bufAt+0x100, 64, descWrite, 0)
	offer(mem, 0, 0, 1)
	d.Receive(bytes.Repeat([]byte("x"), 100))
	used := binary.LittleEndian.Uint16(mem[deviceAt+2:])
	if *failed != nil || d.Dropped != 1 || used != 1 || binary.LittleEndian.Uint32(mem[deviceAt+8:]) != 0 {
		t.Errorf("failure %v, dropped %d, used %d; want one empty buffer back", *failed, d.Dropped, used)
	}
	if mem[bufAt] != 0 {
		t.Error("DATA_VALID without the network saying its checksums are valid")
	}
}

func TestHostileChains(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(mem ram)
	}{
		{"loop", func(mem ram) { putDesc(mem, 1, 0, bufAt, 64, descNext, 0) }},
		{"outside memory", func(mem ram) { putDesc(mem, 1, 0, 0xfffff000, 64, 0, 0) }},
		{"huge length", func(mem ram) { putDesc(mem, 1, 0, bufAt, 0xffffffff, 0, 0) }},
		{"index beyond the queue", func(mem ram) { putDesc(mem, 1, 0, bufAt, 64, descNext, 200) }},
		{"indirect", func(mem ram) { putDesc(mem, 1, 0, bufAt, 64, descIndirect, 0) }},
		{"writable in transmit", func(mem ram) { putDesc(mem, 1, 0, bufAt, 64, descWrite, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := make(ram, 0x10000)
			d, sent, failed := setup(t, mem, 8)
			c.setup(mem)
			offer(mem, 1, 0)
			d.Write(regQueueNotify, 1)
			if *failed == nil || len(*sent) != 0 {
				t.Fatalf("sent %d frames, failure %v: want the device stopped", len(*sent), *failed)
			}
			if d.Read(regStatus, 4)&statusReset == 0 {
				t.Error("DEVICE_NEEDS_RESET not set")
			}
		})
	}
}

// FuzzDescriptors runs the device over guest memory and rings made of fuzz
// input: it must never panic, and every frame it sends lies in memory.
func FuzzDescriptors(f *testing.F) {
	f.Add([]byte{0}, uint8(8))
	f.Add(bytes.Repeat([]byte{0x10, 0x40, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 0, 1, 0}, 64), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, num uint8) {
		mem := make(ram, 0x8000)
		d, _, _ := setup(t, mem, uint32(num))
		copy(mem[descAt:], data)
		d.Write(regQueueNotify, 1)
		d.Receive([]byte("frame"))
		d.Write(regQueueNotify, 0)
	})
}
