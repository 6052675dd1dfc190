package machine

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
	"unigo.dev/unigo/vmm/kvm"
)

// counters are what Run counts for Stats; the vCPU thread writes them and
// any goroutine may read them.
type counters struct {
	started  atomic.Int64 // UnixNano when Run began; 0 before
	tid      atomic.Int32 // the vCPU thread
	exits    [32]atomic.Uint64
	hcalls   [abi.HcDebug + 1]atomic.Uint64
	injected [2]atomic.Uint64 // the timer's and the devices' interrupts
}

func (c *counters) exit(reason uint32) {
	if int(reason) < len(c.exits) {
		c.exits[reason].Add(1)
	}
}

func (c *counters) hcall(nr uint64) {
	if nr < uint64(len(c.hcalls)) {
		c.hcalls[nr].Add(1)
	}
}

// Stats is a snapshot of a running machine, for metrics.
type Stats struct {
	Uptime     time.Duration     // since Run began
	VCPUTime   time.Duration     // CPU time of the vCPU thread: guest and monitor work on it
	Exits      map[string]uint64 // VM exits by reason (kvm.ExitName, lower case, without KVM_EXIT_)
	Hypercalls map[string]uint64 // by name
	Syscalls   map[string]uint64 // the guest's system calls, by name: the kernel counts them (abi.SyscallsAddr)
	Gated      uint64            // of them, those that entered the kernel through a gate's jump (abi.GatesSize)
	Interrupts map[string]uint64 // injected, by kind: timer, device
	KVM        map[string]uint64 // KVM's own counters of the vCPU's events, by its names (exits, pf_taken...); nil where it has none
	MemSize    uint64            // bytes of guest RAM
	MemTouched uint64            // bytes of it the host has backed: pages the guest touched
	Net        *NetStats         // nil without a network device
	Disks      []DiskStats
	Shares     []ShareStats
}

// NetStats count the guest's network device's frames and bytes, and the
// forwarded connections its socket device carried, with their bytes.
type NetStats struct {
	RxFrames, RxBytes, TxFrames, TxBytes  uint64
	Streams, StreamRxBytes, StreamTxBytes uint64
}

// DiskStats count one block device's requests and bytes.
type DiskStats struct {
	Name                                          string // vda, vdb... or the volume's mount point
	Reads, ReadBytes, Writes, WriteBytes, Flushes uint64
}

// ShareStats count one folder share's 9P requests and bytes.
type ShareStats struct {
	Path                        string // in the guest
	Requests, BytesIn, BytesOut uint64
}

var hcallNames = map[uint64]string{
	abi.HcExit: "exit", abi.HcConsoleWrite: "console_write", abi.HcHalt: "halt",
	abi.HcUnimplemented: "unimplemented", abi.HcFatal: "fatal", abi.HcFault: "fault", abi.HcDebug: "debug",
}

