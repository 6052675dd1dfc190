package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/volume"
)

// share is one -v HOSTDIR:GUESTDIR[:ro], or a block volume's -v
// FILE.img:GUESTDIR[:ro].
type share struct {
	host, guest string
	readOnly    bool
	volume      bool // host is a volume file (unigo volume create)
}

// parseVolumes checks the -v flags: a host folder or volume that exists,
// and a guest path the kernel can mount it at.
func parseVolumes(vs []string) ([]share, error) {
	if len(vs) > abi.MaxShares {
		return nil, fmt.Errorf("-v: %d folders; at most %d", len(vs), abi.MaxShares)
	}
	var out []share
	seen := map[string]bool{}
	for _, v := range vs {
		parts := strings.Split(v, ":")
		ro := false
		if len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw") {
			ro, parts = parts[2] == "ro", parts[:2]
		}
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("-v %q: want HOSTDIR:GUESTDIR or HOSTDIR:GUESTDIR:ro", v)
		}
		host, guest := parts[0], parts[1]
		st, err := os.Stat(host)
		if err != nil {
			return nil, fmt.Errorf("-v %q: %v", v, err)
		}
		isVol := st.Mode().IsRegular()
		if isVol {
			vol, err := volume.Open(host)
			if err != nil {
				return nil, fmt.Errorf("-v %q: %v", v, err)
			}
			vol.Close()
		} else if !st.IsDir() {
			return nil, fmt.Errorf("-v %q: %s is neither a folder nor a volume file (unigo volume create makes one)", v, host)
		}
		if host, err = filepath.Abs(host); err != nil {
			return nil, err
		}
		g := path.Clean(guest)
		switch {
		case !path.IsAbs(guest):
			return nil, fmt.Errorf("-v %q: the guest path must be absolute, such as /data", v)
		case strings.ContainsAny(guest, " \t\n"):
			return nil, fmt.Errorf("-v %q: the guest path may not hold spaces", v)
		case path.Dir(g) != "/":
			return nil, fmt.Errorf("-v %q: mount it at a folder of the root, such as /data (%s is deeper)", v, g)
		case g == "/" || g == "/tmp" || g == "/dev" || g == "/proc" || g == "/etc":
			return nil, fmt.Errorf("-v %q: %s is the guest's own; choose another path, such as /data", v, g)
		case seen[g]:
			return nil, fmt.Errorf("-v %q: %s is mounted twice", v, g)
		}
		seen[g] = true
		out = append(out, share{host: host, guest: g, readOnly: ro, volume: isVol})
	}
	return out, nil
}

// disk is one --disk FILE[:ro], or a block volume's file.
type disk struct {
	path     string
	readOnly bool
	mount    string // a volume's guest path; "" for a raw disk
}

// parseDisks checks the --disk flags: regular files of whole sectors.
func parseDisks(ds []string) ([]disk, error) {
	if len(ds) > abi.MaxDisks {
		return nil, fmt.Errorf("--disk: %d files; at most %d", len(ds), abi.MaxDisks)
	}
	var out []disk
	for _, d := range ds {
		p, ro := d, false
		if s, ok := strings.CutSuffix(d, ":ro"); ok {
			p, ro = s, true
		}
		st, err := os.Stat(p)
		switch {
		case err != nil:
			return nil, fmt.Errorf("--disk %q: %v", d, err)
		case !st.Mode().IsRegular():
			return nil, fmt.Errorf("--disk %q: not a regular file", d)
		case st.Size() == 0 || st.Size()%512 != 0:
			return nil, fmt.Errorf("--disk %q: %d bytes; a disk is a whole number of 512-byte sectors (truncate -s 64M %s makes one)", d, st.Size(), p)
		}
		out = append(out, disk{path: p, readOnly: ro})
	}
	return out, nil
}
