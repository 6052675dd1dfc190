package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVolumeTool runs unigo volume on real files: create makes a sparse
// volume that checks clean and lists empty; the errors name the fix.
func TestVolumeTool(t *testing.T) {
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol.img")
	zeros := filepath.Join(dir, "zeros.img")
	os.WriteFile(zeros, make([]byte, 1<<20), 0o644)
	if r := run(t, "volume", "create", "--size", "1G", vol); r.code != 0 {
		t.Fatalf("create: exit status %d\n%s", r.code, r.stderr)
	}
	st, err := os.Stat(vol)
	if err != nil || st.Size() != 1<<30 {
		t.Fatalf("the volume: %v, %v", st, err)
	}
	if r := run(t, "volume", "fsck", vol); r.code != 0 || !strings.Contains(r.stdout, "clean") {
		t.Fatalf("fsck: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "volume", "ls", vol); r.code != 0 || r.stdout != "" {
		t.Fatalf("ls of an empty volume: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "--size", "1G", vol}, "remove the file first"},
		{[]string{"volume", "create", "--size", "1M", filepath.Join(dir, "small.img")}, "at least 4M"},
		{[]string{"volume", "create", vol}, "--size"},
		{[]string{"volume", "cp", vol + ":/missing", dir}, "does not exist"},
		{[]string{"volume", "fsck", filepath.Join(dir, "nothing.img")}, "no such file"},
		{[]string{"volume", "ls", zeros}, "not a Unigo volume"},
	} {
		if r := run(t, c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("unigo %s: exit status %d, stderr %q; want %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}
