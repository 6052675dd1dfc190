package qemu

import (
	"bytes"
	"debug/elf"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/build"
	"unigo.dev/unigo/vmm/machine"
)

// TestReadCtl feeds the control-channel parser what the kernel writes, with
// a real image for the symbols, and checks the status, the --debug lines and
// the symbolized crash report.
func TestReadCtl(t *testing.T) {
	img := filepath.Join(t.TempDir(), "hello.img")
	if err := build.Build(build.Options{Package: "./examples/hello", Output: img, Dir: "../.."}); err != nil {
		t.Fatal(err)
	}
	im, err := machine.LoadImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	mainMain := symbol(t, img, "main.main")
	var stderr bytes.Buffer

	res := readCtl(strings.NewReader("unimpl 163\nunimpl 163\nunimpl 999\nexit 255\n"), im, &stderr)
	if res.status != 255 || res.report != "" {
		t.Errorf("status %d, report %q; want 255 and none", res.status, res.report)
	}
	if got := stderr.String(); got != "unigo: unimplemented system call acct (163) returned ENOSYS\n"+
		"unigo: unimplemented system call a number out of range returned ENOSYS\n" {
		t.Errorf("stderr %q: want each system call once, by name", got)
	}

	frame := make([]string, abi.FrameWords)
	for i := range frame {
		frame[i] = "0"
	}
	frame[abi.FrameVector] = "e"
	frame[abi.FrameRIP] = fmt.Sprintf("%x", mainMain+4)
	frame[abi.FrameCS] = "8"
	in := fmt.Sprintf("fault dead %s\nbt %x\nexit 134\n", strings.Join(frame, " "), mainMain+8)
	res = readCtl(strings.NewReader(in), im, &stderr)
	for _, want := range []string{"unigo: guest stopped: CPU exception #PF page fault in kernel code",
		"faulting address 0xdead", "rip 0x", "main.main+0x4", "backtrace:", "main.main+0x8", "cs 0x8"} {
		if !strings.Contains(res.report, want) {
			t.Errorf("report lacks %q:\n%s", want, res.report)
		}
	}

	res = readCtl(strings.NewReader("fatal out of frames\nexit 134\n"), im, &stderr)
	if res.report != "unigo: guest stopped: kernel: out of frames\n" || res.status != 134 {
		t.Errorf("fatal: report %q, status %d", res.report, res.status)
	}
	if res = readCtl(strings.NewReader("exit 300\nexit x\n"), im, &stderr); res.status != -1 {
		t.Errorf("bad exit lines gave status %d, want none (-1)", res.status)
	}
}

func symbol(t *testing.T, img, name string) uint64 {
	t.Helper()
	f, err := elf.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("no %s in the image", name)
	return 0
}
