package e2e

import (
	"strings"
	"testing"
	"time"
)

// stdlibPackages are COMPAT.md's packages, each with the tests that cannot
// pass in Unigo yet and why (COMPAT.md).
var stdlibPackages = []struct {
	pkg, skip string
	qemuSkip  string // skipped under QEMU (TCG) only
	flags     []string
}{
	{pkg: "strings"}, {pkg: "strconv"}, {pkg: "sort"}, {pkg: "bytes"}, {pkg: "unicode/utf8"},
	{pkg: "math"}, {pkg: "math/big"}, // TestLinkerGC skips itself: no go tool in the guest
	{pkg: "container/heap"},
	{pkg: "encoding/json"},
	{pkg: "encoding/binary"},
	{pkg: "regexp"}, // testdata files: unigo test shares the package's folder
	{pkg: "sync", skip: "^(TestIssue76126|TestMutexMisuse)$"}, // child processes
	{pkg: "sync/atomic"},
	// TestAllocs counts every goroutine's allocations while it runs: under
	// TCG's slow emulation the timers and goroutines that earlier tests left
	// still run then (it once saw 1 allocation per Background()).
	{pkg: "context", qemuSkip: "^TestAllocs$"},
	{pkg: "time", skip: "^TestLoadLocationFromTZData$",
		flags: []string{"-tags", "timetzdata"}}, // $GOROOT/lib/time's zoneinfo
	{pkg: "errors"}, {pkg: "fmt"},
}

// TestStdlib runs the standard library's own tests of COMPAT.md's packages
// inside Unigo (in -short mode, to keep CI quick) and wants them all to pass
// but the listed ones.
func TestStdlib(t *testing.T) {
	needKVM(t)
	runStdlib(t, nil, time.Minute)
}

// TestStdlibQEMU runs all of them under QEMU (TCG) too: real x86 semantics.
// Emulation is slow: math/big's tests take about 70 s there.
func TestStdlibQEMU(t *testing.T) {
	needQEMU(t)
	runStdlib(t, []string{"--vmm", "qemu"}, 5*time.Minute)
}

func runStdlib(t *testing.T, flags []string, limit time.Duration) {
	for _, p := range stdlibPackages {
		t.Run(strings.ReplaceAll(p.pkg, "/", "_"), func(t *testing.T) {
			args := append(append(append([]string{"test"}, flags...), p.flags...), p.pkg, "-test.short")
			skip := p.skip
			if len(flags) > 0 && flags[0] == "--vmm" && p.qemuSkip != "" {
				skip = strings.TrimPrefix(skip+"|"+p.qemuSkip, "|")
			}
			if skip != "" {
				args = append(args, "-test.skip="+skip)
			}
			r := runFor(t, limit, args...)
			if r.code != 0 || !strings.Contains(r.stdout, "PASS") {
				t.Fatalf("unigo %s: exit %d\n%s\n%s", strings.Join(args, " "), r.code, tail(r.stdout), tail(r.stderr))
			}
		})
	}
}
