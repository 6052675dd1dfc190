package main

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"unigo.dev/unigo"
	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/machine"
)

const inspectUsage = `usage: unigo inspect [--json] IMAGE

Describes a Unigo image without booting it: the program and its module, the
Go version and build settings it was built with (runtime/debug's build
info), the Unigo ABI version, the kernel components unigo build put in, the
memory the image takes and the bytes of each part: the Unigo kernel, the
network stack, the Go runtime, the standard library and the program with
its modules (from the symbol table; an image built with -ldflags=-s has
none, so only its sections are listed).
`

// inspection is what unigo inspect reports; --json prints it as it is.
type inspection struct {
	Image      string
	Bytes      int64
	ABI        uint32
	Path       string // the main package
	Module     string // the main module and its version
	GoVersion  string
	Settings   map[string]string // build settings (-tags, -ldflags, CGO_ENABLED, GOARCH...)
	Deps       []string          // modules, with versions
	NetDeps    []string          `json:",omitempty"` // those of Deps the network component brings (the program may need them too)
	Components []string
	Memory     struct {
		Start, End uint64 // guest-physical range of the image
		Zeroed     uint64 // bytes of zeroed data (BSS), inside the range
		DemandFrom uint64 // own monitor: zeroed objects from here are backed on first touch (0: none)
		ReadOnly   uint64 // own monitor: bytes from Start mapped read-only outside guest RAM (-m)
	}
	Sections map[string]uint64 // bytes: text, rodata, pclntab, data, bss, dwarf, symtab
	Parts    map[string]uint64 `json:",omitempty"` // code and read-only data by owner
}

