package p9

import "encoding/binary"

// msg reads a message's fields in order; reading past its end sets bad
// and yields zeros, so a short message is noticed once, after the fact.
type msg struct {
	b   []byte
	bad bool
}

func (m *msg) take(n int) []byte {
	if m.bad || n < 0 || len(m.b) < n {
		m.bad = true
		return make([]byte, max(n, 0))
	}
	b := m.b[:n]
	m.b = m.b[n:]
	return b
}

func (m *msg) u8() uint8   { return m.take(1)[0] }
func (m *msg) u16() uint16 { return binary.LittleEndian.Uint16(m.take(2)) }
func (m *msg) u32() uint32 { return binary.LittleEndian.Uint32(m.take(4)) }
func (m *msg) u64() uint64 { return binary.LittleEndian.Uint64(m.take(8)) }

func (m *msg) bytes(n int) []byte {
	if n > len(m.b) {
		m.bad = true
		return nil
	}
	return m.take(n)
}

func (m *msg) str() string { return string(m.bytes(int(m.u16()))) }

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func str(s string) []byte { return append(le16(uint16(len(s))), s...) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// reply frames a reply of type typ to tag.
func reply(typ uint8, tag uint16, body []byte) []byte {
	b := make([]byte, 7, 7+len(body))
	binary.LittleEndian.PutUint32(b, uint32(7+len(body)))
	b[4] = typ
	binary.LittleEndian.PutUint16(b[5:], tag)
	return append(b, body...)
}
