// Package dhcp encodes and decodes DHCPv4 messages (RFC 2131, options from
// RFC 2132) and the Ethernet, IPv4 and UDP headers around them, so that a
// client can speak before it has an address and a server can answer one.
// Both sides of Unigo use it: the guest's DHCP client (guest/netstack) and
// the own monitor's user-mode network (vmm/usernet). It imports only the
// standard library; Parse and ParseFrame take hostile input.
package dhcp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// UDP ports (RFC 2131 §4.1).
const (
	ServerPort = 67
	ClientPort = 68
)

// Message types: option 53's values (RFC 2132 §9.6).
const (
	Discover = 1
	Offer    = 2
	Request  = 3
	Decline  = 4
	Ack      = 5
	Nak      = 6
	Release  = 7
)

// Options (RFC 2132).
const (
	optPad         = 0
	optSubnetMask  = 1
	optRouter      = 3
	optDNS         = 6
	optMTU         = 26
	optRequestedIP = 50
	optLeaseTime   = 51
	optMessageType = 53
	optServerID    = 54
	optParamList   = 55
	optEnd         = 255
)

// BroadcastFlag asks the server to broadcast its reply (RFC 2131 §4.1): the
// client cannot take unicast before it has its address.
const BroadcastFlag = 0x8000

const (
	fixedLen    = 236 // op through file (RFC 2131 §2, figure 1)
	minLen      = 300 // BOOTP's message size, which some servers still expect
	bootRequest = 1
	bootReply   = 2
)

var magic = [4]byte{99, 130, 83, 99} // RFC 2131 §3

// Message is a DHCP message with the options Unigo uses. Addresses are
// IPv4; an invalid netip.Addr is 0.0.0.0 on the wire, or an absent option.
type Message struct {
	Reply  bool // BOOTREPLY (server to client), else BOOTREQUEST
	XID    uint32
	Flags  uint16
	CIAddr netip.Addr // the client's address, when it has one
	YIAddr netip.Addr // "your" address: what the server gives
	SIAddr netip.Addr
	CHAddr [6]byte // the client's Ethernet address

	Type        byte       // option 53
	ServerID    netip.Addr // option 54
	RequestedIP netip.Addr // option 50
	PrefixLen   int        // option 1, as a prefix length; 0 when absent
	Router      netip.Addr // option 3: the first router
	DNS         []netip.Addr
	Lease       time.Duration // option 51; 0 when absent, MaxInt64 for "infinite"
	MTU         int           // option 26; 0 when absent
}

// Infinite is the lease time 0xffffffff (RFC 2131 §3.3).
const Infinite = time.Duration(1<<63 - 1)

// Marshal encodes m.
func (m *Message) Marshal() []byte {
	b := make([]byte, fixedLen, minLen)
	b[0] = bootRequest
	if m.Reply {
		b[0] = bootReply
	}
	b[1], b[2] = 1, 6 // Ethernet, 6-byte addresses
	binary.BigEndian.PutUint32(b[4:], m.XID)
	binary.BigEndian.PutUint16(b[10:], m.Flags)
	put4(b[12:], m.CIAddr)
	put4(b[16:], m.YIAddr)
	put4(b[20:], m.SIAddr)
	copy(b[28:], m.CHAddr[:])
	b = append(b, magic[:]...)
	b = append(b, optMessageType, 1, m.Type)
	addr := func(code byte, a netip.Addr) {
		if a.Is4() {
			v := a.As4()
			b = append(b, code, 4, v[0], v[1], v[2], v[3])
		}
	}
	addr(optServerID, m.ServerID)
	addr(optRequestedIP, m.RequestedIP)
	if m.PrefixLen > 0 && m.PrefixLen <= 32 {
		mask := ^uint32(0) << (32 - m.PrefixLen)
		b = append(b, optSubnetMask, 4, byte(mask>>24), byte(mask>>16), byte(mask>>8), byte(mask))
	}
	addr(optRouter, m.Router)
	if n := min(len(m.DNS), 63); n > 0 {
		b = append(b, optDNS, byte(4*n))
		for _, a := range m.DNS[:n] {
			v := a.As4()
			b = append(b, v[:]...)
		}
	}
	if m.Lease > 0 {
		s := uint32(0xffffffff)
		if m.Lease != Infinite {
			s = uint32(min(m.Lease/time.Second, 0xfffffffe))
		}
		b = append(b, optLeaseTime, 4, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
	}
	if m.MTU > 0 {
		b = append(b, optMTU, 2, byte(m.MTU>>8), byte(m.MTU))
	}
	if !m.Reply {
		b = append(b, optParamList, 4, optSubnetMask, optRouter, optDNS, optMTU)
	}
	b = append(b, optEnd)
	for len(b) < minLen {
		b = append(b, optPad)
	}
	return b
}

// ErrNotDHCP is Parse's error for bytes that are no DHCP message.
var ErrNotDHCP = errors.New("dhcp: not a DHCP message")

// Parse decodes a DHCP message. Options it does not use are skipped; a
// malformed option list ends it, as far as it was read.
func Parse(b []byte) (*Message, error) {
	if len(b) < fixedLen+len(magic) || b[1] != 1 || b[2] != 6 || [4]byte(b[fixedLen:]) != magic {
		return nil, ErrNotDHCP
	}
	if b[0] != bootRequest && b[0] != bootReply {
		return nil, ErrNotDHCP
	}
	m := &Message{
		Reply:  b[0] == bootReply,
		XID:    binary.BigEndian.Uint32(b[4:]),
		Flags:  binary.BigEndian.Uint16(b[10:]),
		CIAddr: get4(b[12:]),
		YIAddr: get4(b[16:]),
		SIAddr: get4(b[20:]),
		CHAddr: [6]byte(b[28:34]),
	}
	opts := b[fixedLen+len(magic):]
	for len(opts) > 0 {
		code := opts[0]
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if code == optEnd || len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			break
		}
		v := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(v):]
		switch {
		case code == optMessageType && len(v) == 1:
			m.Type = v[0]
		case code == optServerID && len(v) == 4:
			m.ServerID = get4(v)
		case code == optRequestedIP && len(v) == 4:
			m.RequestedIP = get4(v)
		case code == optSubnetMask && len(v) == 4:
			mask := binary.BigEndian.Uint32(v)
			n := 0
			for ; n < 32 && mask&(1<<(31-n)) != 0; n++ {
			}
			if mask<<n == 0 { // contiguous; else ignore it
				m.PrefixLen = n
			}
		case code == optRouter && len(v) >= 4:
			m.Router = get4(v)
		case code == optDNS && len(v) >= 4:
			for ; len(v) >= 4; v = v[4:] {
				m.DNS = append(m.DNS, get4(v))
			}
		case code == optLeaseTime && len(v) == 4:
			if s := binary.BigEndian.Uint32(v); s == 0xffffffff {
				m.Lease = Infinite
			} else {
				m.Lease = time.Duration(s) * time.Second
			}
		case code == optMTU && len(v) == 2:
			m.MTU = int(binary.BigEndian.Uint16(v))
		}
	}
	if m.Type == 0 {
		return nil, ErrNotDHCP // BOOTP without DHCP
	}
	return m, nil
}

func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	}
}

func get4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }
