package gdb

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestFraming checks the packet layer over a real connection pair: a bad
// checksum is refused with '-' and not delivered, a good one acknowledged,
// the interrupt byte reported, and replies escaped.
func TestFraming(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	interrupted := make(chan bool, 1)
	k := newConn(a, func() { interrupted <- true })
	r := bufio.NewReader(b)
	go b.Write([]byte("$g#00$g#67\x03"))
	if ack, _ := r.ReadByte(); ack != '-' {
		t.Fatalf("bad checksum answered %q", ack)
	}
	if ack, _ := r.ReadByte(); ack != '+' {
		t.Fatalf("good packet answered %q", ack)
	}
	if p, err := k.next(); p != "g" || err != nil {
		t.Fatalf("packet %q, %v", p, err)
	}
	select {
	case <-interrupted:
	case <-time.After(5 * time.Second):
		t.Fatal("the interrupt byte was not reported")
	}
	go k.send("a#b$c}d*")
	want := "$a}\x03b}\x04c}]d}\x0a#"
	got := make([]byte, len(want)+2)
	if _, err := r.Read(got[:1]); err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(got); {
		m, err := r.Read(got[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += m
	}
	if string(got[:len(want)]) != want {
		t.Fatalf("sent %q, want %q and a checksum", got, want)
	}
	var sum byte
	for _, c := range []byte(want[1 : len(want)-1]) {
		sum += c
	}
	if cs, ok := unhex2(got[len(want)], got[len(want)+1]); !ok || cs != sum {
		t.Fatalf("checksum %q, want %02x", got[len(want):], sum)
	}
}
