package virtio

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// vsockDriver is the driver side of a test: the rings in ram, each queue
// num 8 at the layout of setup, receive buffers of 256 bytes.
type vsockDriver struct {
	t        *testing.T
	d        *Vsock
	mem      ram
	failed   error
	lastUsed uint16 // receive ring
	txNext   uint16
	rxNext   uint16
}

const vsRxBuf = 0x8000 // receive buffers, 256 bytes each; transmit buffers at 0x9000

func newVsockDriver(t *testing.T) *vsockDriver {
	v := &vsockDriver{t: t, mem: make(ram, 0x10000)}
	v.d = NewVsock(v.mem, 3, func() {}, func(err error) { v.failed = err })
	d := v.d
	if d.Read(regDeviceID, 4) != vsockDeviceID || d.Read(regConfig, 4) != 3 {
		t.Fatal("identification or guest_cid")
	}
	d.Write(regStatus, 1|2)
	d.Write(regDriverFeatSel, 1)
	d.Write(regDriverFeatures, 1) // VIRTIO_F_VERSION_1
	d.Write(regStatus, 1|2|8)
	for q := uint32(0); q < 3; q++ {
		d.Write(regQueueSel, q)
		d.Write(regQueueNum, 8)
		base := q * 0x400
		d.Write(regQueueDescLo, descAt+base)
		d.Write(regQueueDriverLo, driverAt+base)
		d.Write(regQueueDeviceLo, deviceAt+base)
		d.Write(regQueueReady, 1)
	}
	d.Write(regStatus, 1|2|4|8)
	return v
}

// refill offers receive buffers (descriptors 0-7 in turn) until the device
// holds all 8 again, and notifies.
func (v *vsockDriver) refill() {
	v.d.mu.Lock()
	for v.rxNext-v.lastUsed < 8 {
		i := int(v.rxNext % 8)
		putDesc(v.mem, 0, i, uint64(vsRxBuf+i*256), 256, descWrite, 0)
		offer(v.mem, 0, uint16(i))
		v.rxNext++
	}
	v.d.mu.Unlock()
	v.d.Write(regQueueNotify, 0)
}

// send queues one packet from the guest and notifies.
func (v *vsockDriver) send(op uint16, flags, alloc, fwd uint32, data []byte) {
	var h [vsockHdrLen]byte
	le := binary.LittleEndian
	le.PutUint64(h[0:], 3)
	le.PutUint64(h[8:], 2)
	le.PutUint32(h[16:], 80)
	le.PutUint32(h[20:], v.hostPort())
	le.PutUint32(h[24:], uint32(len(data)))
	le.PutUint16(h[28:], vsockTypeStream)
	le.PutUint16(h[30:], op)
	le.PutUint32(h[32:], flags)
	le.PutUint32(h[36:], alloc)
	le.PutUint32(h[40:], fwd)
	v.sendRaw(append(h[:], data...))
}

func (v *vsockDriver) sendRaw(pkt []byte) {
	v.d.mu.Lock()
	i := int(v.txNext % 8)
	at := 0x9000 + i*0x800
	copy(v.mem[at:], pkt)
	putDesc(v.mem, 1, i, uint64(at), uint32(len(pkt)), 0, 0)
	offer(v.mem, 1, uint16(i))
	v.txNext++
	v.d.mu.Unlock()
	v.d.Write(regQueueNotify, 1)
}

func (v *vsockDriver) hostPort() uint32 {
	v.d.mu.Lock()
	defer v.d.mu.Unlock()
	for p := range v.d.conns {
		return p
	}
	return 0
}

// recv waits for the device's next packet.
func (v *vsockDriver) recv() (vhdr, []byte) {
	v.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		v.d.mu.Lock()
		idx := binary.LittleEndian.Uint16(v.mem[deviceAt+2:])
		if idx != v.lastUsed {
			e := v.mem[deviceAt+4+int(v.lastUsed%8)*8:]
			id, n := binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])
			b := append([]byte(nil), v.mem[vsRxBuf+int(id)*256:][:n]...)
			v.lastUsed++
			v.d.mu.Unlock()
			h := parseHdr(b)
			return h, b[vsockHdrLen:]
		}
		v.d.mu.Unlock()
	}
	v.t.Fatalf("no packet from the device (failure: %v)", v.failed)
	return vhdr{}, nil
}

