package p9

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"unigo.dev/unigo/proto/p9"
)

// call sends a request of type typ with body and returns the reply's type
// and body.
func call(t *testing.T, s *Server, typ uint8, body ...[]byte) (uint8, []byte) {
	t.Helper()
	req := reply(typ, 1, cat(body...)) // a request is framed as a reply is
	r := s.Handle(req)
	if len(r) < 7 || int(binary.LittleEndian.Uint32(r)) != len(r) {
		t.Fatalf("a malformed reply %x", r)
	}
	return r[4], r[7:]
}

// errnoReply returns the errno of an Rlerror, or 0.
func errnoReply(typ uint8, body []byte) syscall.Errno {
	if typ != p9.Rlerror {
		return 0
	}
	return syscall.Errno(binary.LittleEndian.Uint32(body))
}

func walk(t *testing.T, s *Server, from, to uint32, names ...string) syscall.Errno {
	t.Helper()
	b := [][]byte{le32(from), le32(to), le16(uint16(len(names)))}
	for _, n := range names {
		b = append(b, str(n))
	}
	typ, body := call(t, s, p9.Twalk, b...)
	if e := errnoReply(typ, body); e != 0 {
		return e
	}
	if int(binary.LittleEndian.Uint16(body)) != len(names) {
		return syscall.ENOENT
	}
	return 0
}

func readAll(t *testing.T, s *Server, fid uint32) (string, syscall.Errno) {
	t.Helper()
	if typ, body := call(t, s, p9.Tlopen, le32(fid), le32(0)); errnoReply(typ, body) != 0 {
		return "", errnoReply(typ, body)
	}
	typ, body := call(t, s, p9.Tread, le32(fid), le64(0), le32(4096))
	if e := errnoReply(typ, body); e != 0 {
		return "", e
	}
	return string(body[4:]), 0
}

// TestServerStaysInside walks and opens with every escape a guest might
// try: "..", names with slashes, and symbolic links in the share that point
// out of it, absolute and relative; no host file outside is read.
func TestServerStaysInside(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("host secret"), 0o600)
	share := filepath.Join(outside, "share")
	os.Mkdir(share, 0o755)
	os.WriteFile(filepath.Join(share, "inside"), []byte("shared"), 0o644)
	os.Symlink(secret, filepath.Join(share, "abs"))
	os.Symlink("../secret", filepath.Join(share, "rel"))
	os.Symlink("..", filepath.Join(share, "up"))
	s, err := New(share, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if typ, body := call(t, s, p9.Tversion, le32(p9.Msize), str(p9.Version)); typ != p9.Tversion+1 {
		t.Fatalf("Tversion: %d %x", typ, body)
	}
	if typ, body := call(t, s, p9.Tattach, le32(1), le32(p9.NoFid), str("root"), str(""), le32(0)); typ != p9.Tattach+1 {
		t.Fatalf("Tattach: %d %x", typ, body)
	}
	// ".." from the root stays at the root.
	if e := walk(t, s, 1, 2, "..", "..", "inside"); e != 0 {
		t.Fatalf("walk ../../inside: %v", e)
	}
	if got, e := readAll(t, s, 2); e != 0 || got != "shared" {
		t.Fatalf("../../inside read %q, %v; want the share's file", got, e)
	}
	if e := walk(t, s, 1, 3, "..", "secret"); e != syscall.ENOENT {
		t.Errorf("walk ../secret: %v, want ENOENT", e)
	}
	if e := walk(t, s, 1, 3, "../secret"); e != syscall.EINVAL {
		t.Errorf("walk of a name with a slash: %v, want EINVAL", e)
	}
	for i, link := range []string{"abs", "rel"} {
		fid := uint32(10 + i)
		if e := walk(t, s, 1, fid, link); e != 0 {
			t.Fatalf("walk %s: %v", link, e)
		}
		if got, e := readAll(t, s, fid); e == 0 || got != "" {
			t.Errorf("open of link %s read %q (%v): it escaped", link, got, e)
		}
	}
	if e := walk(t, s, 1, 20, "up", "secret"); e == 0 {
		if got, e := readAll(t, s, 20); e == 0 {
			t.Errorf("up/secret read %q: it escaped", got)
		}
	}
	// A read-only share refuses changes.
	ro, _ := New(share, true)
	defer ro.Close()
	call(t, ro, p9.Tattach, le32(1), le32(p9.NoFid), str("root"), str(""), le32(0))
	if typ, body := call(t, ro, p9.Tmkdir, le32(1), str("d"), le32(0o755), le32(0)); errnoReply(typ, body) != syscall.EROFS {
		t.Errorf("mkdir on a read-only share: %v", errnoReply(typ, body))
	}
	if typ, body := call(t, ro, p9.Tlcreate, le32(1), str("f"), le32(1), le32(0o644), le32(0)); errnoReply(typ, body) != syscall.EROFS {
		t.Errorf("create on a read-only share: %v", errnoReply(typ, body))
	}
}

