package kvm

import "testing"

// TestStats opens a real vCPU's statistics and finds KVM's event counters
// in them, each read back as a number.
func TestStats(t *testing.T) {
	sys, err := Open()
	if err != nil {
		t.Skipf("no usable /dev/kvm: %v", err)
	}
	defer sys.Close()
	if sys.CheckExtension(CapBinaryStatsFD) <= 0 {
		t.Skip("this KVM has no binary statistics (KVM_CAP_BINARY_STATS_FD, Linux 5.14)")
	}
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenStats()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Events()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"exits", "pf_taken", "halt_exits"} {
		if _, ok := e[name]; !ok {
			t.Errorf("no %s among KVM's %d event counters", name, len(e))
		}
	}
	if _, ok := e["halt_poll_success_ns"]; ok {
		t.Error("a counter in nanoseconds taken for an event count")
	}
}
