package virtio

import (
	"encoding/binary"
	"sync/atomic"

	"unigo.dev/unigo/proto/p9"
)

// P9 is a virtio 9P transport device (§5.11): one request queue whose
// chains hold a 9P request (device-readable) and room for its reply
// (device-writable). Requests are served as the driver notifies, on the
// vCPU's thread, by the file server behind it.
type P9 struct {
	transport
	serve func(req []byte) []byte // a 9P request to its reply
	raise func()
	fail  func(error)
	// Counters count the 9P requests served and their bytes, both ways.
	Counters struct{ Requests, BytesIn, BytesOut atomic.Uint64 }
}

// NewP9 returns a device whose configuration names the share tag (at most
// p9.MaxTag bytes) and whose requests serve answers.
func NewP9(mem Memory, tag string, serve func([]byte) []byte, raise func(), fail func(error)) *P9 {
	cfg := binary.LittleEndian.AppendUint16(nil, uint16(len(tag)))
	d := &P9{serve: serve, raise: raise, fail: fail}
	d.transport = transport{mem: mem, name: "virtio-9p", id: p9.DeviceID, offered: p9.FeatMountTag | featVersion1,
		config: append(cfg, tag...), q: make([]queue, 1)}
	return d
}

// Write takes a guest write of v at register offset off.
func (d *P9) Write(off uint64, v uint32) {
	d.writeRequests(off, v, p9.Msize, d.request, d.raise, d.fail)
}

// request answers one 9P request: the bytes written to the reply buffers.
func (d *P9) request(out, in [][]byte) (uint32, error) {
	var req []byte
	for _, b := range out {
		req = append(req, b...)
	}
	resp := d.serve(req)
	d.Counters.Requests.Add(1)
	d.Counters.BytesIn.Add(uint64(len(req)))
	d.Counters.BytesOut.Add(uint64(len(resp)))
	n := 0
	for _, b := range in {
		n += copy(b, resp[n:])
	}
	if n < len(resp) {
		// No room for the reply: a driver error, answered as one
		// (Rlerror EMSGSIZE) rather than a cut reply.
		n = 0
		if len(resp) >= p9.HeaderSz {
			e := []byte{11, 0, 0, 0, p9.Rlerror, resp[5], resp[6], 90, 0, 0, 0}
			for _, b := range in {
				n += copy(b, e[n:])
			}
		}
	}
	return uint32(n), nil
}
