// Package p9 is the own monitor's 9P2000.L file server: it shares one host
// directory with the guest (unigo run -v HOSTDIR:GUESTDIR). The guest is
// hostile, so every path goes through an os.Root opened on the directory:
// whatever names the guest sends ("..", symbolic links that point out,
// absolute links), no host file outside the directory is reached (an escape
// is EXDEV, as openat2's RESOLVE_BENEATH answers). Messages are bounds
// checked; a malformed one is EINVAL (Rlerror), never a panic.
package p9

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"unigo.dev/unigo/proto/p9"
)

// Server serves one directory.
type Server struct {
	root     *os.Root
	readOnly bool

	mu   sync.Mutex
	fids map[uint32]*fid
}

type fid struct {
	path string   // relative to the root, cleaned; "." is the root
	file *os.File // once opened (Tlopen, Tlcreate)
	ents []dirent // a directory's entries, read at the first Treaddir
}

type dirent struct {
	qid  [p9.QidSz]byte
	typ  uint8
	name string
}

// New serves the directory dir, refusing changes if readOnly.
func New(dir string, readOnly bool) (*Server, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Server{root: r, readOnly: readOnly, fids: map[uint32]*fid{}}, nil
}

// Close closes the server's files.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fids {
		if f.file != nil {
			f.file.Close()
		}
	}
	s.fids = map[uint32]*fid{}
	return s.root.Close()
}

// Handle answers one request message with its reply.
func (s *Server) Handle(req []byte) []byte {
	m := &msg{b: req}
	size := m.u32()
	typ := m.u8()
	tag := m.u16()
	if m.bad || int(size) != len(req) {
		return reply(p9.Rlerror, tag, le32(uint32(syscall.EINVAL)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.do(typ, m)
	if err == nil && m.bad {
		err = syscall.EINVAL
	}
	if err != nil {
		return reply(p9.Rlerror, tag, le32(uint32(errnoOf(err))))
	}
	return reply(typ+1, tag, out)
}

// errnoOf turns a host error into the errno the guest sees.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	case strings.Contains(err.Error(), "escapes"):
		return syscall.EXDEV // os.Root: a path that leaves the directory
	}
	return syscall.EIO
}

func (s *Server) do(typ uint8, m *msg) ([]byte, error) {
	switch typ {
	case p9.Tversion:
		msize := m.u32()
		m.str()
		return cat(le32(min(msize, p9.Msize)), str(p9.Version)), nil
	case p9.Tattach:
		id := m.u32()
		if _, ok := s.fids[id]; ok {
			return nil, syscall.EBADF
		}
		st, err := s.root.Lstat(".")
		if err != nil {
			return nil, err
		}
		s.fids[id] = &fid{path: "."}
		q := qidOf(st)
		return q[:], nil
	case p9.Twalk:
		return s.walk(m)
	case p9.Tclunk:
		id := m.u32()
		f, err := s.fid(id)
		if err != nil {
			return nil, err
		}
		delete(s.fids, id)
		if f.file != nil {
			f.file.Close()
		}
		return nil, nil
	case p9.Tgetattr:
		f, err := s.fid(m.u32())
		if err != nil {
			return nil, err
		}
		st, err := s.root.Lstat(f.path)
		if err != nil {
			return nil, err
		}
		return getattr(st), nil
	case p9.Tlopen:
		return s.lopen(m)
	case p9.Tlcreate:
		return s.lcreate(m)
	case p9.Tread:
		return s.read(m)
	case p9.Twrite:
		return s.write(m)
	case p9.Treaddir:
		return s.readdir(m)
	case p9.Tfsync:
		f, err := s.fid(m.u32())
		if err != nil {
			return nil, err
		}
		if f.file == nil {
			return nil, syscall.EBADF
		}
		return nil, f.file.Sync()
	case p9.Treadlink:
		f, err := s.fid(m.u32())
		if err != nil {
			return nil, err
		}
		t, err := s.root.Readlink(f.path)
		if err != nil {
			return nil, err
		}
		return str(t), nil
	case p9.Tstatfs:
		if _, err := s.fid(m.u32()); err != nil {
			return nil, err
		}
		return s.statfs()
	}
	if s.readOnly {
		switch typ {
		case p9.Tmkdir, p9.Tunlinkat, p9.Trenameat, p9.Tsymlink, p9.Tlink, p9.Tsetattr:
			return nil, syscall.EROFS
		}
	}
	switch typ {
	case p9.Tmkdir:
		dir, name, err := s.child(m)
		mode := m.u32()
		m.u32() // gid
		if err != nil {
			return nil, err
		}
		p := path.Join(dir.path, name)
		if err := s.root.Mkdir(p, fs.FileMode(mode&0o777)); err != nil {
			return nil, err
		}
		return s.qid(p)
	case p9.Tunlinkat:
		dir, name, err := s.child(m)
		flags := m.u32()
		if err != nil {
			return nil, err
		}
		p := path.Join(dir.path, name)
		st, err := s.root.Lstat(p)
		switch {
		case err != nil:
			return nil, err
		case flags&0x200 != 0 && !st.IsDir(): // AT_REMOVEDIR
			return nil, syscall.ENOTDIR
		case flags&0x200 == 0 && st.IsDir():
			return nil, syscall.EISDIR
		}
		return nil, s.root.Remove(p)
	case p9.Trenameat:
		od, oname, err := s.child(m)
		if err != nil {
			return nil, err
		}
		nd, nname, err := s.child(m)
		if err != nil {
			return nil, err
		}
		from, to := path.Join(od.path, oname), path.Join(nd.path, nname)
		if err := s.renameat(od.path, oname, nd.path, nname); err != nil {
			return nil, err
		}
		for _, f := range s.fids { // fids below the old name follow it
			if f.path == from || strings.HasPrefix(f.path, from+"/") {
				f.path = to + f.path[len(from):]
			}
		}
		return nil, nil
	case p9.Tsymlink:
		dir, name, err := s.child(m)
		target := m.str()
		m.u32() // gid
		if err != nil {
			return nil, err
		}
		p := path.Join(dir.path, name)
		if err := s.root.Symlink(target, p); err != nil {
			return nil, err
		}
		return s.qid(p)
	case p9.Tlink:
		dir, err := s.fid(m.u32())
		if err != nil {
			return nil, err
		}
		f, err := s.fid(m.u32())
		if err != nil {
			return nil, err
		}
		name, err := checkName(m.str())
		if err != nil {
			return nil, err
		}
		return nil, s.root.Link(f.path, path.Join(dir.path, name))
	case p9.Tsetattr:
		return nil, s.setattr(m)
	}
	return nil, syscall.EOPNOTSUPP
}

func (s *Server) fid(id uint32) (*fid, error) {
	f, ok := s.fids[id]
	if !ok {
		return nil, syscall.EBADF
	}
	return f, nil
}

// child reads a directory fid and a name, as the *at requests give them.
func (s *Server) child(m *msg) (*fid, string, error) {
	dir, err := s.fid(m.u32())
	name := m.str()
	if err != nil {
		return nil, "", err
	}
	name, err = checkName(name)
	return dir, name, err
}

// checkName refuses what is not one file name.
func checkName(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", syscall.EINVAL
	}
	return name, nil
}

