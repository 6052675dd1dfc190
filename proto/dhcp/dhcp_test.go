package dhcp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []*Message{
		{XID: 0x01020304, Flags: BroadcastFlag, CHAddr: [6]byte{0x52, 0x54, 0, 1, 2, 3}, Type: Discover},
		{XID: 7, CHAddr: [6]byte{1, 2, 3, 4, 5, 6}, Type: Request,
			RequestedIP: netip.MustParseAddr("10.0.2.15"), ServerID: netip.MustParseAddr("10.0.2.2")},
		{Reply: true, XID: 7, Type: Ack, YIAddr: netip.MustParseAddr("10.0.2.15"),
			SIAddr: netip.MustParseAddr("10.0.2.2"), ServerID: netip.MustParseAddr("10.0.2.2"), PrefixLen: 24,
			Router: netip.MustParseAddr("10.0.2.2"), DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3"), netip.MustParseAddr("1.1.1.1")},
			Lease: 24 * time.Hour, MTU: 1500},
		{Reply: true, Type: Offer, Lease: Infinite, PrefixLen: 32},
	} {
		b := m.Marshal()
		if len(b) < minLen {
			t.Errorf("%d bytes, want at least %d (BOOTP's minimum)", len(b), minLen)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v", m, err)
		}
		// Zero addresses come back as 0.0.0.0.
		for _, a := range []*netip.Addr{&m.CIAddr, &m.YIAddr, &m.SIAddr} {
			if !a.IsValid() {
				*a = netip.IPv4Unspecified()
			}
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := (&Message{Type: Discover}).Marshal()
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        good[:fixedLen],
		"no cookie":    append(append([]byte{}, good[:fixedLen]...), 1, 2, 3, 4, optEnd),
		"bootp only":   append(append([]byte{}, good[:fixedLen+4]...), optEnd),
		"bad op":       append([]byte{9}, good[1:]...),
		"bad hardware": append([]byte{1, 6}, good[2:]...),
	} {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// An option running past the end stops the list without a panic.
	cut := append(append([]byte{}, good[:fixedLen+4]...), optMessageType, 1, Offer, optDNS, 200, 1, 2)
	if m, err := Parse(cut); err != nil || m.Type != Offer || m.DNS != nil {
		t.Errorf("truncated option: %+v, %v", m, err)
	}
}

func TestFrame(t *testing.T) {
	src := netip.MustParseAddrPort("0.0.0.0:68")
	dst := netip.MustParseAddrPort("255.255.255.255:67")
	mac := [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	payload := (&Message{Type: Discover, CHAddr: mac}).Marshal()
	f := Frame(mac, Broadcast, src, dst, payload)

	// gVisor's header package checks what Frame built.
	eth := header.Ethernet(f)
	if eth.Type() != header.IPv4ProtocolNumber || eth.DestinationAddress() != tcpip.LinkAddress(Broadcast[:]) {
		t.Fatalf("ethernet header: type %#x, destination %v", eth.Type(), eth.DestinationAddress())
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
		t.Fatalf("IPv4 header not valid: %x", []byte(ip[:20]))
	}
	udp := header.UDP(ip.Payload())
	if !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
		t.Fatalf("UDP checksum %#x not valid", udp.Checksum())
	}
	gotMAC, gotSrc, gotDst, gotPayload, ok := ParseFrame(f)
	if !ok || gotMAC != mac || gotSrc != src || gotDst != dst || string(gotPayload) != string(payload) {
		t.Fatalf("ParseFrame: ok %v, %x %v → %v, %d bytes", ok, gotMAC, gotSrc, gotDst, len(gotPayload))
	}
	if _, _, _, _, ok := ParseFrame(f[:40]); ok {
		t.Error("ParseFrame took a cut frame")
	}
}

func FuzzParse(f *testing.F) {
	f.Add((&Message{Type: Discover}).Marshal())
	f.Add((&Message{Reply: true, Type: Ack, PrefixLen: 24, DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}}).Marshal())
	f.Add(Frame([6]byte{}, Broadcast, netip.MustParseAddrPort("0.0.0.0:68"), netip.MustParseAddrPort("255.255.255.255:67"), []byte{1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
		if _, _, _, p, ok := ParseFrame(b); ok {
			Parse(p)
		}
	})
}
