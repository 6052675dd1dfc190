// Command volmany makes more files on the block volume at /data than the
// kernel keeps nodes for (5,000 in 50 folders), reads every one back
// through a walk, then removes every other one and counts again.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	for d := 0; d < 50; d++ {
		dir := fmt.Sprintf("/data/m/d%02d", d)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Println("mkdir:", err)
			os.Exit(1)
		}
		for f := 0; f < 100; f++ {
			name := fmt.Sprintf("%s/f%03d", dir, f)
			if err := os.WriteFile(name, []byte(name), 0o644); err != nil {
				fmt.Println("create:", err)
				os.Exit(1)
			}
		}
	}
	count := func() (n, bad int) {
		filepath.WalkDir("/data/m", func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				fmt.Println("walk:", err)
				os.Exit(1)
			}
			if e.Type().IsRegular() {
				n++
				if b, err := os.ReadFile(p); err != nil || string(b) != p {
					bad++
				}
			}
			return nil
		})
		return
	}
	n, bad := count()
	fmt.Println("files:", n, "wrong:", bad)
	for d := 0; d < 50; d++ {
		for f := 0; f < 100; f += 2 {
			if err := os.Remove(fmt.Sprintf("/data/m/d%02d/f%03d", d, f)); err != nil {
				fmt.Println("remove:", err)
				os.Exit(1)
			}
		}
	}
	n, bad = count()
	fmt.Println("files:", n, "wrong:", bad)
}