func (s *Server) qid(p string) ([]byte, error) {
	st, err := s.root.Lstat(p)
	if err != nil {
		return nil, err
	}
	q := qidOf(st)
	return q[:], nil
}

// walk answers Twalk: from fid, name by name; ".." stops at the root.
func (s *Server) walk(m *msg) ([]byte, error) {
	id := m.u32()
	f, err := s.fid(id)
	newid := m.u32()
	n := int(m.u16())
	if err != nil {
		return nil, err
	}
	if n > p9.MaxWalk {
		return nil, syscall.EINVAL
	}
	if _, ok := s.fids[newid]; ok && newid != id {
		return nil, syscall.EBADF // in use (intro(5))
	}
	p := f.path
	var qids []byte
	for i := 0; i < n; i++ {
		name := m.str()
		if m.bad {
			return nil, syscall.EINVAL
		}
		switch {
		case name == "..":
			p = path.Dir(p) // path.Dir(".") is ".": the root's parent is itself
		case name == "." || name == "":
		default:
			if _, err := checkName(name); err != nil {
				return nil, err
			}
			p = path.Join(p, name)
		}
		st, err := s.root.Lstat(p)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			break
		}
		q := qidOf(st)
		qids = append(qids, q[:]...)
	}
	if len(qids)/p9.QidSz == n {
		if newid == id {
			f.path = p
		} else {
			s.fids[newid] = &fid{path: p}
		}
	}
	return cat(le16(uint16(len(qids)/p9.QidSz)), qids), nil
}

// allowedOpen are the open(2) flags a guest may pass through.
const allowedOpen = syscall.O_ACCMODE | syscall.O_APPEND | syscall.O_TRUNC | syscall.O_DIRECTORY | syscall.O_NONBLOCK

