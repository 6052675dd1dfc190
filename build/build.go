// Package build turns an ordinary Go main package into a Unigo image. The
// user's files are never touched: the kernel is added to the package through
// a go build -overlay file that imports it, the kernel's module comes from a
// go.work in the cache, and the linker is pointed at the kernel's entry.
package build

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"unigo.dev/unigo"
	"unigo.dev/unigo/abi"
)

// KernelPackage is the import path of the kernel linked into every image.
const KernelPackage = unigo.ModulePath + "/guest/kernel"

// NetPackage is the network component, linked into programs that use the
// net package.
const NetPackage = unigo.ModulePath + "/guest/netstack"

// EntrySymbol is the ELF entry point of an image (the 64-bit boot); the PVH
// note names PVHEntrySymbol (the 32-bit boot of standard hypervisors).
const (
	EntrySymbol    = KernelPackage + ".entry"
	PVHEntrySymbol = KernelPackage + ".pvhEntry.abi0"
)

// Options configure a build.
type Options struct {
	Package  string    // the main package, as go build takes it
	Output   string    // image path
	Dir      string    // where to run go (default: the current folder)
	Tags     string    // -tags
	LDFlags  string    // -ldflags, before the kernel's own
	TrimPath bool      // -trimpath
	Test     bool      // build the package's tests (go test -c) instead of a program
	Files    []string  // --files SRC:DST: read-only files for the image's root
	NoGates  bool      // leave the SYSCALL instructions in place (gates.go)
	Verbose  io.Writer // if set, says what the build does
}

