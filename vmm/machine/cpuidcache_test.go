package machine

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"unigo.dev/unigo/vmm/kvm"
)

// TestCPUIDCache asks the real KVM once, then reads its answer from the
// file: what a later boot gets is what the file says (a leaf changed in the
// file shows), a damaged file is asked for again and rewritten, and the file
// of an earlier host boot is removed.
func TestCPUIDCache(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("no /dev/kvm: %v", err)
	}
	sys, err := kvm.Open()
	if err != nil {
		t.Skipf("KVM: %v", err)
	}
	defer sys.Close()
	name := cpuidFileName()
	if name == "" {
		t.Skip("no /proc/sys/kernel/random/boot_id")
	}
	dir := t.TempDir()
	earlier := filepath.Join(dir, "0123456789abcdef")
	if err := os.WriteFile(earlier, []byte("an earlier host boot"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Machine{sys: sys, cfg: Config{CPUIDCache: dir}}
	// KVM's leaves name the host CPU that answered (zeroAPICIDs).
	same := func(a, b []kvm.CPUIDEntry) bool {
		a, b = append([]kvm.CPUIDEntry(nil), a...), append([]kvm.CPUIDEntry(nil), b...)
		zeroAPICIDs(a)
		zeroAPICIDs(b)
		return reflect.DeepEqual(a, b)
	}
	want, err := sys.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.supportedCPUID()
	if err != nil || !same(got, want) {
		t.Fatalf("first boot: %d leaves, %v; KVM has %d", len(got), err, len(want))
	}
	if _, err := os.Stat(earlier); !os.IsNotExist(err) {
		t.Errorf("the earlier boot's file is still there: %v", err)
	}
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// A later boot reads the file, not KVM: change leaf 0's vendor there.
	changed, _ := decodeCPUID(b)
	changed[0].Ebx ^= 1
	if err := os.WriteFile(path, encodeCPUID(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := m.supportedCPUID(); err != nil || !reflect.DeepEqual(got, changed) {
		t.Errorf("later boot: %v, or not the file's leaves", err)
	}

	// A damaged file (cut short) is replaced by KVM's answer.
	if err := os.WriteFile(path, b[:len(b)-7], 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = m.supportedCPUID()
	if err != nil || !same(got, want) {
		t.Errorf("damaged file: %v, or not KVM's leaves", err)
	}
	if b2, err := os.ReadFile(path); err != nil || string(b2) != string(encodeCPUID(got)) {
		t.Errorf("damaged file not rewritten: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("UNIGOCP1"), append([]byte("UNIGOCP1\x00\x00\x00\x00"), b[12:]...), append([]byte("XNIGOCP1"), b[8:]...)} {
		if _, ok := decodeCPUID(bad); ok {
			t.Errorf("decodeCPUID took %q...", bad[:min(len(bad), 12)])
		}
	}
}
