package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"unigo.dev/unigo/vmm/volume"
)

const volumeUsage = `usage: unigo volume create --size SIZE FILE
       unigo volume ls FILE[:PATH]
       unigo volume cp FILE:PATH DEST
       unigo volume fsck FILE

Block volumes on the host, without root. create makes an empty volume
(sparse: it takes disk space as it fills). ls lists a folder of a volume
(the root by default), cp copies a file out of one, fsck checks one; all
three see what the volume holds after its journal, as the kernel would
mount it. A PATH may be written as the guest saw it (/data/out.txt when the
volume was mounted at /data) or from the volume's root.

unigo run -v FILE.img:/NAME mounts a volume in the guest (:ro for
read-only); one instance may write it, or any number read it. --disk
gives a guest a file as a raw disk instead.
`

func cmdVolume(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, volumeUsage)
		return exitError(exitUsage)
	}
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("volume create", flag.ContinueOnError)
		size := fs.String("size", "", "the volume's `size` (K, M, G or T suffix), at least 4M")
		fs.Usage = func() { fmt.Fprint(fs.Output(), volumeUsage); fs.PrintDefaults() }
		if err := fs.Parse(args[1:]); err != nil {
			if err == flag.ErrHelp {
				return nil
			}
			return exitError(exitUsage)
		}
		if fs.NArg() != 1 || *size == "" {
			return fmt.Errorf("volume create: want --size SIZE FILE; for example unigo volume create --size 1G vol.img")
		}
		n, err := parseBytes(*size, 1)
		if err != nil || n > 1<<50 {
			return fmt.Errorf("--size %q: want a size such as 64M or 1G", *size)
		}
		return volume.Create(fs.Arg(0), int64(n))
	case "ls":
		if len(args) != 2 {
			return fmt.Errorf("volume ls: want FILE[:PATH]")
		}
		v, in, p, err := openVolumePath(args[1])
		if err != nil {
			return err
		}
		defer v.Close()
		es, err := v.ReadDir(in)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, e := range es {
			in, err := v.Inode(e.Ino)
			if err != nil {
				return err
			}
			fmt.Printf("%v %8d %s %s\n", fs.FileMode(in.Mode&0o777)|modeType(in.Mode), in.Size,
				time.Unix(0, in.Mtime).UTC().Format("2006-01-02 15:04:05"), e.Name)
		}
		return nil
	case "cp":
		if len(args) != 3 || !strings.Contains(args[1], ":/") {
			return fmt.Errorf("volume cp: want FILE:PATH DEST, such as vol.img:/data/out.txt ./out.txt")
		}
		v, in, p, err := openVolumePath(args[1])
		if err != nil {
			return err
		}
		defer v.Close()
		if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return fmt.Errorf("%s is not a regular file", p)
		}
		b, err := v.ReadData(in)
		if err != nil {
			return err
		}
		dst := args[2]
		if st, err := os.Stat(dst); err == nil && st.IsDir() {
			dst = filepath.Join(dst, filepath.Base(p))
		}
		return os.WriteFile(dst, b, fs.FileMode(in.Mode&0o777))
	case "fsck":
		if len(args) != 2 {
			return fmt.Errorf("volume fsck: want FILE")
		}
		v, err := volume.Open(args[1])
		if err != nil {
			return err
		}
		defer v.Close()
		problems, notes := v.Check()
		for _, n := range notes {
			fmt.Println("note:", n)
		}
		for _, p := range problems {
			fmt.Println("problem:", p)
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s: %d problems", args[1], len(problems))
		}
		fmt.Printf("%s: clean (%d blocks; %d journal transactions replayed)\n", args[1], v.Blocks(), v.Replayed)
		return nil
	case "help", "-h", "--help":
		fmt.Print(volumeUsage)
		return nil
	}
	return fmt.Errorf("volume: unknown command %q; want create, ls, cp or fsck", args[0])
}

// openVolumePath opens the volume of FILE:PATH (split at its ":/"; a FILE
// alone names its root) and looks PATH up.
func openVolumePath(s string) (*volume.Volume, *volume.Inode, string, error) {
	file, p := s, "/"
	if i := strings.Index(s, ":/"); i >= 0 {
		file, p = s[:i], s[i+1:]
	}
	v, err := volume.Open(file)
	if err != nil {
		return nil, nil, "", err
	}
	in, err := v.Lookup(p)
	if err != nil {
		v.Close()
		return nil, nil, "", err
	}
	return v, in, p, nil
}

func modeType(mode uint32) fs.FileMode {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	}
	return 0
}
