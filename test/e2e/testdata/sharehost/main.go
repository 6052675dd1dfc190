// Command sharehost works in a host folder share (its argument, such as
// /data) for a test that looks at the host's side: it reads what the host
// put there, writes, renames and removes, tries to reach files outside the
// folder through its links, and with a second argument "ro" tries to write
// to a read-only share.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"unigo.dev/unigo/test/e2e/testdata/errs"
)

func main() {
	dir := os.Args[1]
	p := func(s string) string { return filepath.Join(dir, s) }
	b, err := os.ReadFile(p("fromhost.txt"))
	fmt.Printf("from the host: %q %s\n", b, errs.Name(err))
	for _, link := range []string{"abs", "rel", "up/secret", "../secret"} {
		b, err := os.ReadFile(p(link))
		fmt.Printf("through %s: %s, secret seen: %v\n", link, errs.Name(err), string(b) == "host secret")
	}
	if len(os.Args) > 2 && os.Args[2] == "ro" {
		fmt.Println("write to a read-only share:", errs.Name(os.WriteFile(p("no.txt"), nil, 0o644)))
		fmt.Println("remove in a read-only share:", errs.Name(os.Remove(p("fromhost.txt"))))
		return
	}
	fmt.Println("mkdir:", errs.Name(os.Mkdir(p("out"), 0o755)))
	f, err := os.Create(p("out/new.txt"))
	fmt.Println("create:", errs.Name(err))
	f.WriteString("from the guest")
	fmt.Println("fsync:", errs.Name(f.Sync()))
	f.Close()
	fmt.Println("rename:", errs.Name(os.Rename(p("old.txt"), p("out/renamed.txt"))))
	fmt.Println("remove:", errs.Name(os.Remove(p("gone.txt"))))
	var st syscall.Statfs_t
	fmt.Println("statfs:", errs.Name(syscall.Statfs(dir, &st)), st.Type != 0x01021994 && st.Blocks > 0)
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		fmt.Println("entry:", e.Name(), e.IsDir())
	}
}