// Build builds the image.
func Build(o Options) error {
	if o.Package == "" {
		o.Package = "."
	}
	if o.Output == "" {
		return errors.New("build: no output path")
	}
	out, err := filepath.Abs(o.Output)
	if err != nil {
		return err
	}
	o.Output = out
	// A folder path is built from inside that folder, so that its own module
	// applies wherever unigo runs.
	if isDirPath(o.Package) {
		dir := o.Package
		if o.Dir != "" && !filepath.IsAbs(dir) {
			dir = filepath.Join(o.Dir, dir)
		}
		o.Dir, o.Package = dir, "."
	}
	logf := func(format string, a ...any) {
		if o.Verbose != nil {
			fmt.Fprintf(o.Verbose, "unigo: "+format+"\n", a...)
		}
	}
	pkg, err := listPackage(o.Dir, o.Package)
	if err != nil {
		return err
	}
	if pkg.Name != "main" && !o.Test {
		return fmt.Errorf("%s is package %s, not a main package: unigo builds programs (unigo test builds tests)", o.Package, pkg.Name)
	}
	cache, err := cacheDir()
	if err != nil {
		return err
	}
	env := append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	var kernelDir string // the kernel package's folder, where --files go in
	if pkg.Module == nil || pkg.Module.Path != unigo.ModulePath {
		var mods []string
		switch {
		case pkg.Standard:
			// The standard library's tests: the kernel's module alone.
		case pkg.Module == nil || pkg.Module.Dir == "":
			return fmt.Errorf("%s is not in a Go module: run 'go mod init' in its folder first", o.Package)
		default:
			mods = append(mods, pkg.Module.Dir)
		}
		kdir, err := writeKernel(cache)
		if err != nil {
			return err
		}
		work, err := writeWorkspace(cache, append(mods, kdir))
		if err != nil {
			return err
		}
		logf("kernel source %s; workspace %s", kdir, work)
		env = append(env, "GOWORK="+work)
		kernelDir = filepath.Join(kdir, "guest", "kernel")
	} else {
		logf("building inside the Unigo module: kernel from %s", pkg.Module.Dir)
		kernelDir = filepath.Join(pkg.Module.Dir, "guest", "kernel")
	}
	var extra map[string]string
	if len(o.Files) > 0 {
		base := o.Dir
		if base == "" {
			base, _ = os.Getwd()
		}
		var says string
		if extra, says, err = writeRootFS(cache, kernelDir, o.Files, base); err != nil {
			return err
		}
		logf("read-only files: %s", says)
	}
	components := []string{KernelPackage}
	useNet, err := usesNet(o.Dir, o.Package, pkg, o.Test)
	if err != nil {
		return err
	}
	if useNet {
		components = append(components, NetPackage)
	}
	overlay, err := writeOverlay(cache, pkg, o.Test, components, extra)
	if err != nil {
		return err
	}
	ldflags := strings.TrimSpace(o.LDFlags + " -E " + EntrySymbol + " " + roundFlag() + " " + reserveFlag())
	args := []string{"build", "-overlay", overlay, "-o", o.Output, "-ldflags", ldflags}
	if o.Test {
		args = []string{"test", "-c", "-overlay", overlay, "-o", o.Output, "-ldflags", ldflags}
	}
	if o.Tags != "" {
		args = append(args, "-tags", o.Tags)
	}
	if o.TrimPath {
		args = append(args, "-trimpath")
	}
	args = append(args, o.Package)
	logf("kernel component: %s (threads, memory, clocks and vDSO, signals, console, pipes, epoll, socket calls)", KernelPackage)
	if useNet {
		logf("kernel component: %s (gVisor netstack: TCP/IP over loopback), because the program uses package net", NetPackage)
	} else {
		logf("no network stack: the program does not use package net")
	}
	logf("GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go %s", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Dir = o.Dir
	cmd.Env = env
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", o.Package, err)
	}
	var flags uint32
	if useNet {
		flags |= abi.NoteFlagNet
	}
	// The share and disk drivers stay out of a program that opens no
	// files: what it links tells (the linker drops os.OpenFile and the
	// like when nothing calls them). Then it is built again without them.
	files, why, err := usesFiles(o.Output)
	if err != nil {
		return err
	}
	if files {
		flags |= abi.NoteFlagDrivers
		logf("kernel component: the share and disk drivers (9P for -v folders, virtio-blk for --disk and the block volumes of -v FILE.img, with their file system), because %s", why)
	} else {
		tags := strings.TrimPrefix(o.Tags+",unigo_nodrivers", ",")
		for i, a := range cmd.Args {
			if a == "-tags" {
				cmd.Args[i+1] = tags
				tags = ""
			}
		}
		if tags != "" {
			cmd.Args = append(cmd.Args[:len(cmd.Args)-1], "-tags", tags, o.Package)
		}
		logf("no share or disk drivers: the program opens no files; GOOS=linux GOARCH=amd64 CGO_ENABLED=0 %s", strings.Join(cmd.Args, " "))
		again := exec.Command(cmd.Args[0], cmd.Args[1:]...)
		again.Dir, again.Env, again.Stdout, again.Stderr = o.Dir, env, os.Stderr, os.Stderr
		if err := again.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", o.Package, err)
		}
	}
	if err := compact(o.Output); err != nil {
		return fmt.Errorf("compact %s: %w", o.Output, err)
	}
	if o.NoGates {
		logf("system-call gates: none (--no-gates): every system call is a SYSCALL instruction")
	} else {
		st, err := rewriteSyscalls(o.Output)
		if err != nil {
			return fmt.Errorf("system-call gates in %s: %w (--no-gates builds without them)", o.Output, err)
		}
		logf("system-call gates: %s", st)
	}
	if err := writeNotes(o.Output, flags); err != nil {
		return fmt.Errorf("mark %s as a Unigo image: %w", o.Output, err)
	}
	logf("wrote %s", o.Output)
	return nil
}

func isDirPath(p string) bool {
	if !filepath.IsAbs(p) && p != "." && p != ".." && !strings.HasPrefix(p, "./") && !strings.HasPrefix(p, "../") {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

type listedPackage struct {
	Name     string
	Dir      string
	Standard bool
	Module   *struct{ Path, Dir string }
	Deps     []string
}

func listPackage(dir, pattern string) (*listedPackage, error) {
	cmd := exec.Command("go", "list", "-json=Name,Dir,Standard,Module,Deps", "--", pattern)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v\n%s", pattern, err, strings.TrimSpace(stderr.String()))
	}
	var p listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("go list %s: %w", pattern, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s names several packages: give one main package", pattern)
	}
	return &p, nil
}

func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for the kernel source (set XDG_CACHE_HOME or HOME): %w", err)
	}
	dir := filepath.Join(base, "unigo")
	return dir, os.MkdirAll(dir, 0o755)
}

