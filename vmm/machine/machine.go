// Package machine is Unigo's monitor: it creates a KVM virtual machine for an
// image, starts its vCPU directly in 64-bit mode as the abi package's entry
// contract says, and serves the guest's hypercalls until the guest exits.
package machine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/kvm"
	"unigo.dev/unigo/vmm/virtio"
)

// Config says how to run an image.
type Config struct {
	MemSize uint64   // bytes of guest RAM
	Args    []string // os.Args of the guest program; Args[0] is its name
	Env     []string // KEY=VALUE
	Cmdline string   // kernel command line
	Debug   bool     // report unimplemented system calls
	Stdout  io.Writer
	Stderr  io.Writer
	Net     NetBackend // a network behind a virtio-net device; nil: no device
	Shares  []Share    // host directories, each behind a virtio 9P device
	Disks   []Disk     // host files, each behind a virtio-blk device
	// ShareImage maps all of the image's read-only part from its file,
	// shared with every instance, rather than mapping its ROM file
	// (ROMFile) or copying the 2 MiB pages it fills into this instance's
	// huge pages (Memory): KVM takes a fault per 4 KiB page, a slower start.
	ShareImage bool
	// Debugger, if set, takes the guest's breakpoints and steps; the guest
	// first stops for it at runtime.main (firstUserPC).
	Debugger Debugger
	// Profile, if set, is the file of the image's start profile: the guest
	// RAM pages a boot touches, recorded at the first boot and backed before
	// the later ones start (profile.go).
	Profile string
	// ROMFile, if set, is where the image's ROM file goes, a prefix of
	// its name: the image's code and read-only data in a file whose pages
	// the host keeps in 2 MiB folios, shared by the image's instances
	// (romfile.go). Unused with ShareImage.
	ROMFile string
	// CPUIDCache, if set, is the folder where the CPUID leaves KVM
	// supports are kept between boots, since asking KVM is slow on a
	// nested host (cpuidcache.go).
	CPUIDCache string
}

// Machine is one VM running one image.
type Machine struct {
	cfg  Config
	img  *Image
	sys  *kvm.System
	vm   *kvm.VM
	cpu  *kvm.VCPU
	mem  *Memory
	info []byte
	// reported holds the system calls already reported as unimplemented.
	reported map[uint64]bool
	inRun    atomic.Bool // the vCPU thread is in KVM_RUN
	// lateWrite applies a device register write KVM kept in its coalesced
	// MMIO ring (coalesceLateWrites).
	lateWrite func(*kvm.MMIO)
	ticker    *time.Ticker
	pid, tid  int // the vCPU thread, for kicks

	net        *virtio.Net
	vsock      []*virtio.Vsock // the socket device for forwarded TCP connections, if -p gives any
	shares     []*virtio.P9
	disks      []*virtio.Blk
	devPending atomic.Bool   // the device raised its interrupt
	wake       chan struct{} // ends a halt early: the device has work
	stats      counters
	kvmStats   struct {
		once sync.Once
		s    *kvm.Stats // nil where KVM has none
	}

	profile struct {
		key    profileKey
		record bool // at the guest's exit, its first listen(2) or after profileAfter
	}

	romFile struct {
		path  string
		write bool          // at this boot, beside the guest
		done  chan struct{} // closed when written; nil if not writing
	}

	kvmclock  bool   // KVM offers kvmclock (CPUID 0x40000001)
	entryStop uint64 // the monitor's breakpoint at the runtime's entry, until hit
	entryByte byte   // the byte it replaced
}

// tick is the period of the guest's timer interrupt.
const tick = 10 * time.Millisecond

// startTicker kicks the calling thread (the vCPU's) out of KVM_RUN every tick
// with a signal, so that Run can inject the timer interrupt. SIGURG is the
// signal the Go runtime already ignores where it was not asked for.
func (m *Machine) startTicker() (stop func()) {
	m.pid, m.tid = syscall.Getpid(), syscall.Gettid()
	pid, tid := m.pid, m.tid
	done := make(chan struct{})
	t := time.NewTicker(tick)
	m.ticker = t
	go func() {
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if m.inRun.Load() {
					syscall.Tgkill(pid, tid, syscall.SIGURG)
				}
			}
		}
	}()
	return func() { close(done) }
}