// TestVsockStream carries one connection through the socket device: the
// request to the guest, the guest's credit bounding what the host's bytes
// may take, the guest's bytes to the host socket, and the close.
func TestVsockStream(t *testing.T) {
	v := newVsockDriver(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	v.refill()
	if !v.d.Connect(80, server) {
		t.Fatal("Connect refused a live device")
	}
	h, _ := v.recv()
	clientPort := uint32(client.LocalAddr().(*net.TCPAddr).Port)
	if h.op != opRequest || h.srcCID != 2 || h.dstCID != 3 || h.dstPort != 80 || h.srcPort != clientPort || h.bufAlloc != vsockBufAlloc {
		t.Fatalf("request %+v; want from the client's port %d to 80", h, clientPort)
	}
	// The guest gives 100 bytes of credit; the client sends 300.
	v.send(opResponse, 0, 100, 0, nil)
	msg := bytes.Repeat([]byte("0123456789"), 30)
	client.Write(msg)
	var got []byte
	for len(got) < 100 {
		h, data := v.recv()
		if h.op != opRW {
			t.Fatalf("op %d, want RW", h.op)
		}
		got = append(got, data...)
	}
	time.Sleep(50 * time.Millisecond)
	v.d.mu.Lock()
	extra := binary.LittleEndian.Uint16(v.mem[deviceAt+2:]) != v.lastUsed
	v.d.mu.Unlock()
	if len(got) != 100 || extra {
		t.Fatalf("%d bytes past a credit of 100", len(got))
	}
	v.refill()
	v.send(opCreditUpdate, 0, 100, 100, nil) // all 100 read: room for 100 more
	v.send(opCreditUpdate, 0, 300, 100, nil) // and a larger buffer
	for len(got) < 300 {
		h, data := v.recv()
		if h.op == opRW {
			got = append(got, data...)
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("the guest received %q", got)
	}
	// The guest's bytes reach the client; its shutdown of both directions
	// closes the host socket, and the device answers with a reset.
	v.send(opRW, 0, 300, 300, []byte("an answer"))
	v.send(opShutdown, shutRcv|shutSend, 300, 300, nil)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(client)
	if string(b) != "an answer" || err != nil {
		t.Fatalf("the client read %q, %v", b, err)
	}
	for {
		h, _ := v.recv()
		if h.op == opRst {
			break
		}
	}
	if v.failed != nil {
		t.Fatal(v.failed)
	}
}

// TestVsockHostile checks that the device refuses what a guest should not
// send: a connection it did not offer is reset, a packet whose header
// claims more payload than it carries stops the device.
func TestVsockHostile(t *testing.T) {
	v := newVsockDriver(t)
	v.refill()
	v.send(opRequest, 0, 4096, 0, nil) // the guest connecting to the host
	if h, _ := v.recv(); h.op != opRst || h.dstPort != 80 {
		t.Fatalf("answer %+v, want a reset", h)
	}
	var h [vsockHdrLen]byte
	binary.LittleEndian.PutUint32(h[24:], 1000) // len 1000, no payload
	v.sendRaw(h[:])
	if v.failed == nil || !strings.Contains(v.failed.Error(), "payload") || v.d.Read(regStatus, 4)&statusReset == 0 {
		t.Fatalf("failure %v, status %#x", v.failed, v.d.Read(regStatus, 4))
	}
	if v.d.Connect(80, nil) {
		t.Error("a stopped device took a connection")
	}
}

// TestVsockNotLive checks that Connect leaves the connection to its caller
// before a driver set the device up.
func TestVsockNotLive(t *testing.T) {
	d := NewVsock(make(ram, 0x1000), 3, func() {}, func(error) {})
	if d.Connect(80, nil) {
		t.Fatal("Connect took a connection with no driver")
	}
}

// TestVsockHold checks that a request the guest refuses on a port it has
// not served is asked again until the guest accepts it, and that once the
// guest has served the port a refusal ends the connection at once.
func TestVsockHold(t *testing.T) {
	v := newVsockDriver(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}
	v.refill()
	client, server := dial()
	defer client.Close()
	if !v.d.Connect(80, server) {
		t.Fatal("Connect refused a live device")
	}
	for i := range 3 { // nothing listens yet: refused three times
		if h, _ := v.recv(); h.op != opRequest {
			t.Fatalf("packet %d: op %d, want a request", i, h.op)
		}
		v.send(opRst, 0, 0, 0, nil)
		v.refill()
	}
	if h, _ := v.recv(); h.op != opRequest {
		t.Fatalf("op %d after three refusals, want the request again", h.op)
	}
	v.send(opResponse, 0, 4096, 0, nil)
	client.Write([]byte("hi"))
	if h, data := v.recv(); h.op != opRW || string(data) != "hi" {
		t.Fatalf("op %d %q, want the client's bytes", h.op, data)
	}
	v.send(opRst, 0, 4096, 2, nil) // the guest ends it
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the client read past the guest's reset")
	}

	// Port 80 has been served: a refusal now is final.
	client2, server2 := dial()
	defer client2.Close()
	if !v.d.Connect(80, server2) {
		t.Fatal("Connect refused a live device")
	}
	v.refill()
	if h, _ := v.recv(); h.op != opRequest {
		t.Fatalf("op %d, want a request", h.op)
	}
	v.send(opRst, 0, 0, 0, nil)
	client2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client2.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("the client read %d bytes, %v; want the close", n, err)
	}
	time.Sleep(3 * vsockRetry)
	v.d.mu.Lock()
	asked := binary.LittleEndian.Uint16(v.mem[deviceAt+2:]) != v.lastUsed
	v.d.mu.Unlock()
	if asked || v.failed != nil {
		t.Fatalf("asked again after a final refusal (%v)", v.failed)
	}
}