// TestServerFiles creates, writes, renames and removes through the server
// and looks at the host's files.
func TestServerFiles(t *testing.T) {
	share := t.TempDir()
	s, _ := New(share, false)
	defer s.Close()
	call(t, s, p9.Tattach, le32(1), le32(p9.NoFid), str("root"), str(""), le32(0))
	walk(t, s, 1, 2)
	if typ, body := call(t, s, p9.Tlcreate, le32(2), str("f"), le32(2), le32(0o640), le32(0)); typ != p9.Tlcreate+1 {
		t.Fatalf("Tlcreate: %v", errnoReply(typ, body))
	}
	if typ, body := call(t, s, p9.Twrite, le32(2), le64(0), le32(5), []byte("hello")); typ != p9.Twrite+1 || binary.LittleEndian.Uint32(body) != 5 {
		t.Fatalf("Twrite: %v", errnoReply(typ, body))
	}
	if b, err := os.ReadFile(filepath.Join(share, "f")); string(b) != "hello" {
		t.Fatalf("host sees %q, %v", b, err)
	}
	if st, _ := os.Stat(filepath.Join(share, "f")); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}
	walk(t, s, 1, 3, "f")
	if typ, body := call(t, s, p9.Trenameat, le32(1), str("f"), le32(1), str("g")); typ != p9.Trenameat+1 {
		t.Fatalf("Trenameat: %v", errnoReply(typ, body))
	}
	if got, e := readAll(t, s, 3); got != "hello" || e != 0 {
		t.Errorf("a fid after rename reads %q, %v", got, e)
	}
	if typ, body := call(t, s, p9.Tunlinkat, le32(1), str("g"), le32(0)); typ != p9.Tunlinkat+1 {
		t.Fatalf("Tunlinkat: %v", errnoReply(typ, body))
	}
	if _, err := os.Stat(filepath.Join(share, "g")); !os.IsNotExist(err) {
		t.Errorf("g still there: %v", err)
	}
	// Malformed messages get EINVAL, not a panic.
	for _, b := range [][]byte{{1, 2}, reply(p9.Twalk, 1, []byte{1}), reply(p9.Twrite, 1, cat(le32(2), le64(0), le32(1000)))} {
		r := s.Handle(b)
		if r[4] != p9.Rlerror {
			t.Errorf("malformed %x: reply type %d", b, r[4])
		}
	}
}

// FuzzHandle sends the server arbitrary messages after a session is set up:
// every reply is framed, and nothing outside the shared folder changes.
func FuzzHandle(f *testing.F) {
	f.Add(reply(p9.Twalk, 1, cat(le32(1), le32(2), le16(2), str(".."), str("x"))))
	f.Add(reply(p9.Tlcreate, 1, cat(le32(2), str("f"), le32(2), le32(0o644), le32(0))))
	f.Add(reply(p9.Twrite, 1, cat(le32(2), le64(1<<62), le32(3), []byte("abc"))))
	f.Add(reply(p9.Treaddir, 1, cat(le32(1), le64(0), le32(1<<30))))
	f.Add(reply(p9.Trenameat, 1, cat(le32(1), str("a"), le32(1), str("../b"))))
	f.Add(reply(p9.Tsymlink, 1, cat(le32(1), str("l"), str("/etc/passwd"), le32(0))))
	outside := f.TempDir()
	share := filepath.Join(outside, "share")
	os.Mkdir(share, 0o755)
	os.WriteFile(filepath.Join(share, "a"), []byte("a"), 0o644)
	f.Fuzz(func(t *testing.T, req []byte) {
		s, err := New(share, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		call(t, s, p9.Tattach, le32(1), le32(p9.NoFid), str("root"), str(""), le32(0))
		walk(t, s, 1, 2)
		for _, r := range [][]byte{req, reply(p9.Tlopen, 1, cat(le32(2), le32(2))), req} {
			out := s.Handle(r)
			if len(out) < 7 || int(binary.LittleEndian.Uint32(out)) != len(out) {
				t.Fatalf("reply %x to %x is not framed", out, r)
			}
		}
		ents, _ := os.ReadDir(outside)
		if len(ents) != 1 {
			t.Fatalf("the folder around the share changed: %v", ents)
		}
	})
}
