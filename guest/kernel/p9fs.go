//go:build !unigo_nodrivers

package kernel

import (
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
	"unigo.dev/unigo/proto/p9"
)

// Host folder shares (unigo run -v) as a file system of the VFS. A node
// is a fid the kernel walked to, kept in a table: looked up by name through
// the server (Twalk) and found again by its qid, so that a file has one
// node however it was reached. The host may change the folder at any time,
// so nothing but a node's file type is cached: stat asks (Tgetattr) each
// time. An open file description has its own fid, opened with its flags
// (Tlopen). When the table is full a node nothing holds is let go.

// Shares named on the command line (abi.MountWord), until p9Mount.
var shareWords [abi.MaxShares]struct {
	tag, name  [32]byte
	tlen, nlen uintptr
	ro         bool
}

// mountWord records a "mount=TAG:/NAME[:ro]" word in [p, end).
//
//go:nosplit
func mountWord(p, end uintptr) {
	const pre = abi.MountWordPrefix
	if end-p <= uintptr(len(pre)) || !memeq(p, uintptr(unsafe.Pointer(unsafe.StringData(pre))), uintptr(len(pre))) {
		return
	}
	p += uintptr(len(pre))
	k := -1
	for i := range shareWords {
		if shareWords[i].tlen == 0 {
			k = i
			break
		}
	}
	if k < 0 {
		return
	}
	w := &shareWords[k]
	q := p
	for q < end && load8(q) != ':' {
		q++
	}
	if q-p == 0 || q-p > uintptr(len(w.tag)) || q+2 >= end || load8(q+1) != '/' {
		return
	}
	tag := q - p
	memmove(uintptr(unsafe.Pointer(&w.tag[0])), p, tag)
	p = q + 2
	for q = p; q < end && load8(q) != ':'; q++ {
	}
	if q-p == 0 || q-p > uintptr(len(w.name)) {
		return
	}
	memmove(uintptr(unsafe.Pointer(&w.name[0])), p, q-p)
	w.nlen = q - p
	w.ro = end-q == 3 && load8(q+1) == 'r' && load8(q+2) == 'o'
	w.tlen = tag
}

// p9Mount finds each share's device, starts its session and mounts it
// (Tattach); a share that cannot be had is reported and left out.
//
//go:nosplit
func p9Mount() {
	for k := range shareWords {
		w := &shareWords[k]
		if w.tlen == 0 || volDiskOf(k) >= 0 {
			continue // none, or a block volume's (volMountAll)
		}
		ok := false
		q := &p9devs[uint(k)%abi.MaxShares].q
		tag := uintptr(unsafe.Pointer(&w.tag[0]))
		for i := 0; i < nMMIO+nPCI && !ok; i++ {
			if i < nMMIO {
				d := &mmioDevs[i]
				ok = d.deviceID == p9.DeviceID && d.version == 2 && vqOpenMMIO(q, uintptr(d.base), p9.FeatMountTag) && p9tagIs(q, tag, w.tlen)
			} else {
				d := &pciDevs[uint(i-nMMIO)%maxPCIDevs]
				ok = d.virtioType() == p9.DeviceID && vqOpenPCI(q, d, p9.FeatMountTag) && p9tagIs(q, tag, w.tlen)
			}
			if !ok && q.ring != 0 {
				q.setStatus(0) // another share's: reset it again
			}
			ok = ok && p9Open(k) && p9Attach(k)
		}
		if !ok {
			warn("unigo: a host folder share (-v) has no working 9P device: it is not mounted\n")
			continue
		}
		m := &mounts[1+k]
		m.used, m.ro, m.nlen, m.root = true, w.ro, w.nlen, p9vn(uint32(k))
		m.name = w.name
	}
}

// p9Attach opens share k's root as node k.
//
//go:nosplit
func p9Attach(k int) bool {
	for ktabLen(ktabP9nodes) < abi.MaxShares { // the shares' roots come first
		if ktabGrow(ktabP9nodes, unsafe.Sizeof(p9node{}), maxP9Nodes) < 0 {
			return false
		}
	}
	fid := p9fid()
	p9begin(p9.Tattach)
	p9put32(fid)
	p9put32(p9.NoFid)
	p9putStr(uintptr(unsafe.Pointer(unsafe.StringData("root"))), 4)
	p9putStr(0, 0)
	p9put32(0)
	if p9rpc(k) != 0 {
		return false
	}
	qt, qp := p9getQid()
	p9init(k, k, qt, qp, fid)
	return qt&p9.QtDir != 0
}