// Stats returns the machine's counters. Safe to call from any goroutine
// while Run runs.
func (m *Machine) Stats() Stats {
	s := Stats{
		Exits:      map[string]uint64{},
		Hypercalls: map[string]uint64{},
		Interrupts: map[string]uint64{"timer": m.stats.injected[0].Load(), "device": m.stats.injected[1].Load()},
		MemSize:    m.mem.Size(),
		MemTouched: m.mem.resident(),
	}
	if t := m.stats.started.Load(); t != 0 {
		s.Uptime = time.Since(time.Unix(0, t))
	}
	if tid := m.stats.tid.Load(); tid != 0 {
		s.VCPUTime = threadCPU(int(tid))
	}
	for r := range m.stats.exits {
		if n := m.stats.exits[r].Load(); n != 0 {
			s.Exits[strings.ToLower(strings.TrimPrefix(kvm.ExitName(uint32(r)), "KVM_EXIT_"))] = n
		}
	}
	for nr, name := range hcallNames {
		s.Hypercalls[name] = m.stats.hcalls[nr].Load()
	}
	s.Syscalls = m.syscallCounts()
	s.Gated = s.Syscalls[gatedName]
	delete(s.Syscalls, gatedName)
	s.KVM = m.kvmEvents()
	if m.net != nil {
		c := &m.net.Counters
		s.Net = &NetStats{RxFrames: c.RxFrames.Load(), RxBytes: c.RxBytes.Load(), TxFrames: c.TxFrames.Load(), TxBytes: c.TxBytes.Load()}
		for _, v := range m.vsock {
			s.Net.Streams, s.Net.StreamRxBytes, s.Net.StreamTxBytes = v.Counters.Conns.Load(), v.Counters.RxBytes.Load(), v.Counters.TxBytes.Load()
		}
	}
	for i, d := range m.disks {
		name := "vd" + string(rune('a'+i))
		if mnt := m.cfg.Disks[i].Mount; mnt != "" {
			name = mnt
		}
		c := &d.Counters
		s.Disks = append(s.Disks, DiskStats{Name: name, Reads: c.Reads.Load(), ReadBytes: c.ReadBytes.Load(),
			Writes: c.Writes.Load(), WriteBytes: c.WriteBytes.Load(), Flushes: c.Flushes.Load()})
	}
	for i, sh := range m.shares {
		c := &sh.Counters
		s.Shares = append(s.Shares, ShareStats{Path: m.cfg.Shares[i].Path, Requests: c.Requests.Load(), BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load()})
	}
	return s
}

// kvmEvents reads KVM's counters of the vCPU (kvm.Stats), opened at the
// first look: only metrics ask.
func (m *Machine) kvmEvents() map[string]uint64 {
	k := &m.kvmStats
	k.once.Do(func() {
		if m.cpu != nil {
			k.s, _ = m.cpu.OpenStats() // an older KVM has none: no such metrics
		}
	})
	if k.s == nil {
		return nil
	}
	e, _ := k.s.Events()
	return e
}

// gatedName is the count of the calls that came through a gate's jump in
// syscallCounts' answer, which Stats moves to Gated.
const gatedName = " gated"

// syscallCounts reads the kernel's system call counters, the nonzero ones by
// name: a Linux call's, "unigo_net" for the network component's private
// calls, "other" for numbers Linux does not have.
func (m *Machine) syscallCounts() map[string]uint64 {
	b, err := m.mem.Slice(abi.SyscallsAddr, abi.SyscallSlots*8)
	if err != nil {
		return nil
	}
	counts := map[string]uint64{}
	for slot := range abi.SyscallSlots {
		n := atomic.LoadUint64((*uint64)(unsafe.Pointer(&b[slot*8]))) // the vCPU may be counting
		if n == 0 {
			continue
		}
		name := "other"
		switch {
		case slot == abi.SyscallSlotGated:
			name = gatedName
		case slot == abi.SyscallSlotNet:
			name = "unigo_net"
		case slot < linux.NumSyscalls && linux.SyscallNames[slot] != "":
			name = linux.SyscallNames[slot]
		case slot < abi.SyscallSlotNet:
			name = strconv.Itoa(slot)
		}
		counts[name] += n
	}
	return counts
}

// threadCPU is the CPU time thread tid of this process has had: the first
// field of /proc/self/task/TID/schedstat, in nanoseconds
// (Documentation/scheduler/sched-stats.rst).
func threadCPU(tid int) time.Duration {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/schedstat")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return 0
	}
	ns, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return time.Duration(ns)
}

// resident counts the bytes of guest RAM backed by host pages, with
// mincore(2): the pages the guest (or the loader) touched.
func (m *Memory) resident() uint64 {
	page := os.Getpagesize()
	vec := make([]byte, (len(m.b)+page-1)/page)
	_, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(m.b))), uintptr(len(m.b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if e != 0 {
		return 0
	}
	n := uint64(0)
	for _, v := range vec {
		n += uint64(v & 1)
	}
	return n * uint64(page)
}
