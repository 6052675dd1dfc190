// Package gdb serves GDB's remote serial protocol (the GDB manual, appendix
// "Remote Protocol") for a stopped x86-64 target: gdb and other clients of
// the protocol attach to a guest of the own monitor through it.
//
// The monitor calls Server.Stopped on the vCPU thread whenever the guest
// stops for the debugger; Stopped answers the debugger's packets against the
// Target until it says how to resume. While the guest runs, the connection
// is watched only for the interrupt byte (Ctrl-C), which asks the monitor to
// stop it.
package gdb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// conn frames packets: $data#checksum, with the '+'/'-' acknowledgements
// until QStartNoAckMode, and the interrupt byte 0x03 outside packets.
type conn struct {
	c       net.Conn
	r       *bufio.Reader
	wmu     sync.Mutex
	noAck   atomic.Bool // after QStartNoAckMode
	packets chan string // complete packets, in order; closed at EOF
	err     error       // why packets closed
}

func newConn(c net.Conn, interrupt func()) *conn {
	k := &conn{c: c, r: bufio.NewReader(c), packets: make(chan string, 16)}
	go k.read(interrupt)
	return k
}

// read splits the stream into packets until the connection ends.
func (k *conn) read(interrupt func()) {
	defer close(k.packets)
	for {
		b, err := k.r.ReadByte()
		if err != nil {
			k.err = err
			return
		}
		switch b {
		case 0x03:
			interrupt()
		case '$':
			data, ok, err := k.body()
			if err != nil {
				k.err = err
				return
			}
			if !k.noAck.Load() {
				ack := "+"
				if !ok {
					ack = "-" // the sender retransmits
				}
				k.write([]byte(ack))
			}
			if ok {
				k.packets <- data
			}
		default: // '+' and '-' acknowledgements of ours, noise between packets
		}
	}
}

// body reads a packet after its '$': data, '#', two hex digits of the
// modulo-256 sum of the data. Escapes ('}' then the byte XOR 0x20) are kept
// for the binary packets' parsers.
func (k *conn) body() (string, bool, error) {
	var data []byte
	var sum byte
	for {
		b, err := k.r.ReadByte()
		if err != nil {
			return "", false, err
		}
		if b == '#' {
			break
		}
		data = append(data, b)
		sum += b
	}
	var cs [2]byte
	if _, err := io.ReadFull(k.r, cs[:]); err != nil {
		return "", false, err
	}
	want, ok := unhex2(cs[0], cs[1])
	return string(data), ok && want == sum, nil
}

func (k *conn) write(b []byte) error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	_, err := k.c.Write(b)
	return err
}

// send writes one packet, escaping '$', '#', '}' and '*'.
func (k *conn) send(data string) error {
	out := make([]byte, 0, len(data)+4)
	out = append(out, '$')
	var sum byte
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '$' || c == '#' || c == '}' || c == '*' {
			out = append(out, '}')
			sum += '}'
			c ^= 0x20
		}
		out = append(out, c)
		sum += c
	}
	out = append(out, '#', hexDigit(sum>>4), hexDigit(sum&15))
	return k.write(out)
}

// next returns the next packet, or an error once the debugger is gone.
func (k *conn) next() (string, error) {
	p, ok := <-k.packets
	if !ok {
		if k.err == nil || errors.Is(k.err, io.EOF) {
			return "", errDetached
		}
		return "", fmt.Errorf("debugger connection: %w", k.err)
	}
	return p, nil
}

var errDetached = errors.New("the debugger disconnected")

func hexDigit(v byte) byte { return "0123456789abcdef"[v&15] }

func unhex1(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unhex2(a, b byte) (byte, bool) {
	x, ok1 := unhex1(a)
	y, ok2 := unhex1(b)
	return x<<4 | y, ok1 && ok2
}
