// Command tmpfs exercises a writable directory (its argument: /tmp in the
// guest, a fresh directory on Linux) through the os package and the raw
// system calls it does not reach, and prints what each step saw, so that
// the output on Unigo can be compared with Linux's line by line. Nothing
// printed depends on the file system's own choices (inode numbers, a
// directory's size, times beyond their order).
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

var dir string

func p(name string) string { return filepath.Join(dir, name) }

// say prints a step's result: ok, or the errno's text.
func say(step string, err error) {
	var e syscall.Errno
	switch {
	case err == nil:
		fmt.Printf("%s: ok\n", step)
	case errors.As(err, &e):
		fmt.Printf("%s: %v\n", step, e)
	default:
		fmt.Printf("%s: %v\n", step, err)
	}
}

func must(step string, err error) {
	if err != nil {
		fmt.Printf("%s: unexpected %v\n", step, err)
		os.Exit(1)
	}
}

func read(name string) string {
	b, err := os.ReadFile(p(name))
	if err != nil {
		return "error: " + err.(*fs.PathError).Err.Error()
	}
	return fmt.Sprintf("%q", b)
}

func list(name string) string {
	es, err := os.ReadDir(p(name))
	if err != nil {
		return "error: " + err.(*fs.PathError).Err.Error()
	}
	var s []string
	for _, e := range es {
		s = append(s, e.Name()+"("+e.Type().String()+")")
	}
	return strings.Join(s, " ")
}

// share says the directory is a host folder share (second argument
// "share"): the steps 9P cannot take are left out, on Linux as well.
var share bool

