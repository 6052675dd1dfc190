package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"unigo.dev/unigo/build"
)

type buildOpts struct {
	output, tags, ldflags string
	verbose, trimpath     bool
	noGates               bool
	test                  bool     // build the package's tests
	files                 listFlag // --files SRC:DST
}

func buildFlags(o *buildOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.StringVar(&o.output, "o", "", "write the image to `file` (default: the package's name with .img)")
	fs.BoolVar(&o.verbose, "v", false, "say what the build does and which kernel components go in")
	fs.StringVar(&o.tags, "tags", "", "build `tags`, passed to go build")
	fs.StringVar(&o.ldflags, "ldflags", "", "linker `flags`, passed to go build before the kernel's own")
	fs.BoolVar(&o.trimpath, "trimpath", false, "passed to go build")
	fs.Var(&o.files, "files", "bake host files into the image, read-only: `SRC:DST` puts the file or folder SRC\nat path DST (repeatable; like ./public:/srv)")
	fs.BoolVar(&o.noGates, "no-gates", false, "leave the program's SYSCALL instructions in place rather than move them into\nthe kernel's system-call gates, which enter the kernel by a jump on a paging-based\nKVM (ARCHITECTURE.md): slower system calls there; the same elsewhere")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: unigo build [flags] [package]

Builds the Go main package (default ".") with the Unigo kernel linked in, into
one bootable image. The package and its module are not changed.

`)
		fs.PrintDefaults()
	}
	return fs
}

func cmdBuild(args []string) error {
	var o buildOpts
	fs := buildFlags(&o)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return exitError(exitUsage)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("build takes one package, got %q", fs.Args())
	}
	pkg := fs.Arg(0)
	if pkg == "" {
		pkg = "."
	}
	if o.output == "" {
		o.output = defaultImageName(pkg)
	}
	return doBuild(pkg, o)
}

func doBuild(pkg string, o buildOpts) error {
	bo := build.Options{
		Package:  pkg,
		Output:   o.output,
		Tags:     o.tags,
		LDFlags:  o.ldflags,
		TrimPath: o.trimpath,
		Test:     o.test,
		Files:    o.files,
		NoGates:  o.noGates,
	}
	if o.verbose {
		bo.Verbose = os.Stderr
	}
	return build.Build(bo)
}

// defaultImageName names the image after the package's last path element.
func defaultImageName(pkg string) string {
	name := filepath.Base(strings.TrimSuffix(pkg, "/..."))
	if name == "." || name == "/" {
		if wd, err := os.Getwd(); err == nil {
			name = filepath.Base(wd)
		}
	}
	return name + ".img"
}