// p9init makes node i share k's file of qid (qt, qp) at fid, its own
// parent until p9setParent. (Field by field: a composite literal of the
// node would be built on the stack, which trap context keeps small.)
//
//go:nosplit
func p9init(i, k int, qt uint8, qp uint64, fid uint32) {
	n := &p9nodes[uint(i)%maxP9Nodes]
	*n = p9node{}
	n.used, n.share, n.mode, n.fid, n.parent, n.qpath = true, uint8(k), p9modeOf(qt), fid, uint32(i), qp
}

// p9held reports whether node i must stay: open, a parent, a root, the
// working directory or part of a resolution under way.
//
//go:nosplit
func p9held(i int) bool {
	n := &p9nodes[uint(i)%maxP9Nodes]
	v := p9vn(uint32(i))
	return i < abi.MaxShares || n.opens > 0 || n.kids > 0 || v == cwdVn ||
		v == walks[0].v || v == walks[0].dir || v == walks[1].v || v == walks[1].dir
}

// p9free lets go of node i: its fid and its place.
//
//go:nosplit
func p9free(i int) {
	n := &p9nodes[uint(i)%maxP9Nodes]
	p9clunk(int(n.share), n.fid)
	if n.parent != uint32(i) {
		p9nodeOf(n.parent).kids--
	}
	n.used, n.gone, n.fid = false, false, 0
}

// p9alloc returns a free node, letting go of one nothing holds if the
// table is full; -1 if every node is held.
//
//go:nosplit
func p9alloc() int {
	for i := abi.MaxShares; i < ktabLen(ktabP9nodes); i++ {
		if !p9nodes[i].used {
			return i
		}
	}
	if i := ktabGrow(ktabP9nodes, unsafe.Sizeof(p9node{}), maxP9Nodes); i >= 0 {
		return i
	}
	for i := abi.MaxShares; i < maxP9Nodes; i++ {
		if !p9held(i) {
			p9free(i)
			return i
		}
	}
	return -1
}

// p9setParent makes dir node i's parent and name.
//
//go:nosplit
func p9setParent(i, dir uint32, name, n uintptr) {
	nd := p9nodeOf(i)
	if nd.parent != i {
		p9nodeOf(nd.parent).kids--
	}
	nd.parent = dir
	p9nodeOf(dir).kids++
	nd.nlen = p9NameMax + 1
	if n <= p9NameMax {
		nd.nlen = uint8(n)
		memmove(uintptr(unsafe.Pointer(&nd.name[0])), name, n)
	}
}

// p9Child returns the node named by the n bytes at name in directory dir.
//
//go:nosplit
func p9Child(dir uint32, name, n uintptr) (uint32, linux.Errno) {
	d := p9nodeOf(dir)
	k := int(d.share)
	fid := p9fid()
	if fid == 0 {
		return 0, linux.ENFILE
	}
	p9begin(p9.Twalk)
	p9put32(d.fid)
	p9put32(fid)
	p9put16(1)
	p9putStr(name, n)
	e := p9rpc(k)
	if e == 0 && p9get16() != 1 {
		e = linux.ENOENT
	}
	if e != 0 {
		p9fidUsed[(fid-1)%maxP9Fids] = false // a failed walk makes no fid
		return 0, e
	}
	qt, qp := p9getQid()
	for i := range p9nodes {
		if i == ktabLen(ktabP9nodes) {
			break // the used prefix (ktab.go)
		}
		nd := &p9nodes[i]
		if nd.used && !nd.gone && int(nd.share) == k && nd.qpath == qp && i >= abi.MaxShares {
			p9clunk(k, fid)
			p9setParent(uint32(i), dir, name, n)
			return uint32(i), 0
		}
	}
	i := p9alloc()
	if i < 0 {
		p9clunk(k, fid)
		return 0, linux.ENFILE
	}
	p9init(i, k, qt, qp, fid)
	p9setParent(uint32(i), dir, name, n)
	return uint32(i), 0
}

// p9Getattr describes node i in statBuf.
//
//go:nosplit
func p9Getattr(i uint32) linux.Errno {
	n := p9nodeOf(i)
	p9begin(p9.Tgetattr)
	p9put32(n.fid)
	p9put64(p9.GetattrBasic)
	if e := p9rpc(int(n.share)); e != 0 {
		return e
	}
	p9get64() // valid
	_, qp := p9getQid()
	st := &statBuf
	*st = linux.Stat{Dev: devP9 + uint64(n.share), Ino: qp}
	st.Mode, st.UID, st.GID = p9get32(), p9get32(), p9get32()
	st.Nlink, st.Rdev = p9get64(), p9get64()
	st.Size, st.Blksize, st.Blocks = int64(p9get64()), int64(p9get64()), int64(p9get64())
	for _, t := range [3]*linux.Timespec{&st.Atime, &st.Mtime, &st.Ctime} {
		t.Sec, t.Nsec = int64(p9get64()), int64(p9get64())
	}
	if p9bad {
		return linux.EIO
	}
	n.mode = st.Mode & linux.S_IFMT // the host may have replaced the file
	return 0
}