func (s *Server) openFlags(flags uint32) (int, error) {
	fl := int(flags) & allowedOpen
	if s.readOnly && (fl&syscall.O_ACCMODE != syscall.O_RDONLY || fl&syscall.O_TRUNC != 0) {
		return 0, syscall.EROFS
	}
	return fl | syscall.O_NOFOLLOW | syscall.O_CLOEXEC, nil
}

func (s *Server) lopen(m *msg) ([]byte, error) {
	f, err := s.fid(m.u32())
	flags := m.u32()
	if err != nil {
		return nil, err
	}
	if f.file != nil {
		return nil, syscall.EBADF
	}
	fl, err := s.openFlags(flags)
	if err != nil {
		return nil, err
	}
	file, err := s.root.OpenFile(f.path, fl, 0)
	if err != nil {
		return nil, err
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	f.file = file
	q := qidOf(st)
	return cat(q[:], le32(0)), nil
}

func (s *Server) lcreate(m *msg) ([]byte, error) {
	dir, name, err := s.child(m)
	flags, mode := m.u32(), m.u32()
	m.u32() // gid
	if err != nil {
		return nil, err
	}
	if s.readOnly {
		return nil, syscall.EROFS
	}
	if dir.file != nil {
		return nil, syscall.EBADF
	}
	fl, err := s.openFlags(flags)
	if err != nil {
		return nil, err
	}
	p := path.Join(dir.path, name)
	file, err := s.root.OpenFile(p, fl|syscall.O_CREAT|syscall.O_EXCL, fs.FileMode(mode&0o777))
	if err != nil {
		return nil, err
	}
	if mode&0o7000 != 0 { // os.Root takes only the permission bits
		file.Chmod(fs.FileMode(mode&0o777) | modeBits(mode))
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	dir.path, dir.file = p, file // the fid is now the new file (diod's protocol.md)
	q := qidOf(st)
	return cat(q[:], le32(0)), nil
}

func modeBits(mode uint32) fs.FileMode {
	var m fs.FileMode
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func (s *Server) read(m *msg) ([]byte, error) {
	f, err := s.fid(m.u32())
	off, n := m.u64(), m.u32()
	if err != nil {
		return nil, err
	}
	if f.file == nil {
		return nil, syscall.EBADF
	}
	n = min(n, p9.Msize-p9.HeaderSz-4)
	buf := make([]byte, 4+n)
	k, err := syscall.Pread(int(f.file.Fd()), buf[4:], int64(off))
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(buf, uint32(k))
	return buf[:4+k], nil
}

func (s *Server) write(m *msg) ([]byte, error) {
	f, err := s.fid(m.u32())
	off, n := m.u64(), m.u32()
	data := m.bytes(int(n))
	if err != nil {
		return nil, err
	}
	if m.bad {
		return nil, syscall.EINVAL
	}
	if f.file == nil {
		return nil, syscall.EBADF
	}
	// pwrite(2) appends on a file opened with O_APPEND, as the guest's
	// write(2) then must.
	k, err := syscall.Pwrite(int(f.file.Fd()), data, int64(off))
	if err != nil {
		return nil, err
	}
	return le32(uint32(k)), nil
}

// readdir answers Treaddir: the entries, sorted by name, read at offset 0;
// an entry's offset is its index+1.
func (s *Server) readdir(m *msg) ([]byte, error) {
	f, err := s.fid(m.u32())
	off, count := m.u64(), m.u32()
	if err != nil {
		return nil, err
	}
	if f.file == nil {
		return nil, syscall.EBADF
	}
	if off == 0 || f.ents == nil {
		f.file.Seek(0, 0)
		names, err := f.file.Readdirnames(-1)
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		f.ents = f.ents[:0]
		for _, name := range append([]string{".", ".."}, names...) {
			p := path.Join(f.path, name)
			if name == ".." {
				p = path.Dir(f.path)
			}
			st, err := s.root.Lstat(p)
			if err != nil {
				continue // gone meanwhile
			}
			f.ents = append(f.ents, dirent{qid: qidOf(st), typ: dtype(st.Mode()), name: name})
		}
	}
	count = min(count, p9.Msize-p9.HeaderSz-4)
	var data []byte
	for i := off; i < uint64(len(f.ents)); i++ {
		e := f.ents[i]
		rec := cat(e.qid[:], le64(i+1), []byte{e.typ}, str(e.name))
		if len(data)+len(rec) > int(count) {
			break
		}
		data = append(data, rec...)
	}
	return cat(le32(uint32(len(data))), data), nil
}

func dtype(m fs.FileMode) uint8 {
	switch {
	case m.IsDir():
		return 4
	case m&fs.ModeSymlink != 0:
		return 10
	case m.IsRegular():
		return 8
	}
	return 0
}

func (s *Server) setattr(m *msg) error {
	f, err := s.fid(m.u32())
	valid, mode, uid, gid := m.u32(), m.u32(), m.u32(), m.u32()
	size := m.u64()
	asec, ansec, msec, mnsec := m.u64(), m.u64(), m.u64(), m.u64()
	if err != nil {
		return err
	}
	if m.bad {
		return syscall.EINVAL
	}
	if valid&p9.SetattrMode != 0 {
		if err := s.root.Chmod(f.path, fs.FileMode(mode&0o777)|modeBits(mode)); err != nil {
			return err
		}
	}
	if valid&(p9.SetattrUID|p9.SetattrGID) != 0 {
		u, g := -1, -1
		if valid&p9.SetattrUID != 0 {
			u = int(uid)
		}
		if valid&p9.SetattrGID != 0 {
			g = int(gid)
		}
		if err := s.root.Lchown(f.path, u, g); err != nil {
			return err
		}
	}
	if valid&p9.SetattrSize != 0 {
		file, err := s.root.OpenFile(f.path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		err = file.Truncate(int64(size))
		file.Close()
		if err != nil {
			return err
		}
	}
	if valid&(p9.SetattrAtime|p9.SetattrMtime) != 0 {
		st, err := s.root.Lstat(f.path)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		at := time.Unix(sys.Atim.Sec, sys.Atim.Nsec)
		mt := st.ModTime()
		now := time.Now()
		if valid&p9.SetattrAtime != 0 {
			at = now
			if valid&p9.SetattrAtimeSet != 0 {
				at = time.Unix(int64(asec), int64(ansec))
			}
		}
		if valid&p9.SetattrMtime != 0 {
			mt = now
			if valid&p9.SetattrMtimeSet != 0 {
				mt = time.Unix(int64(msec), int64(mnsec))
			}
		}
		if err := s.root.Chtimes(f.path, at, mt); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) statfs() ([]byte, error) {
	d, err := s.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(d.Fd()), &st); err != nil {
		return nil, err
	}
	return cat(le32(uint32(st.Type)), le32(uint32(st.Bsize)), le64(st.Blocks), le64(st.Bfree), le64(st.Bavail),
		le64(st.Files), le64(st.Ffree), le64(uint64(uint32(st.Fsid.X__val[0]))|uint64(uint32(st.Fsid.X__val[1]))<<32), le32(uint32(st.Namelen))), nil
}

// qidOf makes a file's qid: its type, and its inode as the path.
func qidOf(st fs.FileInfo) [p9.QidSz]byte {
	var q [p9.QidSz]byte
	switch {
	case st.IsDir():
		q[0] = p9.QtDir
	case st.Mode()&fs.ModeSymlink != 0:
		q[0] = p9.QtSymlink
	}
	sys := st.Sys().(*syscall.Stat_t)
	binary.LittleEndian.PutUint32(q[1:], uint32(sys.Mtim.Nsec)^uint32(sys.Mtim.Sec))
	binary.LittleEndian.PutUint64(q[5:], sys.Ino)
	return q
}

// getattr is Rgetattr's body for st.
func getattr(st fs.FileInfo) []byte {
	sys := st.Sys().(*syscall.Stat_t)
	q := qidOf(st)
	return cat(le64(p9.GetattrBasic), q[:], le32(sys.Mode), le32(sys.Uid), le32(sys.Gid), le64(sys.Nlink),
		le64(sys.Rdev), le64(uint64(sys.Size)), le64(uint64(sys.Blksize)), le64(uint64(sys.Blocks)),
		le64(uint64(sys.Atim.Sec)), le64(uint64(sys.Atim.Nsec)), le64(uint64(sys.Mtim.Sec)), le64(uint64(sys.Mtim.Nsec)),
		le64(uint64(sys.Ctim.Sec)), le64(uint64(sys.Ctim.Nsec)), le64(0), le64(0), le64(0), le64(0))
}

// renameat renames name in directory dir to nname in ndir with
// renameat(2) on the directories, opened through the root: rename(2)'s own
// answers (EISDIR, ENOTEMPTY, replacing an empty directory), which
// os.Root.Rename, following os.Rename, would not give. The names are single
// components, so neither leaves its directory.
func (s *Server) renameat(dir, name, ndir, nname string) error {
	d, err := s.root.OpenFile(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	nd, err := s.root.OpenFile(ndir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer nd.Close()
	return syscall.Renameat(int(d.Fd()), name, int(nd.Fd()), nname)
}