func main() {
	dir = os.Args[1]
	share = len(os.Args) > 2 && os.Args[2] == "share"
	must("mkdir", os.Mkdir(p("t"), 0o755))
	dir = p("t")
	syscall.Umask(0o022)

	// Files: create, exclusive create, append, holes, truncate.
	must("write", os.WriteFile(p("a"), []byte("hello"), 0o644))
	fmt.Println("read a:", read("a"))
	_, err := os.OpenFile(p("a"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	say("create excl existing", err)
	f, err := os.OpenFile(p("a"), os.O_APPEND|os.O_WRONLY, 0)
	must("open append", err)
	f.Write([]byte(", world"))
	f.Seek(0, io.SeekStart)
	f.Write([]byte("!"))
	f.Close()
	fmt.Println("after append:", read("a"))
	f, _ = os.OpenFile(p("hole"), os.O_CREATE|os.O_RDWR, 0o600)
	f.WriteAt([]byte("end"), 10000)
	st, _ := f.Stat()
	b := make([]byte, 10003)
	n, _ := f.ReadAt(b, 0)
	fmt.Println("hole: size", st.Size(), "read", n, "zeros", bytes.Count(b[:10000], []byte{0}), "tail", string(b[10000:n]))
	must("truncate", f.Truncate(5000))
	f.Truncate(9000)
	n, _ = f.ReadAt(b, 0)
	fmt.Println("truncated: read", n, "zeros", bytes.Count(b[:n], []byte{0}))
	say("fsync", f.Sync())
	say("fdatasync", syscall.Fdatasync(int(f.Fd())))
	f.Close()
	_, err = os.Open(p("missing"))
	say("open missing", err)
	_, err = os.OpenFile(p("."), os.O_WRONLY, 0)
	say("open dir for writing", err)
	_, err = os.Stat(p("a") + "/")
	say("stat file/", err)
	_, err = os.ReadDir(p("a"))
	say("readdir of a file", err)
	d, _ := os.Open(dir)
	_, err = d.Read(b)
	say("read a directory", err)
	d.Close()

	// A big file, through the page index.
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	must("write big", os.WriteFile(p("big"), big, 0o644))
	got, _ := os.ReadFile(p("big"))
	fmt.Printf("big: %d bytes, same %v, sha256 %x\n", len(got), bytes.Equal(got, big), sha256.Sum256(got))

	// Directories.
	say("mkdir d", os.Mkdir(p("d"), 0o750))
	say("mkdir d again", os.Mkdir(p("d"), 0o750))
	say("mkdir under a file", os.Mkdir(p("a/x"), 0o750))
	say("mkdir with slash", os.Mkdir(p("e")+"/", 0o755))
	say("mkdirall", os.MkdirAll(p("d/x/y/z"), 0o755))
	os.WriteFile(p("d/x/f1"), []byte("1"), 0o644)
	os.WriteFile(p("d/x/f2"), []byte("22"), 0o644)
	fmt.Println("list d/x:", list("d/x"))
	st, _ = os.Stat(p("d"))
	fmt.Println("d: mode", st.Mode(), "dir", st.IsDir())
	say("remove non-empty", os.Remove(p("d/x")))
	say("rmdir a file", syscall.Rmdir(p("a")))
	say("unlink a dir", syscall.Unlink(p("e")))
	say("remove e", os.Remove(p("e")))

	// Renames.
	os.WriteFile(p("new"), []byte("new"), 0o644)
	say("rename over", os.Rename(p("new"), p("a")))
	fmt.Println("a is now:", read("a"), "new:", read("new"))
	say("rename dir", os.Rename(p("d/x"), p("x")))
	fmt.Println("list x:", list("x"), "| d:", list("d"))
	say("rename into itself", os.Rename(p("x"), p("x/y/in")))
	say("rename file over dir", os.Rename(p("a"), p("x/y")))
	say("rename dir over file", os.Rename(p("x/y"), p("a")))
	os.Mkdir(p("empty"), 0o755)
	say("rename dir over non-empty dir", os.Rename(p("empty"), p("x")))
	say("rename dir over empty dir", os.Rename(p("x/y"), p("empty")))
	fmt.Println("list empty:", list("empty"), "| x:", list("x"))
	// os.Rename refuses a directory target itself; the system call decides here.
	say("rename(2) file over dir", syscall.Rename(p("a"), p("x/y")))
	say("rename(2) dir over non-empty dir", syscall.Rename(p("empty"), p("x")))
	os.Mkdir(p("x/y/w"), 0o755)
	say("rename(2) dir over empty dir", syscall.Rename(p("x/y"), p("empty")))
	fmt.Println("list empty:", list("empty"), "| x:", list("x"))
	say("rename(2) back", syscall.Rename(p("empty"), p("x/y")))
	os.Mkdir(p("empty"), 0o755)
	say("rename missing", os.Rename(p("nothing"), p("b")))
	say("noreplace", renameat2(p("a"), p("x/f1"), 1))
	if share { // 9P's Trenameat has no flags: RENAME_EXCHANGE is EINVAL there
		os.Rename(p("a"), p("swap"))
		os.Rename(p("x/f1"), p("a"))
		os.Rename(p("swap"), p("x/f1"))
	} else {
		say("exchange", renameat2(p("a"), p("x/f1"), 2))
	}
	fmt.Println("a:", read("a"), "x/f1:", read("x/f1"))
	if !share {
		say("exchange dir and file", renameat2(p("empty"), p("a"), 2))
		fmt.Println("list:", list(""))
		renameat2(p("empty"), p("a"), 2)
	}

	// Links.
	say("link", os.Link(p("a"), p("hard")))
	st, _ = os.Stat(p("a"))
	fmt.Println("nlink", st.Sys().(*syscall.Stat_t).Nlink)
	os.Remove(p("a"))
	fmt.Println("hard after removing a:", read("hard"))
	say("link a dir", os.Link(p("x"), p("xl")))
	say("symlink", os.Symlink("hard", p("sym")))
	say("symlink to dir", os.Symlink("../t/x", p("symdir")))
	say("dangling", os.Symlink("nowhere", p("dangle")))
	target, err := os.Readlink(p("sym"))
	fmt.Println("readlink:", target, err)
	_, err = os.Readlink(p("hard"))
	say("readlink a file", err)
	lst, _ := os.Lstat(p("sym"))
	st, _ = os.Stat(p("sym"))
	fmt.Println("lstat:", lst.Mode().Type() == fs.ModeSymlink, "stat:", st.Mode().IsRegular(), st.Size())
	fmt.Println("through symdir:", read("symdir/f2"), list("symdir"))
	_, err = os.Stat(p("dangle"))
	say("stat dangling", err)
	_, err = os.OpenFile(p("sym"), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	say("open nofollow", err)
	os.Symlink("loop2", p("loop1"))
	os.Symlink("loop1", p("loop2"))
	_, err = os.Stat(p("loop1"))
	say("symlink loop", err)
	f, err = os.OpenFile(p("dangle"), os.O_CREATE|os.O_WRONLY, 0o644)
	say("create through dangling link", err)
	f.Close()
	fmt.Println("nowhere:", read("nowhere"))
	say("remove the link", os.Remove(p("sym")))
	fmt.Println("hard stays:", read("hard"))

	// Attributes.
	say("chmod", os.Chmod(p("hard"), 0o600))
	st, _ = os.Stat(p("hard"))
	fmt.Println("mode:", st.Mode())
	syscall.Umask(0o027)
	os.WriteFile(p("masked"), nil, 0o666)
	st, _ = os.Stat(p("masked"))
	fmt.Println("umask 027:", st.Mode())
	syscall.Umask(0o022)
	when := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	say("chtimes", os.Chtimes(p("hard"), when, when))
	st, _ = os.Stat(p("hard"))
	fmt.Println("mtime:", st.ModTime().UTC())
	before := st.ModTime()
	os.WriteFile(p("hard"), []byte("x"), 0)
	st, _ = os.Stat(p("hard"))
	fmt.Println("written later:", st.ModTime().After(before))
	say("chown", os.Chown(p("hard"), os.Getuid(), os.Getgid()))
	st, _ = os.Stat(p("hard"))
	fmt.Println("owner is me:", int(st.Sys().(*syscall.Stat_t).Uid) == os.Getuid(), int(st.Sys().(*syscall.Stat_t).Gid) == os.Getgid())

	// Descriptors: dup shares the offset; flock between two opens.
	f, _ = os.OpenFile(p("fd"), os.O_CREATE|os.O_RDWR, 0o644)
	fd2, _ := syscall.Dup(int(f.Fd()))
	f.Write([]byte("abcdef"))
	off, _ := syscall.Seek(fd2, 0, io.SeekCurrent)
	fmt.Println("dup offset:", off)
	syscall.Seek(fd2, 2, io.SeekStart)
	n, _ = f.Read(b[:2])
	fmt.Println("read via the original after seeking the dup:", string(b[:n]))
	say("dup3", syscall.Dup3(int(f.Fd()), 100, syscall.O_CLOEXEC))
	fdf, _, _ := syscall.Syscall(syscall.SYS_FCNTL, 100, syscall.F_GETFD, 0)
	fmt.Println("cloexec:", fdf)
	syscall.Close(100)
	g, _ := os.Open(p("fd"))
	say("flock ex", syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	say("flock ex, other open", syscall.Flock(int(g.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	say("flock sh, other open", syscall.Flock(int(g.Fd()), syscall.LOCK_SH|syscall.LOCK_NB))
	say("flock ex, the dup", syscall.Flock(fd2, syscall.LOCK_EX|syscall.LOCK_NB))
	syscall.Close(fd2)
	f.Close()
	say("flock ex after close", syscall.Flock(int(g.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 10}
	say("fcntl setlk", syscall.FcntlFlock(g.Fd(), syscall.F_SETLK, &lk))
	h, _ := os.OpenFile(p("fd"), os.O_RDWR, 0)
	lk = syscall.Flock_t{Type: syscall.F_WRLCK, Len: 10}
	say("fcntl getlk", syscall.FcntlFlock(h.Fd(), syscall.F_GETLK, &lk))
	fmt.Println("getlk type:", lk.Type == syscall.F_UNLCK)
	g.Close()
	h.Close()

	// A removed file stays readable while open.
	f, _ = os.Open(p("big"))
	os.Remove(p("big"))
	n, _ = io.ReadFull(f, b[:100])
	fmt.Println("read after remove:", n, bytes.Equal(b[:100], big[:100]))
	f.Close()

	// The working directory, and a directory descriptor (os.Root).
	must("chdir", os.Chdir(p("x")))
	wd, _ := os.Getwd()
	fmt.Println("getwd is x:", wd == p("x"))
	os.WriteFile("rel", []byte("relative"), 0o644)
	fmt.Println("relative write:", read("x/rel"))
	os.Chdir("..")
	r, err := os.OpenRoot(p("x"))
	must("openroot", err)
	say("root create", r.WriteFile("inroot", []byte("in"), 0o644))
	say("root mkdir", r.Mkdir("rd", 0o755))
	_, err = r.Open("../a")
	fmt.Println("root escape refused:", err != nil)
	say("root rename", r.Rename("inroot", "rd/moved"))
	fmt.Println("list x/rd:", list("x/rd"))
	r.Close()

	// Removal of the whole tree.
	say("removeall", os.RemoveAll(dir))
	_, err = os.Stat(dir)
	say("stat removed", err)
	ents, _ := os.ReadDir(filepath.Dir(dir))
	fmt.Println("left in the parent:", slices.ContainsFunc(ents, func(e fs.DirEntry) bool { return e.Name() == "t" }))
}

func renameat2(from, to string, flags int) error {
	a, _ := syscall.BytePtrFromString(from)
	b, _ := syscall.BytePtrFromString(to)
	_, _, e := syscall.Syscall6(316, uintptr(0xffffff9c), uintptr(unsafe.Pointer(a)), uintptr(0xffffff9c), uintptr(unsafe.Pointer(b)), uintptr(flags), 0)
	if e != 0 {
		return e
	}
	return nil
}