func cmdInspect(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the description as JSON")
	fs.Usage = func() { fmt.Fprint(fs.Output(), inspectUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return exitError(exitUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("inspect: want one image; for example unigo inspect hello.img")
	}
	in, err := inspect(fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(in, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	in.print()
	return nil
}

func inspect(path string) (*inspection, error) {
	img, err := machine.LoadImage(path)
	if err != nil {
		return nil, err
	}
	img.Close()
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	in := &inspection{Image: path, Bytes: st.Size(), ABI: abi.Version, Settings: map[string]string{}}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: no Go build info (%v)", path, err)
	}
	in.Path, in.GoVersion = bi.Path, bi.GoVersion
	in.Module = bi.Main.Path + " " + bi.Main.Version
	for _, s := range bi.Settings {
		in.Settings[s.Key] = s.Value
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		in.Deps = append(in.Deps, d.Path+" "+d.Version)
	}
	in.Components = []string{"kernel: threads, memory, clock, console, pipes, epoll, /tmp and the image's files"}
	if img.Flags&abi.NoteFlagNet != 0 {
		in.Components = append(in.Components, "network: gVisor's netstack and the virtio-net driver (the program uses package net)")
	}
	if img.Flags&abi.NoteFlagDrivers != 0 {
		in.Components = append(in.Components, "file drivers: 9P shares, virtio-blk disks and block volumes (the program opens files)")
	}
	in.Memory.Start = ^uint64(0)
	for _, s := range img.Segments {
		in.Memory.Start = min(in.Memory.Start, s.Addr)
		in.Memory.End = max(in.Memory.End, s.Addr+s.MemSize)
		in.Memory.Zeroed += s.MemSize - s.FileSize
	}
	in.Memory.DemandFrom, _ = img.BSSHole()
	if rs, re := img.ROM(); re > rs {
		in.Memory.ReadOnly = re - rs
	}

	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	in.Sections = map[string]uint64{}
	for _, s := range f.Sections {
		if k := sectionKind(s.Name); k != "" {
			in.Sections[k] += s.Size
		}
	}
	if syms, err := f.Symbols(); err == nil {
		in.Parts = map[string]uint64{}
		// The modules gVisor needs come with the network component; the
		// program may need some of them too, and then shares their code.
		netMods := map[string]bool{}
		if img.Flags&abi.NoteFlagNet != 0 {
			netMods = kernelModules()
		}
		mods := []string{bi.Main.Path}
		for _, d := range bi.Deps {
			if !netMods[d.Path] {
				mods = append(mods, d.Path)
			} else {
				in.NetDeps = append(in.NetDeps, d.Path)
			}
		}
		for _, s := range syms {
			t := elf.ST_TYPE(s.Info)
			if (t == elf.STT_FUNC || t == elf.STT_OBJECT) && s.Section != elf.SHN_UNDEF && int(s.Section) < len(f.Sections) &&
				f.Sections[s.Section].Flags&elf.SHF_WRITE == 0 {
				in.Parts[partOf(s.Name, mods, netMods)] += s.Size
			}
		}
	}
	return in, nil
}

// sectionKind groups the Go linker's ELF sections.
func sectionKind(name string) string {
	switch {
	case name == ".text":
		return "text"
	case name == ".rodata" || name == ".typelink" || name == ".itablink":
		return "rodata"
	case name == ".gopclntab":
		return "pclntab"
	case name == ".data" || name == ".noptrdata" || name == ".go.buildinfo" || name == ".go.fipsinfo" || name == ".go.module":
		return "data"
	case name == ".bss" || name == ".noptrbss":
		return "bss"
	case strings.HasPrefix(name, ".debug_") || strings.HasPrefix(name, ".zdebug_"):
		return "dwarf"
	case name == ".symtab" || name == ".strtab":
		return "symtab"
	}
	return ""
}

// kernelModules returns the modules Unigo's own go.mod requires, which
// unigo build links the network component with: gVisor and what it needs.
func kernelModules() map[string]bool {
	mods := map[string]bool{}
	b, _ := unigo.KernelSource.ReadFile("go.mod")
	block := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "require" && f[1] == "(":
			block = true
		case block && len(f) >= 1 && f[0] == ")":
			block = false
		case block && len(f) >= 2:
			mods[f[0]] = true
		case len(f) >= 3 && f[0] == "require":
			mods[f[1]] = true
		}
	}
	return mods
}

// partOf names who a symbol's code or data belongs to, from its package:
// netModules are the network component's.
func partOf(sym string, modules []string, netModules map[string]bool) string {
	pkg := sym
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		if j := strings.Index(pkg[i:], "."); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else if j := strings.Index(pkg, "."); j >= 0 {
		pkg = pkg[:j]
	}
	switch {
	case strings.HasPrefix(pkg, "unigo.dev/unigo/guest/") || strings.HasPrefix(pkg, "unigo.dev/unigo/abi") || strings.HasPrefix(pkg, "unigo.dev/unigo/proto/"):
		return "Unigo kernel"
	case strings.HasPrefix(pkg, "gvisor.dev/"):
		return "network stack (gVisor)"
	case pkg == "runtime" || strings.HasPrefix(pkg, "runtime/internal") || strings.HasPrefix(pkg, "internal/runtime"):
		return "Go runtime"
	case pkg == "main":
		return "program and its modules"
	case strings.HasPrefix(pkg, "go:") || strings.HasPrefix(pkg, "type:"):
		return "type data and tables"
	}
	for m := range netModules {
		if pkg == m || strings.HasPrefix(pkg, m+"/") {
			return "network stack (gVisor)"
		}
	}
	for _, m := range modules {
		if m != "" && (pkg == m || strings.HasPrefix(pkg, m+"/")) {
			return "program and its modules"
		}
	}
	if first, _, _ := strings.Cut(pkg, "/"); !strings.Contains(first, ".") {
		return "standard library"
	}
	return "program and its modules"
}

func (in *inspection) print() {
	fmt.Printf("image       %s, %.2f MB, Unigo ABI %d\n", in.Image, float64(in.Bytes)/1e6, in.ABI)
	fmt.Printf("program     %s (module %s)\n", in.Path, strings.TrimSpace(in.Module))
	fmt.Printf("go          %s\n", in.GoVersion)
	var keys []string
	for k := range in.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		label := ""
		if i == 0 {
			label = "build"
		}
		fmt.Printf("%-11s %s=%s\n", label, k, in.Settings[k])
	}
	for i, c := range in.Components {
		label := ""
		if i == 0 {
			label = "components"
		}
		fmt.Printf("%-11s %s\n", label, c)
	}
	fmt.Printf("memory      [%#x, %#x): %.1f MiB, of which %.1f MiB zeroed data", in.Memory.Start, in.Memory.End,
		float64(in.Memory.End-in.Memory.Start)/(1<<20), float64(in.Memory.Zeroed)/(1<<20))
	if in.Memory.ReadOnly != 0 {
		fmt.Printf("; the first %.1f MiB, code and read-only data, mapped read-only outside guest RAM on the own monitor",
			float64(in.Memory.ReadOnly)/(1<<20))
	}
	if in.Memory.DemandFrom != 0 {
		fmt.Printf("; from %#x (%.1f MiB) backed on first touch on the own monitor", in.Memory.DemandFrom,
			float64(in.Memory.End-in.Memory.DemandFrom)/(1<<20))
	}
	fmt.Println()
	printBytes("sections", in.Sections)
	if len(in.Parts) > 0 {
		printBytes("code+rodata", in.Parts)
	} else {
		fmt.Println("code+rodata no symbol table (built with -ldflags=-s): no breakdown by part")
	}
	fmt.Printf("modules     %d", len(in.Deps))
	if len(in.Deps) > 0 {
		fmt.Printf(": %s", strings.Join(in.Deps, ", "))
	}
	fmt.Println()
	if len(in.NetDeps) > 0 {
		fmt.Printf("            (the network component brings %s)\n", strings.Join(in.NetDeps, ", "))
	}
}

// printBytes prints a labelled map, largest first.
func printBytes(label string, m map[string]uint64) {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	for i, k := range keys {
		if i > 0 {
			label = ""
		}
		fmt.Printf("%-11s %-26s %8.1f KB\n", label, k, float64(m[k])/1e3)
	}
}
