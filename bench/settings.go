package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// A setting is one way of running the example programs: how to start hello,
// and httpd answering on a host port, with a memory size in MiB where the
// setting has one (0: its default).
type setting struct {
	name  string
	short string // for plots
	unigo bool
	hello func(memMiB int) *exec.Cmd
	httpd func(port, memMiB int) *exec.Cmd
}

// programs are the binaries and images the settings run, built once.
type programs struct {
	dir          string
	unigo        string
	helloImg     string
	httpdImg     string
	helloBin     string // static Linux binaries (CGO_ENABLED=0)
	httpdBin     string
	vm           *linuxVM
	helloInitrd  string
	httpdInitrd  string
	bundle       string // OCI bundle with both binaries in its rootfs
	containers   []string
	containerSeq int
}

func build(dir, cache string) *programs {
	p := &programs{dir: dir}
	p.unigo = filepath.Join(dir, "unigo")
	static("-o", p.unigo, "./cmd/unigo") // as README.md installs it: without cgo, it starts sooner
	p.helloImg = filepath.Join(dir, "hello.img")
	p.httpdImg = filepath.Join(dir, "httpd.img")
	sh(p.unigo, "build", "-o", p.helloImg, "./examples/hello")
	sh(p.unigo, "build", "-o", p.httpdImg, "./examples/httpd")
	p.helloBin = filepath.Join(dir, "hello")
	p.httpdBin = filepath.Join(dir, "httpd")
	static("-o", p.helloBin, "./examples/hello")
	static("-o", p.httpdBin, "./examples/httpd")

	vm, err := findLinux(cache)
	if err != nil {
		warn("no Linux VM setting: %v", err)
	} else {
		vminit := filepath.Join(dir, "vminit")
		static("-o", vminit, "./bench/vminit")
		p.helloInitrd = filepath.Join(dir, "hello.cpio")
		p.httpdInitrd = filepath.Join(dir, "httpd.cpio")
		check(vm.initramfs(p.helloInitrd, p.helloBin, ""))
		check(vm.initramfs(p.httpdInitrd, p.httpdBin, vminit))
		p.vm = vm
	}

	if os.Geteuid() != 0 {
		warn("no container settings: OCI runtimes need root here")
		return p
	}
	p.bundle = filepath.Join(dir, "bundle")
	check(os.MkdirAll(filepath.Join(p.bundle, "rootfs"), 0o755))
	for _, b := range []string{p.helloBin, p.httpdBin} {
		data, err := os.ReadFile(b)
		check(err)
		check(os.WriteFile(filepath.Join(p.bundle, "rootfs", filepath.Base(b)), data, 0o755))
	}
	// runc before crun: crun 1.8 (Debian 12) refuses this machine's hybrid
	// cgroup layout ("cgroups in hybrid mode not supported").
	for _, rt := range []string{"runc", "crun", "runsc"} {
		if _, err := exec.LookPath(rt); err == nil {
			p.containers = append(p.containers, rt)
		}
	}
	if len(p.containers) == 0 {
		warn("no container settings: install runc and runsc (Debian: apt-get install runc runsc)")
	} else {
		c := exec.Command(p.containers[0], "spec")
		c.Dir = p.bundle
		out, err := c.CombinedOutput()
		check(err, out)
	}
	return p
}

func static(args ...string) {
	c := exec.Command("go", append([]string{"build"}, args...)...)
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := c.CombinedOutput()
	check(err, out)
}

