// Compat runs standard-library test suites inside Unigo with `unigo test`
// and on Linux with `go test`, counts the top-level tests that pass, fail and
// skip in each, and prints the Markdown table of COMPAT.md.
//
//	go run ./bench/compat [-timeout 10m] [package...]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

var defaultPackages = []string{
	"strings", "strconv", "sort", "bytes", "unicode/utf8", "math", "math/big",
	"container/heap", "encoding/json", "encoding/binary", "regexp", "sync",
	"sync/atomic", "context", "time", "errors", "fmt",
}

// unigoFlags are extra `unigo test` flags per package, each explained in
// COMPAT.md: the guest has no file system yet, so time's tests take the time
// zone database compiled in.
var unigoFlags = map[string][]string{
	"time": {"-tags", "timetzdata"},
}

type counts struct {
	pass, fail, skip int
	failed           []string
	status           string
}

var result = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+)`)

func count(out string) counts {
	var c counts
	s := bufio.NewScanner(strings.NewReader(out))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		m := result.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		switch m[1] {
		case "PASS":
			c.pass++
		case "FAIL":
			c.fail++
			c.failed = append(c.failed, m[2])
		case "SKIP":
			c.skip++
		}
	}
	return c
}

func run(timeout time.Duration, name string, args ...string) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	status := "ok"
	switch {
	case ctx.Err() != nil:
		status = "timed out"
	case err != nil:
		status = err.Error()
	}
	return string(out), status
}

func main() {
	timeout := flag.Duration("timeout", 10*time.Minute, "time limit per package and setting")
	logDir := flag.String("logs", "", "folder to keep each run's output in")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		pkgs = defaultPackages
	}
	dir, err := os.MkdirTemp("", "unigo-compat-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	unigo := filepath.Join(dir, "unigo")
	if out, err := exec.Command("go", "build", "-o", unigo, "./cmd/unigo").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build unigo: %v\n%s", err, out)
		os.Exit(1)
	}
	fmt.Printf("date %s, `go run ./bench/compat`, top-level tests (-test.v), no -short\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| package | pass in Unigo | pass on Linux | fail in Unigo | skip in Unigo / Linux | Unigo run |")
	fmt.Println("|---|---|---|---|---|---|")
	notes := map[string][]string{}
	for _, p := range pkgs {
		args := append(append([]string{"test", "-m", "1G"}, unigoFlags[p]...), p, "-test.v", "-test.timeout="+timeout.String())
		uo, us := run(*timeout, unigo, args...)
		lo, ls := run(*timeout, "go", "test", "-count=1", "-v", "-timeout", timeout.String(), p)
		u, l := count(uo), count(lo)
		u.status, l.status = us, ls
		if *logDir != "" {
			name := strings.ReplaceAll(p, "/", "_")
			os.WriteFile(filepath.Join(*logDir, name+".unigo.txt"), []byte(uo), 0o644)
			os.WriteFile(filepath.Join(*logDir, name+".linux.txt"), []byte(lo), 0o644)
		}
		sort.Strings(u.failed)
		notes[p] = u.failed
		fmt.Printf("| %s | %d | %d | %d | %d / %d | %s |\n", p, u.pass, l.pass, u.fail, u.skip, l.skip, u.status)
	}
	fmt.Println()
	for _, p := range pkgs {
		if len(notes[p]) > 0 {
			fmt.Printf("- %s fails in Unigo: %s\n", p, strings.Join(notes[p], ", "))
		}
	}
}