// FuzzVsockPackets feeds the socket device packets made of fuzz input, on
// a connection it offered and on ports it did not, then a transmit ring
// whose descriptors are fuzz input: it must never panic, and it either
// goes on or stops with an error.
func FuzzVsockPackets(f *testing.F) {
	f.Add([]byte{opResponse, 0x10, 1, 0, opRW, 0x10, 1, 2, 'h', 'i', opCreditRequest, 0, 1, 0,
		opShutdown, 3, 1, 0, opRst, 0, 1, 0, opRequest, 0, 0, 0}, []byte{})
	f.Add([]byte{opRst, 0, 1, 0, opResponse, 0, 1, 0, opRW, 0x80, 1, 1, 'x'}, bytes.Repeat([]byte{0x10, 0x90, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 1, 0}, 8))
	f.Fuzz(func(t *testing.T, pkts, ring []byte) {
		v := newVsockDriver(t)
		defer v.d.Write(regStatus, 0) // a reset ends the connection and its goroutines
		client, server := net.Pipe()
		defer client.Close()
		go io.Copy(io.Discard, client)
		v.refill()
		if !v.d.Connect(80, server) {
			t.Fatal("Connect refused a live device")
		}
		host := v.hostPort()
		le := binary.LittleEndian
		// Each packet: op, flags (its credit; 0x80: a length that lies),
		// where (bit 0: the connection's ports), payload length, payload.
		for len(pkts) >= 4 && v.failed == nil {
			op, fl, where, n := pkts[0], pkts[1], pkts[2], int(pkts[3])
			pkts = pkts[4:]
			n = min(n, len(pkts))
			data := pkts[:n]
			pkts = pkts[n:]
			var h [vsockHdrLen]byte
			le.PutUint64(h[0:], 3)
			le.PutUint64(h[8:], 2)
			src, dst := uint32(80), host
			if where&1 == 0 {
				src, dst = uint32(where), uint32(where)<<8|uint32(fl)
			}
			le.PutUint32(h[16:], src)
			le.PutUint32(h[20:], dst)
			claimed := uint32(n)
			if fl&0x80 != 0 {
				claimed++
			}
			le.PutUint32(h[24:], claimed)
			le.PutUint16(h[28:], vsockTypeStream)
			le.PutUint16(h[30:], uint16(op))
			le.PutUint32(h[32:], uint32(fl&3))
			le.PutUint32(h[36:], uint32(fl&0x7f)<<8)
			le.PutUint32(h[40:], uint32(where)<<4)
			v.sendRaw(append(h[:], data...))
			v.refill()
		}
		v.d.mu.Lock()
		copy(v.mem[descAt+0x400:descAt+0x800], ring) // the transmit queue's descriptors
		v.d.mu.Unlock()
		offer(v.mem, 1, 0, 1, 2)
		v.d.Write(regQueueNotify, 1)
		v.refill()
	})
}