// p9Size returns node i's size, 0 if it cannot be had.
//
//go:nosplit
func p9Size(i uint32) uint64 {
	if p9Getattr(i) != 0 {
		return 0
	}
	return uint64(statBuf.Size)
}

// p9clone returns a new fid for node i's file (a Twalk of no names).
//
//go:nosplit
func p9clone(i uint32) (uint32, linux.Errno) {
	n := p9nodeOf(i)
	fid := p9fid()
	if fid == 0 {
		return 0, linux.ENFILE
	}
	p9begin(p9.Twalk)
	p9put32(n.fid)
	p9put32(fid)
	p9put16(0)
	if e := p9rpc(int(n.share)); e != 0 {
		p9fidUsed[(fid-1)%maxP9Fids] = false // a failed walk makes no fid
		return 0, e
	}
	return fid, 0
}

// p9OpenFid opens a new fid for node i with open(2)'s flags.
//
//go:nosplit
func p9OpenFid(i uint32, flags uintptr) (uint32, linux.Errno) {
	k := int(p9nodeOf(i).share)
	fid, e := p9clone(i)
	if e != 0 {
		return 0, e
	}
	p9begin(p9.Tlopen)
	p9put32(fid)
	p9put32(uint32(flags & (linux.O_ACCMODE | linux.O_TRUNC | linux.O_APPEND | linux.O_DIRECTORY)))
	if e := p9rpc(k); e != 0 {
		p9clunk(k, fid)
		return 0, e
	}
	return fid, 0
}

// p9Read reads up to n bytes of the share's file open as fl at off into
// the checked address buf.
//
//go:nosplit
func p9Read(fl *file, buf, n uintptr, off uint64) uintptr {
	k, fid := int(p9nodeOf(fl.vn.ino()).share), fl.p9fid
	done := uintptr(0)
	for done < n {
		chunk := min(n-done, uintptr(p9devs[uint(k)%abi.MaxShares].msize)-p9.HeaderSz-4-pageSize)
		p9begin(p9.Tread)
		p9put32(fid)
		p9put64(off + uint64(done))
		p9put32(uint32(chunk))
		if e := p9rpc(k); e != 0 {
			if done > 0 {
				return done
			}
			return errno(e)
		}
		got := uintptr(p9get32())
		if got > chunk || p9r+got > p9rEnd {
			return errno(linux.EIO)
		}
		memmove(buf+done, p9r, got)
		done += got
		if got < chunk {
			break
		}
	}
	return done
}

// p9Write writes n bytes from buf to the share's file open as fl at off.
//
//go:nosplit
func p9Write(fl *file, buf, n uintptr, off uint64) uintptr {
	k, fid := int(p9nodeOf(fl.vn.ino()).share), fl.p9fid
	done := uintptr(0)
	for done < n || n == 0 {
		chunk := min(n-done, uintptr(p9devs[uint(k)%abi.MaxShares].msize)-p9.HeaderSz-16-pageSize)
		p9begin(p9.Twrite)
		p9put32(fid)
		p9put64(off + uint64(done))
		p9put32(uint32(chunk))
		memmove(p9w, buf+done, chunk)
		p9w += chunk
		if e := p9rpc(k); e != 0 {
			if done > 0 {
				return done
			}
			return errno(e)
		}
		w := uintptr(p9get32())
		if w > chunk {
			return errno(linux.EIO)
		}
		done += w
		if w < chunk || n == 0 {
			break
		}
	}
	if fmapCopies != 0 {
		fmapUpdate(fl.vn, off, buf, done)
	}
	return done
}

