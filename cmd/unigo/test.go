package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type testOpts struct {
	runOpts
	verbose bool
	tags    string
}

func testFlags(o *testOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.StringVar(&o.mem, "m", "512M", "guest memory `size` (K, M or G suffix; a plain number is MiB)")
	fs.Var(&o.env, "e", "set `KEY=VAL` in the guest's environment (repeatable)")
	fs.BoolVar(&o.debug, "debug", false, "report each unimplemented system call the tests make, once")
	fs.BoolVar(&o.verbose, "v", false, "say what the build does")
	fs.StringVar(&o.vmm, "vmm", "", "`monitor`: kvm or qemu, as for unigo run")
	fs.StringVar(&o.tags, "tags", "", "build `tags`, passed to go test -c")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: unigo test [flags] [package] [-test.flags...]

Builds the package's tests (go test -c) with the Unigo kernel linked in and
runs the test binary inside a unikernel. Arguments starting with -test. go to
the test binary, as with a binary made by go test -c: -test.run=Regexp,
-test.v, -test.short, -test.count=N... The exit status is the test binary's.
The package's folder is shared with the guest, read-only, at /pkg, and is
the tests' working directory, as go test runs them there (testdata/ works).

`)
		fs.PrintDefaults()
	}
	return fs
}

// testBoolFlags are the test binary's flags that take no value (go help
// testflag).
var testBoolFlags = map[string]bool{"v": true, "short": true, "failfast": true, "benchmem": true, "fullpath": true, "paniconexit0": true}

func cmdTest(args []string) error {
	var own, testArgs []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			testArgs = append(testArgs, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-test.") || strings.HasPrefix(a, "--test."):
			testArgs = append(testArgs, a)
			// -test.run X: the value may be the next word, as go test takes it.
			name := strings.TrimLeft(a, "-")[len("test."):]
			if !strings.Contains(name, "=") && !testBoolFlags[name] && i+1 < len(args) {
				i++
				testArgs = append(testArgs, args[i])
			}
		default:
			own = append(own, a)
		}
	}
	var o testOpts
	fs := testFlags(&o)
	if err := fs.Parse(own); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return exitError(exitUsage)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("test takes one package, got %q", fs.Args())
	}
	pkg := fs.Arg(0)
	if pkg == "" {
		pkg = "."
	}
	mem, err := parseSize(o.mem)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "unigo-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	name := strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_")
	if name == "" {
		name = "pkg"
	}
	img := filepath.Join(tmp, name+".test")
	if err := doBuild(pkg, buildOpts{output: img, verbose: o.verbose, tags: o.tags, test: true}); err != nil {
		return err
	}
	// A test runs in its package's folder, as go test runs it: the folder
	// is shared, read-only, and is the working directory (testdata/...).
	if dir, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output(); err == nil && o.wd == "" {
		o.vols = append(o.vols, strings.TrimSpace(string(dir))+":/pkg:ro")
		o.wd = "/pkg"
	}
	return boot(img, append([]string{name + ".test"}, testArgs...), mem, o.runOpts, tmp)
}