// settings lists what runs here, the native process first: it is the
// baseline of every ratio.
func (p *programs) settings() []setting {
	s := []setting{{
		name: "native process", short: "native",
		hello: func(int) *exec.Cmd { return exec.Command(p.helloBin) },
		httpd: func(port, _ int) *exec.Cmd {
			c := exec.Command(p.httpdBin)
			c.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
			return c
		},
	}}
	runcOrCrun := ""
	for _, rt := range p.containers {
		if rt != "runsc" && runcOrCrun == "" {
			runcOrCrun = rt
		}
	}
	for _, rt := range p.containers {
		if rt != "runsc" && rt != runcOrCrun {
			continue
		}
		name, short := rt+" container", rt
		if rt == "runsc" {
			name, short = "gVisor (runsc, ptrace)", "gVisor"
		}
		s = append(s, setting{name: name, short: short,
			hello: func(int) *exec.Cmd { return p.container(rt, "/hello", 0) },
			httpd: func(port, _ int) *exec.Cmd { return p.container(rt, "/httpd", port) },
		})
	}
	if p.vm != nil {
		s = append(s, setting{name: "Linux VM, QEMU microvm (TCG)", short: "Linux VM",
			hello: func(m int) *exec.Cmd {
				return exec.Command("qemu-system-x86_64", p.vm.qemu(p.helloInitrd, orDefault(m, 128), 0)...)
			},
			httpd: func(port, m int) *exec.Cmd {
				return exec.Command("qemu-system-x86_64", p.vm.qemu(p.httpdInitrd, orDefault(m, 128), port, "/httpd")...)
			},
		})
	}
	s = append(s,
		setting{name: "Unigo, QEMU microvm (TCG)", short: "Unigo QEMU", unigo: true,
			hello: func(m int) *exec.Cmd { return exec.Command(p.unigo, p.unigoArgs(m, 0, "qemu", p.helloImg)...) },
			httpd: func(port, m int) *exec.Cmd { return exec.Command(p.unigo, p.unigoArgs(m, port, "qemu", p.httpdImg)...) },
		},
		setting{name: "Unigo, own monitor (KVM)", short: "Unigo KVM", unigo: true,
			hello: func(m int) *exec.Cmd { return exec.Command(p.unigo, p.unigoArgs(m, 0, "kvm", p.helloImg)...) },
			httpd: func(port, m int) *exec.Cmd { return exec.Command(p.unigo, p.unigoArgs(m, port, "kvm", p.httpdImg)...) },
		})
	return s
}

func (p *programs) unigoArgs(memMiB, port int, vmm, img string) []string {
	a := []string{"run", "--vmm", vmm}
	if memMiB != 0 {
		a = append(a, "-m", fmt.Sprintf("%dM", memMiB))
	}
	if port != 0 {
		a = append(a, "-p", fmt.Sprintf("%d:80", port))
	}
	return append(a, img)
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// container writes the bundle's config.json for one run of prog and returns
// the runtime's command: the container has its own namespaces but the
// host's network, as the native process has.
func (p *programs) container(rt, prog string, port int) *exec.Cmd {
	b, err := os.ReadFile(filepath.Join(p.bundle, "config.json"))
	check(err)
	var cfg map[string]any
	check(json.Unmarshal(b, &cfg))
	proc := cfg["process"].(map[string]any)
	proc["args"] = []string{prog}
	proc["terminal"] = false
	env := []any{"PATH=/"}
	if port != 0 {
		env = append(env, "PORT="+strconv.Itoa(port))
	}
	proc["env"] = env
	cfg["root"] = map[string]any{"path": filepath.Join(p.bundle, "rootfs"), "readonly": true}
	linux := cfg["linux"].(map[string]any)
	var ns []any
	for _, x := range linux["namespaces"].([]any) {
		if x.(map[string]any)["type"] != "network" {
			ns = append(ns, x)
		}
	}
	linux["namespaces"] = ns
	b, err = json.Marshal(cfg)
	check(err)
	// One config per run: runs of different runtimes may overlap in density.
	p.containerSeq++
	cfgDir := filepath.Join(p.dir, fmt.Sprintf("bundle-%d", p.containerSeq))
	check(os.MkdirAll(cfgDir, 0o755))
	check(os.WriteFile(filepath.Join(cfgDir, "config.json"), b, 0o644))
	id := fmt.Sprintf("unigo-bench-%d-%d", os.Getpid(), p.containerSeq)
	args := []string{"run", "--bundle", cfgDir, id}
	cleanups[id] = func() { exec.Command(rt, "delete", "--force", id).Run() }
	if rt == "runsc" {
		// The host's network, as for the other containers; ptrace is the
		// platform that runs without hardware virtualization.
		args = append([]string{"--network=host", "--platform=ptrace"}, args...)
	}
	c := exec.Command(rt, args...)
	cleanupOf[c] = id
	return c
}

// cleanups remove what a container run leaves (runsc's sandbox may outlive
// its runsc run); instance.stop calls them.
var (
	cleanups  = map[string]func(){}
	cleanupOf = map[*exec.Cmd]string{}
)

func cleanup(c *exec.Cmd) {
	if id, ok := cleanupOf[c]; ok {
		cleanups[id]()
		delete(cleanups, id)
		delete(cleanupOf, c)
	}
}