// writeKernel writes the embedded kernel source under cache once per content
// hash and returns its folder.
func writeKernel(cache string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(unigo.KernelSource, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := unigo.KernelSource.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "kernel-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(cache, "kernel-tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(unigo.KernelSource, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := unigo.KernelSource.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("write kernel source: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil && !isExist(err) {
		return "", fmt.Errorf("write kernel source: %w", err)
	}
	return dir, nil
}

func isExist(err error) bool {
	return errors.Is(err, fs.ErrExist) || errors.Is(err, os.ErrExist) || strings.Contains(err.Error(), "directory not empty")
}

// writeWorkspace writes a go.work that uses the given modules: the user's
// and the kernel's.
func writeWorkspace(cache string, mods []string) (string, error) {
	ver, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(ver)), "go")
	if i := strings.IndexAny(v, " -"); i >= 0 {
		v = v[:i]
	}
	sum := sha256.Sum256([]byte(strings.Join(mods, "\x00")))
	dir := filepath.Join(cache, "work-"+hex.EncodeToString(sum[:])[:16])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	work := filepath.Join(dir, "go.work")
	content := fmt.Sprintf("go %s\n\nuse (\n", v)
	for _, m := range mods {
		content += fmt.Sprintf("\t%q\n", m)
	}
	content += ")\n"
	return work, writeIfChanged(work, content)
}

// writeOverlay writes the overlay that adds one file to the user's package:
// a blank import of the kernel. For tests the file joins the external test
// package, which may import the kernel even where the package itself may not
// (the standard library).
func writeOverlay(cache string, pkg *listedPackage, test bool, components []string, extra map[string]string) (string, error) {
	name, file := "main", "zz_unigo_kernel.go"
	if test {
		name, file = pkg.Name+"_test", "zz_unigo_kernel_test.go"
	}
	code := "// Code generated by unigo build; DO NOT EDIT.\n\npackage " + name + "\n\n"
	for _, c := range components {
		code += "import _ \"" + c + "\"\n"
	}
	// Named by content: concurrent builds that link other components must
	// not rewrite each other's file.
	csum := sha256.Sum256([]byte(code))
	src := filepath.Join(cache, "zz_unigo_"+hex.EncodeToString(csum[:])[:16]+".go")
	if err := writeIfChanged(src, code); err != nil {
		return "", err
	}
	pkgDir := pkg.Dir
	ov := struct{ Replace map[string]string }{map[string]string{filepath.Join(pkgDir, file): src}}
	for k, v := range extra {
		ov.Replace[k] = v
	}
	b, err := json.Marshal(ov)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append([]byte(pkgDir+"\x00"+file+"\x00"), b...))
	path := filepath.Join(cache, "overlay-"+hex.EncodeToString(sum[:])[:16]+".json")
	return path, writeIfChanged(path, string(b))
}

func writeIfChanged(path, content string) error {
	if b, err := os.ReadFile(path); err == nil && string(b) == content {
		return nil
	}
	tmp := path + ".tmp" + fmt.Sprint(os.Getpid())
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// usesNet reports whether the program (with its tests, for a test build)
// depends on package net, and so needs the network component.
func usesNet(dir, pattern string, pkg *listedPackage, test bool) (bool, error) {
	deps := pkg.Deps
	if test {
		cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}", "--", pattern)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return false, fmt.Errorf("go list -deps -test %s: %v\n%s", pattern, err, strings.TrimSpace(stderr.String()))
		}
		deps = strings.Fields(string(out))
	}
	for _, d := range deps {
		if d == "net" {
			return true, nil
		}
	}
	return false, nil
}

// fileSymbols are functions a program links when it opens, creates or
// looks up files: the os package's funnels and the raw system call
// wrappers.
var fileSymbols = []string{
	"os.openFileNolog", "os.openDirNolog", "os.Stat", "os.Lstat", "os.Mkdir", "os.Remove", "os.Rename",
	"os.Chdir", "os.Readlink", "os.Truncate", "os.Chmod", "os.Chtimes", "os.Symlink", "os.Link",
	"syscall.Open", "syscall.Openat", "syscall.openat", "syscall.Stat", "syscall.Mkdirat", "syscall.Unlinkat",
	"golang.org/x/sys/unix.Openat", "golang.org/x/sys/unix.Open",
}

// usesFiles reports whether the linked image calls anything that opens
// or looks up a file, and which symbol says so; an image without a symbol
// table (-ldflags=-s) is taken to.
func usesFiles(image string) (bool, string, error) {
	f, err := elf.Open(image)
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return true, "the image has no symbol table to tell otherwise", nil
	}
	want := map[string]bool{}
	for _, s := range fileSymbols {
		want[s] = true
	}
	for _, s := range syms {
		if want[s.Name] {
			return true, "the program calls " + s.Name, nil
		}
	}
	return false, "", nil
}
