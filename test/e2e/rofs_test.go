package e2e

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyFiles bakes a tree the test makes into an image with
// unigo build --files, walks and reads it in the guest, and wants what the
// same program prints walking the host's copy: names, modes, sizes and
// checksums, reads at offsets, and the errors of writing and of missing
// paths; and unigo run --files, which builds the package so. On both
// monitors.
func TestReadOnlyFiles(t *testing.T) {
	tree := t.TempDir()
	rng := rand.New(rand.NewSource(5))
	for name, size := range map[string]int{"a.txt": 11, "sub/blob.bin": 300 << 10, "sub/deeper/n.txt": 7, "empty": 0, "sub/x y.dat": 4097} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rng.Read(b)
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	native := filepath.Join(t.TempDir(), "walkfs")
	build := exec.Command("go", "build", "-o", native, ".")
	build.Dir = filepath.Join("testdata", "walkfs")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := exec.Command(native, tree).Output()
	if err != nil {
		t.Fatalf("the program on Linux: %v", err)
	}
	if !strings.Contains(string(want), "walk: <nil>") {
		t.Fatalf("the program on Linux:\n%s", want)
	}
	img := filepath.Join(t.TempDir(), "walkfs.img")
	r := run(t, "build", "-v", "--files", tree+":/srv", "-o", img, "./testdata/walkfs")
	entries := strings.Count(string(want), "\n") - 7 // the walk's lines: the tree's, /srv's own
	if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("read-only files: %d files and directories", entries)) {
		t.Fatalf("unigo build --files: exit status %d, want %d entries\n%s", r.code, entries, r.stderr)
	}
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, img, "--", "/srv", "create")
		if r.code != 0 || r.stdout != string(want)+"create: open /srv/new.txt: read-only file system\n" {
			t.Fatalf("exit status %d; stdout:\n%s\nwant (Linux):\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
		// unigo run builds a package with --files too.
		r = run(t, "run", "--vmm", vmm, "--files", tree+":/srv", "./testdata/walkfs", "--", "/srv")
		if r.code != 0 || r.stdout != string(want) {
			t.Fatalf("unigo run --files: exit status %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestFileServer serves a file baked into the image with the fileserver
// example (net/http.FileServer) through -p, and its folder's listing, on
// both monitors.
func TestFileServer(t *testing.T) {
	public := t.TempDir()
	page := make([]byte, 200<<10)
	rand.New(rand.NewSource(6)).Read(page)
	if err := os.MkdirAll(filepath.Join(public, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(public, "docs", "page.bin"), page, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "site.img")
	if r := run(t, "build", "--files", public+":/srv", "-o", img, "./../../examples/fileserver"); r.code != 0 {
		t.Fatalf("unigo build --files: exit status %d\n%s", r.code, r.stderr)
	}
	bothVMMs(t, func(t *testing.T, vmm string) {
		port := freePort(t)
		cmd, out, stderr := startInstance(t, "run", "--vmm", vmm, "-p", fmt.Sprintf("%d:80", port), img)
		defer cmd.Process.Kill()
		if line, err := out.ReadString('\n'); err != nil || line != "serving /srv on :80\n" {
			t.Fatalf("first line %q, %v; stderr:\n%s", line, err, stderr.String())
		}
		if got := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/docs/page.bin", port), stderr); !bytes.Equal(got, page) {
			t.Fatalf("GET /docs/page.bin: %d bytes, not the file's %d", len(got), len(page))
		}
		if got := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/docs/", port), stderr); !strings.Contains(string(got), `<a href="page.bin">page.bin</a>`) {
			t.Fatalf("GET /docs/: the listing lacks page.bin:\n%s", got)
		}
	})
}

// TestStatx asks statx(2) and readlinkat(2) about image files, a device and
// a missing path, and wants what the same program says of the host's copy.
func TestStatx(t *testing.T) {
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "a.txt"), []byte("eleven byte"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(tree, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	paths := func(root string) []string {
		return []string{filepath.Join(root, "a.txt"), filepath.Join(root, "sub"), "/dev/null", filepath.Join(root, "missing")}
	}
	native := filepath.Join(t.TempDir(), "statx")
	build := exec.Command("go", "build", "-o", native, ".")
	build.Dir = filepath.Join("testdata", "statx")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := exec.Command(native, paths(tree)...).Output()
	if err != nil {
		t.Fatalf("the program on Linux: %v", err)
	}
	want = []byte(strings.ReplaceAll(string(want), tree, "/srv"))
	img := filepath.Join(t.TempDir(), "statx.img")
	if r := run(t, "build", "--files", tree+":/srv", "-o", img, "./testdata/statx"); r.code != 0 {
		t.Fatalf("unigo build --files: exit status %d\n%s", r.code, r.stderr)
	}
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, append([]string{"run", "--vmm", vmm, img, "--"}, paths("/srv")...)...)
		if r.code != 0 || r.stdout != string(want) {
			t.Fatalf("exit status %d; stdout:\n%s\nwant (Linux):\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
		}
	})
}