// New creates the VM, loads img and prepares the vCPU.
func New(img *Image, cfg Config) (*Machine, error) {
	if err := checkMemSize(cfg.MemSize); err != nil {
		return nil, err
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	sys, err := kvm.Open()
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, img: img, sys: sys, reported: map[uint64]bool{}, wake: make(chan struct{}, 1)}
	if cfg.Net != nil {
		m.cfg.Cmdline = strings.TrimSpace(virtioNetWord + " " + m.cfg.Cmdline)
	}
	if wantsStreams(cfg.Net) {
		m.cfg.Cmdline = vsockWord + " " + m.cfg.Cmdline
	}
	if len(cfg.Shares) > abi.MaxShares {
		return nil, fmt.Errorf("%d shares; at most %d", len(cfg.Shares), abi.MaxShares)
	}
	if len(cfg.Disks) > abi.MaxDisks {
		return nil, fmt.Errorf("%d disks; at most %d", len(cfg.Disks), abi.MaxDisks)
	}
	m.cfg.Cmdline = strings.TrimSpace(shareWords(cfg.Shares) + diskWords(cfg.Disks) + m.cfg.Cmdline)
	if err := m.setup(); err != nil {
		m.Close()
		return nil, err
	}
	if cfg.Debugger != nil {
		if err := m.plantEntryStop(); err != nil {
			m.Close()
			return nil, err
		}
	}
	m.startShares()
	if err := m.startDisks(); err != nil {
		m.Close()
		return nil, err
	}
	if cfg.Net != nil {
		if err := m.startNet(); err != nil {
			m.Close()
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	m.coalesceLateWrites()
	return m, nil
}

func (m *Machine) setup() (err error) {
	hs, he := m.img.BSSHole()
	var rs, re uint64
	if m.sys.CheckExtension(kvm.CapReadonlyMem) > 0 {
		rs, re = m.img.ROM()
	}
	// RAM continues above the gaps, and must end below the doorbell: in a
	// guest that large, the gaps go (the ROM first) and RAM holds the image.
	if m.cfg.MemSize+(re-rs)+(he-hs) > abi.MaxMemSize {
		rs, re = 0, 0
	}
	if m.cfg.MemSize+(he-hs) > abi.MaxMemSize {
		hs, he = 0, 0
	}
	if m.mem, err = newMemory(m.cfg.MemSize, rs, re, hs, he, !m.cfg.ShareImage && hostHugePages()); err != nil {
		return err
	}
	// Backing the start profile's pages is host page allocation, 0.3-0.6 ms
	// here, that needs nothing of KVM's: it runs beside the VM's creation.
	// Whatever the loader writes meanwhile lands in the same pages.
	replayed := make(chan struct{})
	go func() {
		defer close(replayed)
		m.replayProfile()
	}()
	defer func() { <-replayed }()
	if m.vm, err = m.sys.CreateVM(); err != nil {
		return err
	}
	// A vCPU without KVM's local APIC turns a static key on when it is
	// created and off when it is destroyed (kvm_has_noapic_vcpu,
	// arch/x86/kvm/lapic.c), and each turn rewrites KVM's code with IPIs to
	// every host CPU: 0.1-0.3 ms of each start and each exit here while no
	// other VM runs. A split irqchip (api.rst, KVM_CAP_SPLIT_IRQCHIP)
	// gives the vCPU that local APIC and no PIC or I/O APIC, so
	// KVM_INTERRUPT still injects the monitor's vectors, as ExtINT through
	// LINT0, which KVM leaves unmasked on the boot CPU
	// (KVM_X86_QUIRK_LINT0_REENABLED). The kernel never programs it here:
	// only under PVH (pvh.go). A KVM without the capability goes on without.
	m.vm.EnableCap(kvm.CapSplitIRQChip, 0)
	// KVM on Intel wants three pages for its real-mode TSS; put them in the
	// hole just below the doorbell, where there is no RAM.
	if err := m.vm.SetTSSAddr(abi.DoorbellAddr - 0x4000); err != nil {
		return err
	}
	ram := m.mem.Map()
	for i, r := range ram {
		host, _ := m.mem.Slice(r.Addr, r.Size)
		if err := m.vm.SetMemory(uint32(i), r.Addr, host, 0); err != nil {
			return err
		}
	}
	if at, rom := m.mem.ROM(); rom != nil {
		if err := m.vm.SetMemory(uint32(len(ram)), at, rom, kvm.MemReadonly); err != nil {
			return err
		}
	}
	if m.mem.romMapped, err = m.mapROMFile(); err != nil {
		return err
	}
	if err := m.img.load(m.mem); err != nil {
		return err
	}
	if m.romFile.write {
		m.romFile.done = make(chan struct{})
		go m.writeROMFile()
	}
	if err := m.mem.buildPageTables(); err != nil {
		return err
	}
	if m.cpu, err = m.vm.CreateVCPU(0); err != nil {
		return err
	}
	xcr0, err := m.setCPUID()
	if err != nil {
		return err
	}
	if err := m.setCPUState(xcr0); err != nil {
		return err
	}
	return m.writeBootInfo()
}

// setCPUID gives the guest the host's supported CPUID leaves and returns the
// XCR0 value to use: x87, SSE and AVX state where XSAVE offers them. Larger
// state components (AVX-512, AMX) stay off, so the runtime does not use them.
func (m *Machine) setCPUID() (uint64, error) {
	ents, err := m.supportedCPUID()
	if err != nil {
		return 0, err
	}
	var xcr0 uint64
	for i := range ents {
		e := &ents[i]
		switch {
		case e.Function == 1:
			if e.Ecx&(1<<26) != 0 { // XSAVE
				e.Ecx |= 1 << 27 // OSXSAVE: the monitor enables CR4.OSXSAVE
			}
		case e.Function == 0xd && e.Index == 0:
			xcr0 = uint64(e.Eax) & 0x7
		case e.Function == 0x40000001:
			m.kvmclock = e.Eax&(1<<3) != 0 // KVM_FEATURE_CLOCKSOURCE2
		}
	}
	zeroAPICIDs(ents)
	return xcr0, m.cpu.SetCPUID(ents)
}

// zeroAPICIDs gives the leaves that name the CPU they run on the vCPU's
// APIC ID, 0: KVM reports the host CPU's that answered (SDM Vol. 2A, CPUID
// leaves 01H EBX[31:24], 0BH and 1FH EDX; AMD's 8000_001EH EAX).
func zeroAPICIDs(ents []kvm.CPUIDEntry) {
	for i := range ents {
		switch e := &ents[i]; e.Function {
		case 1:
			e.Ebx &^= 0xff << 24
		case 0xb, 0x1f:
			e.Edx = 0
		case 0x8000001e:
			e.Eax = 0
		}
	}
}

// Control-register and EFER bits (Intel SDM Vol. 3A §2.5, §2.2.1).
const (
	cr0PE = 1 << 0
	cr0MP = 1 << 1
	cr0ET = 1 << 4
	cr0NE = 1 << 5
	cr0WP = 1 << 16
	cr0PG = 1 << 31

	cr4PAE        = 1 << 5
	cr4OSFXSR     = 1 << 9
	cr4OSXMMEXCPT = 1 << 10
	cr4FSGSBASE   = 1 << 16
	cr4OSXSAVE    = 1 << 18

	eferSCE = 1 << 0
	eferLME = 1 << 8
	eferLMA = 1 << 10

	msrTSC = 0x10

	msrKVMSystemTimeNew = 0x4b564d01 // Linux's Documentation/virt/kvm/x86/msr.rst
)

func (m *Machine) setCPUState(xcr0 uint64) error {
	s, err := m.cpu.GetSregs()
	if err != nil {
		return err
	}
	code := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: 0x18, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0PG
	s.CR3 = abi.PML4Addr
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT | cr4FSGSBASE
	if xcr0 != 0 {
		s.CR4 |= cr4OSXSAVE
	}
	s.EFER = eferSCE | eferLME | eferLMA
	if err := m.cpu.SetSregs(&s); err != nil {
		return err
	}
	if xcr0 != 0 {
		if err := m.cpu.SetXCR0(xcr0); err != nil {
			return err
		}
	}
	r := kvm.Regs{RIP: m.img.Entry, RDI: abi.BootInfoAddr, RFLAGS: 2}
	return m.cpu.SetRegs(&r)
}

func (m *Machine) writeBootInfo() error {
	khz, err := m.cpu.TSCkHz()
	if err != nil {
		return err
	}
	bi := abi.BootInfo{
		MemSize: m.mem.Top(), // where RAM ends; the map shows the gaps below (the ROM, the hole)
		TSCkHz:  khz,
		Args:    m.cfg.Args,
		Env:     m.cfg.Env,
		Cmdline: m.cfg.Cmdline,
		Map:     m.mem.Map(),
	}
	if m.cfg.Debug {
		bi.Flags |= abi.BootFlagDebug
	}
	if m.cfg.Debugger != nil {
		bi.Flags |= abi.BootFlagDebugger
	}
	bi.Flags |= abi.BootFlagIRQEvent // vmm/virtio.Net
	// kvmclock: KVM fills the area in at the vCPU's first entry; the
	// kernel takes the TSC frequency from it.
	if m.kvmclock && m.cpu.SetMSR(msrKVMSystemTimeNew, abi.KvmclockAddr|1) == nil {
		bi.Flags |= abi.BootFlagKvmclock
	}
	info, _ := m.mem.Slice(abi.BootInfoAddr, abi.BiSize)
	strs, _ := m.mem.Slice(abi.StringsAddr, abi.StringsSize)
	m.info = info
	return bi.Encode(info, strs)
}

// Close releases the VM and its memory.
func (m *Machine) Close() {
	if m.romFile.done != nil {
		<-m.romFile.done // it reads the image, which the caller closes next
	}
	if m.kvmStats.s != nil {
		m.kvmStats.s.Close()
	}
	if m.cpu != nil {
		m.cpu.Close()
	}
	if m.vm != nil {
		m.vm.Close()
	}
	if m.mem != nil {
		m.mem.free()
	}
	m.sys.Close()
}

// ExitError reports a guest that stopped abnormally; its message holds the
// crash report.
type ExitError struct{ Report string }

func (e *ExitError) Error() string { return e.Report }

// Run runs the guest until it exits and returns its exit status.
func (m *Machine) Run() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The vCPU's thread keeps its P in the guest (kvm.VCPU.RunOnce): the
	// ticker, the devices and the network need another one.
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	tsc, err := m.cpu.GetMSR(msrTSC)
	if err != nil {
		return 0, err
	}
	abi.SetClock(m.info, uint64(time.Now().UnixNano()), tsc)
	m.stats.started.Store(time.Now().UnixNano())
	m.stats.tid.Store(int32(syscall.Gettid()))
	run := m.cpu.Run
	stop := m.startTicker()
	defer stop()
	lastTick := time.Now()
	started := lastTick
	pending := false
	ioPending := false // the last exit was MMIO, not yet completed by KVM
	for {
		// The timer: one interrupt per tick, injected when the guest can
		// take it (api.rst 4.16 and 5, request_interrupt_window).
		now := time.Now()
		if now.Sub(lastTick) >= tick {
			pending, lastTick = true, now
		}
		if m.profile.record && (now.Sub(started) >= profileAfter || m.listened()) {
			m.recordProfile()
		}
		// A soft interrupt rewrites registers, which must wait until KVM
		// has completed the MMIO instruction that exited (api.rst 5,
		// KVM_EXIT_MMIO): KVM does that only on the next entry, so the
		// interrupt waits for the exit after it. Neither way of making that
		// entry exit at once works here: this KVM left instructions half
		// done with immediate_exit, and a signal the thread sends itself is
		// taken by Go on the way out of tgkill, before KVM_RUN.
		devSeen, wasIO := m.devPending.Load(), ioPending
		deferred := ioPending && (pending || devSeen) && m.softIntr()
		ioPending = false
		switch {
		case deferred:
			// The timer's or the device's interrupt stays pending.
		case devSeen:
			delivered, err := m.inject(abi.DeviceVector)
			if err != nil {
				return 0, m.crash(err.Error())
			}
			if delivered {
				m.devPending.Store(false)
				m.stats.injected[1].Add(1)
			}
		case pending:
			delivered, err := m.inject(abi.TimerVector)
			if err != nil {
				return 0, m.crash(err.Error())
			}
			pending = !delivered
			if delivered {
				m.stats.injected[0].Add(1)
			}
		}
		m.inRun.Store(true)
		if !devSeen && !wasIO && m.devPending.Load() {
			// Raised since the look above, before inRun: raiseDevice sent
			// no signal (it sends one per pending interrupt), so take it
			// now rather than at the next exit. (A signal to this thread
			// would not do: Go takes it on the way out of tgkill, before
			// KVM_RUN.) After an MMIO exit KVM must complete the
			// instruction first; the interrupt then waits for the next exit.
			m.inRun.Store(false)
			continue
		}
		err := m.cpu.RunOnce()
		m.inRun.Store(false)
		m.cpu.DrainCoalesced(m.lateWrite) // before the exit's own access
		if err != nil {
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
				m.stats.exit(kvm.ExitIntr)
				continue
			}
			return 0, m.crash(fmt.Sprintf("KVM_RUN failed: %v", err))
		}
		m.stats.exit(run.ExitReason)
		switch run.ExitReason {
		case kvm.ExitMMIO:
			ioPending = true
			mm := run.MMIO()
			if m.deviceAccess(mm) {
				continue
			}
			if at, rom := m.mem.ROM(); mm.IsWrite != 0 && mm.PhysAddr >= at && mm.PhysAddr-at < uint64(len(rom)) {
				return 0, m.crash(fmt.Sprintf("guest wrote to its read-only code or data at %#x (len %d)", mm.PhysAddr, mm.Len))
			}
			if mm.IsWrite == 0 || mm.PhysAddr != abi.DoorbellAddr || mm.Len != 8 {
				return 0, m.crash(fmt.Sprintf("guest accessed %#x outside memory (len %d, write %v)", mm.PhysAddr, mm.Len, mm.IsWrite != 0))
			}
			nr := binary.LittleEndian.Uint64(mm.Data[:])
			done, status, err := m.hypercall(nr)
			var ee *ExitError
			if errors.As(err, &ee) {
				return 0, err // a report already
			}
			if err != nil {
				return 0, m.crash(err.Error())
			}
			if done {
				m.recordProfile()
				return status, nil
			}
		case kvm.ExitIntr, kvm.ExitIRQWindowOpen:
			continue
		case kvm.ExitFailEntry:
			return 0, m.crash(fmt.Sprintf("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason %#x", run.FailEntryReason()))
		case kvm.ExitInternalError:
			ie := run.InternalError()
			return 0, m.crash(fmt.Sprintf("KVM_EXIT_INTERNAL_ERROR: suberror %d, data %x", ie.Suberror, ie.Data[:min(ie.NData, 16)]))
		case kvm.ExitIO:
			io := run.IO()
			return 0, m.crash(fmt.Sprintf("unexpected port I/O: port %#x, size %d, out %v", io.Port, io.Size, io.Direction == 1))
		default:
			return 0, m.crash("unexpected VM exit " + kvm.ExitName(run.ExitReason))
		}
	}
}

// inject delivers interrupt vector if the guest can take it now, and
// reports whether it did; otherwise it asks KVM to exit when it can.
func (m *Machine) inject(vector uint64) (bool, error) {
	if m.softIntr() {
		return m.softInterrupt(vector)
	}
	run := m.cpu.Run
	if run.ReadyForInterruptInj != 0 && run.IFFlag != 0 {
		run.RequestInterruptWindow = 0
		return true, m.cpu.Interrupt(uint32(vector))
	}
	run.RequestInterruptWindow = 1
	return false, nil
}
