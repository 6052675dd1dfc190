package build

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"unigo.dev/unigo/abi"
)

// The image's read-only files: unigo build --files SRC:DST puts the file or
// tree SRC at the absolute path DST of the guest's root, in the archive
// format of abi/rofs.go, which the kernel package embeds (writeRootFS).

type rofsNode struct {
	name     string
	dir      bool
	mode     fs.FileMode
	mtime    int64
	src      string // a file's host path
	size     int64
	children map[string]*rofsNode
}

// packRootFS builds the archive for specs (SRC:DST, SRC relative to base).
func packRootFS(specs []string, base string) ([]byte, int, error) {
	root := &rofsNode{dir: true, mode: 0o755, children: map[string]*rofsNode{}}
	for _, spec := range specs {
		src, dst, ok := strings.Cut(spec, ":")
		if !ok || src == "" || !path.IsAbs(dst) {
			return nil, 0, fmt.Errorf("--files %q: want SRC:DST, DST an absolute path in the guest, such as ./public:/srv", spec)
		}
		if !filepath.IsAbs(src) {
			src = filepath.Join(base, src)
		}
		if err := addTree(root, src, path.Clean(dst)); err != nil {
			return nil, 0, fmt.Errorf("--files %q: %w", spec, err)
		}
	}
	// Entries breadth-first, children by name: the root is entry 0 and
	// every parent comes before its children.
	order := []*rofsNode{root}
	parents := []int{0}
	for i := 0; i < len(order); i++ {
		n := order[i]
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			order = append(order, n.children[name])
			parents = append(parents, i)
		}
	}
	head := abi.RofsHeader + len(order)*abi.RofsEntry
	var names []byte
	for _, n := range order {
		names = append(names, n.name...)
	}
	out := make([]byte, head, head+len(names))
	binary.LittleEndian.PutUint64(out, abi.RofsMagic)
	binary.LittleEndian.PutUint32(out[8:], uint32(len(order)))
	out = append(out, names...)
	nameOff := head
	for i, n := range order {
		e := out[abi.RofsHeader+i*abi.RofsEntry:]
		binary.LittleEndian.PutUint32(e[abi.RofsNameOff:], uint32(nameOff))
		binary.LittleEndian.PutUint32(e[abi.RofsNameLen:], uint32(len(n.name)))
		nameOff += len(n.name)
		binary.LittleEndian.PutUint32(e[abi.RofsParent:], uint32(parents[i]))
		mode := uint32(n.mode.Perm())
		if n.dir {
			mode |= 0o040000
		} else {
			mode |= 0o100000
		}
		binary.LittleEndian.PutUint32(e[abi.RofsMode:], mode)
		binary.LittleEndian.PutUint64(e[abi.RofsMtime:], uint64(n.mtime))
		if n.dir {
			continue
		}
		b, err := os.ReadFile(n.src)
		if err != nil {
			return nil, 0, err
		}
		binary.LittleEndian.PutUint64(e[abi.RofsSize:], uint64(len(b)))
		binary.LittleEndian.PutUint64(e[abi.RofsData:], uint64(len(out)))
		out = append(out, b...)
	}
	return out, len(order) - 1, nil
}

// addTree puts the host file or directory tree src at dst under root,
// following symbolic links.
func addTree(root *rofsNode, src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	parent := root
	elems := strings.Split(strings.Trim(dst, "/"), "/")
	if dst == "/" {
		elems = nil
	}
	for i, e := range elems {
		if i == len(elems)-1 {
			break
		}
		c := parent.children[e]
		if c == nil {
			c = &rofsNode{name: e, dir: true, mode: 0o755, mtime: st.ModTime().Unix(), children: map[string]*rofsNode{}}
			parent.children[e] = c
		}
		if !c.dir {
			return fmt.Errorf("%s is a file, and another file goes under it", path.Join(elems[:i+1]...))
		}
		parent = c
	}
	if len(elems) == 0 { // the root itself
		if !st.IsDir() {
			return fmt.Errorf("only a directory can be the root")
		}
		return addChildren(root, src, 0)
	}
	name := elems[len(elems)-1]
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		parent.children[name] = &rofsNode{name: name, mode: st.Mode(), mtime: st.ModTime().Unix(), src: src, size: st.Size()}
		return nil
	}
	d := parent.children[name]
	if d == nil || !d.dir {
		d = &rofsNode{name: name, dir: true, children: map[string]*rofsNode{}}
		parent.children[name] = d
	}
	d.mode, d.mtime = st.Mode(), st.ModTime().Unix()
	return addChildren(d, src, 0)
}

// addChildren adds the entries of host directory src to d, depth levels
// down already (a link back up would make a tree without end).
func addChildren(d *rofsNode, src string, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%s: more than 64 directories deep (a symbolic link loop?)", src)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(src, e.Name())
		st, err := os.Stat(p) // through symbolic links
		if err != nil {
			return err
		}
		if st.IsDir() {
			c := &rofsNode{name: e.Name(), dir: true, mode: st.Mode(), mtime: st.ModTime().Unix(), children: map[string]*rofsNode{}}
			d.children[e.Name()] = c
			if err := addChildren(c, p, depth+1); err != nil {
				return err
			}
		} else if st.Mode().IsRegular() {
			d.children[e.Name()] = &rofsNode{name: e.Name(), mode: st.Mode(), mtime: st.ModTime().Unix(), src: p, size: st.Size()}
		}
	}
	return nil
}

// writeRootFS writes the archive for specs to the cache and returns the
// overlay entries that embed it in the kernel package at kernelDir: the
// archive, and a file whose init hands it to the kernel.
func writeRootFS(cache, kernelDir string, specs []string, base string) (map[string]string, string, error) {
	archive, n, err := packRootFS(specs, base)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(archive)
	bin := filepath.Join(cache, "rootfs-"+hex.EncodeToString(sum[:])[:16]+".bin")
	if err := writeIfChanged(bin, string(archive)); err != nil {
		return nil, "", err
	}
	const code = `// Code generated by unigo build; DO NOT EDIT.

package kernel

import _ "embed"

//go:embed zz_unigo_rootfs.bin
var rootFSImage string

func init() { rootFS = rootFSImage }
`
	src := filepath.Join(cache, "zz_unigo_rootfs.go")
	if err := writeIfChanged(src, code); err != nil {
		return nil, "", err
	}
	return map[string]string{
			filepath.Join(kernelDir, "zz_unigo_rootfs.go"):  src,
			filepath.Join(kernelDir, "zz_unigo_rootfs.bin"): bin,
		}, fmt.Sprintf("%d files and directories, %d bytes of archive, from %s", n, len(archive), strings.Join(specs, " ")),
		nil
}