// p9Getdents writes the entries of the directory open as fl (fid p9fid)
// from its position on (a Treaddir offset).
//
//go:nosplit
func p9Getdents(fl *file, buf, n uintptr) uintptr {
	k := int(p9nodeOf(fl.vn.ino()).share)
	p9begin(p9.Treaddir)
	p9put32(fl.p9fid)
	p9put64(fl.count)
	p9put32(uint32(min(n, uintptr(p9devs[uint(k)%abi.MaxShares].msize)-p9.HeaderSz-4)))
	if e := p9rpc(k); e != 0 {
		return errno(e)
	}
	count := uintptr(p9get32())
	end := p9r + count // (not one expression: Go leaves the read of p9r and the call unordered)
	if end > p9rEnd {
		return errno(linux.EIO)
	}
	done := uintptr(0)
	for p9r < end {
		_, qp := p9getQid()
		next := p9get64()
		typ := p9get8()
		nlen := uintptr(p9get16())
		if p9bad || p9r+nlen > end {
			return errno(linux.EIO)
		}
		w, ok := putDirent(buf+done, n-done, qp, next, typ, p9r, nlen)
		if !ok {
			break
		}
		p9r += nlen
		done += w
		fl.count = next
	}
	if done == 0 && p9r < end {
		return errno(linux.EINVAL) // the buffer holds not even one
	}
	return done
}

// p9Readlink copies node i's link target, at most max bytes, to buf: its
// length, or an errno.
//
//go:nosplit
func p9Readlink(i uint32, buf, max uintptr) (uintptr, linux.Errno) {
	n := p9nodeOf(i)
	p9begin(p9.Treadlink)
	p9put32(n.fid)
	if e := p9rpc(int(n.share)); e != 0 {
		return 0, e
	}
	l := uintptr(p9get16())
	if p9r+l > p9rEnd {
		return 0, linux.EIO
	}
	l = min(l, max)
	memmove(buf, p9r, l)
	return l, 0
}

// p9Created is the open fid of the file p9Create made for vfsOpen.
var p9Created uint32

// p9Create makes a file (Tlcreate, opened with flags: p9Created) or a
// directory (Tmkdir) named by r's last component, and returns its node.
//
//go:nosplit
func p9Create(r *walkResult, mode uint32, flags uintptr) (vnode, linux.Errno) {
	dir := r.dir.ino()
	d := p9nodeOf(dir)
	k := int(d.share)
	if mounts[1+uint(k)%abi.MaxShares].ro {
		return 0, linux.EROFS
	}
	p9Created = 0
	if mode&linux.S_IFMT == linux.S_IFDIR {
		p9begin(p9.Tmkdir)
		p9put32(d.fid)
		p9putStr(r.nameAddr(), r.nlen)
		p9put32(mode & 0o7777)
		p9put32(0)
		if e := p9rpc(k); e != 0 {
			return 0, e
		}
	} else {
		// Tlcreate turns a fid of the directory into the new file's,
		// opened: a clone.
		fid, e := p9clone(dir)
		if e != 0 {
			return 0, e
		}
		p9begin(p9.Tlcreate)
		p9put32(fid)
		p9putStr(r.nameAddr(), r.nlen)
		p9put32(uint32(flags & (linux.O_ACCMODE | linux.O_APPEND)))
		p9put32(mode & 0o7777)
		p9put32(0)
		if e := p9rpc(k); e != 0 {
			p9clunk(k, fid)
			return 0, e
		}
		p9Created = fid
	}
	i, e := p9Child(dir, r.nameAddr(), r.nlen)
	if e != 0 {
		p9clunk(k, p9Created)
		p9Created = 0
		return 0, e
	}
	return p9vn(i), 0
}

// p9Forget marks node v gone after its name was removed, freeing it if
// nothing holds it.
//
//go:nosplit
func p9Forget(v vnode) {
	i := v.ino()
	n := p9nodeOf(i)
	n.gone = true
	if n.opens == 0 && n.kids == 0 && v != cwdVn && i >= abi.MaxShares {
		p9free(int(i))
	}
}

// p9Release drops an open description's hold on node i.
//
//go:nosplit
func p9Release(fl *file) {
	p9clunk(int(p9nodeOf(fl.vn.ino()).share), fl.p9fid)
	p9Unhold(fl.vn)
}

// p9Unhold lets go of one hold (an open description or a mapping) on node
// v, freeing a removed node nothing holds any more.
//
//go:nosplit
func p9Unhold(v vnode) {
	n := p9nodeOf(v.ino())
	n.opens--
	if n.gone && n.opens == 0 && n.kids == 0 && v != cwdVn {
		p9free(int(v.ino()))
	}
}

// p9Setattr changes node i's attributes (Tsetattr's valid bits).
//
//go:nosplit
func p9Setattr(i uint32, valid, mode, uid, gid uint32, size uint64, at, mt int64) linux.Errno {
	n := p9nodeOf(i)
	if mounts[1+uint(n.share)%abi.MaxShares].ro {
		return linux.EROFS
	}
	p9begin(p9.Tsetattr)
	p9put32(n.fid)
	p9put32(valid)
	p9put32(mode)
	p9put32(uid)
	p9put32(gid)
	p9put64(size)
	p9put64(uint64(at / 1e9))
	p9put64(uint64(at % 1e9))
	p9put64(uint64(mt / 1e9))
	p9put64(uint64(mt % 1e9))
	return p9rpc(int(n.share))
}

// p9Statfs describes share k in statfsBuf.
//
//go:nosplit
func p9Statfs(k int) linux.Errno {
	p9begin(p9.Tstatfs)
	p9put32(p9nodes[uint(k)%maxP9Nodes].fid)
	if e := p9rpc(k); e != 0 {
		return e
	}
	b := &statfsBuf
	*b = [15]uint64{}
	b[0], b[1] = uint64(p9get32()), uint64(p9get32())
	for j := 2; j <= 7; j++ {
		b[j%15] = p9get64()
	}
	b[8], b[9] = uint64(p9get32()), b[1]
	b[10] = 0x0400 // ST_RELATIME
	if mounts[1+uint(k)%abi.MaxShares].ro {
		b[10] |= 0x0001
	}
	return 0
}

// p9Unlink removes r's last component (Tunlinkat), a directory if rmdir.
//
//go:nosplit
func p9Unlink(r *walkResult, rmdir bool) linux.Errno {
	d := p9nodeOf(r.dir.ino())
	p9begin(p9.Tunlinkat)
	p9put32(d.fid)
	p9putStr(r.nameAddr(), r.nlen)
	if rmdir {
		p9put32(linux.AT_REMOVEDIR)
	} else {
		p9put32(0)
	}
	if e := p9rpc(int(d.share)); e != 0 {
		return e
	}
	p9Forget(r.v)
	return 0
}

// p9Link names node v again as n's last component (Tlink).
//
//go:nosplit
func p9Link(n *walkResult, v vnode) linux.Errno {
	d := p9nodeOf(n.dir.ino())
	p9begin(p9.Tlink)
	p9put32(d.fid)
	p9put32(p9nodeOf(v.ino()).fid)
	p9putStr(n.nameAddr(), n.nlen)
	return p9rpc(int(d.share))
}

// p9Symlink makes r's last component a link to the tlen bytes at target
// (Tsymlink).
//
//go:nosplit
func p9Symlink(r *walkResult, target, tlen uintptr) linux.Errno {
	d := p9nodeOf(r.dir.ino())
	p9begin(p9.Tsymlink)
	p9put32(d.fid)
	p9putStr(r.nameAddr(), r.nlen)
	p9putStr(target, tlen)
	p9put32(0)
	return p9rpc(int(d.share))
}

// p9Fsync syncs the share's file open as fl on the host (Tfsync).
//
//go:nosplit
func p9Fsync(fl *file) linux.Errno {
	p9begin(p9.Tfsync)
	p9put32(fl.p9fid)
	p9put32(0)
	return p9rpc(int(p9nodeOf(fl.vn.ino()).share))
}

// p9CloseFid lets go of fid, opened for node v (0: none).
//
//go:nosplit
func p9CloseFid(v vnode, fid uint32) {
	if fid != 0 {
		p9clunk(int(p9nodeOf(v.ino()).share), fid)
	}
}

// p9SameShare reports whether nodes a and b are on one share.
//
//go:nosplit
func p9SameShare(a, b vnode) bool { return p9nodeOf(a.ino()).share == p9nodeOf(b.ino()).share }

// p9Gone reports whether node v's name was removed.
//
//go:nosplit
func p9Gone(v vnode) bool { return p9nodeOf(v.ino()).gone }

// p9Rename renames o's last component to n's on a share (Trenameat), the
// target replaced by the host's rename(2); RENAME_EXCHANGE is not there
// (EINVAL).
//
//go:nosplit
func p9Rename(o, n *walkResult, flags uintptr) uintptr {
	if flags&linux.RENAME_EXCHANGE != 0 {
		return errno(linux.EINVAL)
	}
	od, nd := p9nodeOf(o.dir.ino()), p9nodeOf(n.dir.ino())
	p9begin(p9.Trenameat)
	p9put32(od.fid)
	p9putStr(o.nameAddr(), o.nlen)
	p9put32(nd.fid)
	p9putStr(n.nameAddr(), n.nlen)
	if e := p9rpc(int(od.share)); e != 0 {
		return errno(e)
	}
	if n.found {
		p9Forget(n.v)
	}
	p9setParent(o.v.ino(), n.dir.ino(), n.nameAddr(), n.nlen)
	return 0
}
