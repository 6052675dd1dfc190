package kernel

import (
	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/abi/linux"
)

// trapFrame holds the registers of user code that made a system call or was
// interrupted, as syscallEntry and intrCommon save them on the kernel stack.
// The tail is the IRET frame the CPU pushes (SDM Vol. 3A §7.14.2). Offsets are
// used by cpu_amd64.s through go_asm.h.
type trapFrame struct {
	rax, rbx, rcx, rdx, rsi, rdi, rbp uint64
	r8, r9, r10, r11, r12, r13, r14   uint64
	r15                               uint64
	vector, errcode                   uint64 // vecSyscall for system calls
	rip, cs, rflags, rsp, ss          uint64
}

// arg returns system call argument i (0-5) in the Linux order:
// rdi, rsi, rdx, r10, r8, r9.
//
//go:nosplit
func (f *trapFrame) arg(i int) uintptr {
	switch i {
	case 0:
		return uintptr(f.rdi)
	case 1:
		return uintptr(f.rsi)
	case 2:
		return uintptr(f.rdx)
	case 3:
		return uintptr(f.r10)
	case 4:
		return uintptr(f.r8)
	}
	return uintptr(f.r9)
}

// sysFunc implements one system call; it returns the raw result (a value, or
// -errno as linux.Errno.Ret gives).
type sysFunc func(f *trapFrame) uintptr

// support says how completely an entry implements its call.
type support uint8

const (
	supFull    support = iota // as Linux does it
	supPartial                // the common cases; others return an errno
	supNone                   // ENOSYS, reported once with --debug
)

type sysEntry struct {
	fn  sysFunc
	sup support
}

// syscall dispatches the system call in f. Trap context.
//
//go:nosplit
func syscall(f *trapFrame) {
	if handlerCPL != 0 {
		// A paging-based KVM: the program runs with the guest's interrupt
		// flag off, so the monitor delivers the timer by soft interrupts.
		store64(abi.CPUStateAddr+abi.CsFlags, abi.CsFlagSoftIntr)
	}
	if pvhPage0 {
		pvhUnmapPage0()
	}
	nr := uintptr(f.rax)
	if nr < uintptr(len(table)) && table[nr].fn != nil {
		f.rax = uint64(table[nr].fn(f))
	} else if nr >= SysNetAttach && nr < sysNetEnd {
		f.rax = uint64(sysNet(nr, f))
	} else {
		f.rax = uint64(enosys(nr))
	}
	volBoundary()
	deliverSignals(f)
	if f.rflags&rflagsTF != 0 {
		fullReturn = 1 // the debugger steps this thread: only IRETQ loads TF
	}
}

// countSyscall counts f's system call in the own monitor's counters
// (abi.SyscallsAddr), which its metrics show. Trap context: syscallEntry
// calls it before syscall, so that it is in none of the handlers' nosplit
// chains.
//
//go:nosplit
func countSyscall(f *trapFrame) {
	if pvh {
		return
	}
	nr := uintptr(f.rax)
	slot := uintptr(abi.SyscallSlotOther)
	if nr < abi.SyscallSlotGated {
		slot = nr
	} else if nr >= SysNetAttach && nr < sysNetEnd {
		slot = abi.SyscallSlotNet
	}
	a := abi.SyscallsAddr + slot*8
	store64(a, load64(a)+1)
	if load64(abi.CPUStateAddr+abi.CsViaGate) != 0 {
		store64(abi.CPUStateAddr+abi.CsViaGate, 0)
		a = abi.SyscallsAddr + abi.SyscallSlotGated*8
		store64(a, load64(a)+1)
	}
}

//go:nosplit
func enosys(nr uintptr) uintptr {
	if debug {
		hcall(abi.HcUnimplemented, uint64(nr), 0)
	}
	return linux.ENOSYS.Ret()
}

//go:nosplit
func errno(e linux.Errno) uintptr { return e.Ret() }

// The system call table: every call the kernel answers, with its support
// level. The supNone entries are calls Go programs are known to make that are
// not implemented yet; they, and calls not listed, return ENOSYS.
var table = [linux.NumSyscalls]sysEntry{
	linux.SYS_IOCTL: {nil, supNone}, // terminals: the console is no tty
	// Sockets: the networking issue.
	// Profiling timers (runtime/pprof, SIGPROF).
	linux.SYS_TIMER_CREATE:  {nil, supNone},
	linux.SYS_TIMER_SETTIME: {nil, supNone},
	linux.SYS_TIMER_DELETE:  {nil, supNone},
	linux.SYS_SETITIMER:     {nil, supNone},
	// Processes: a unikernel runs one program; exec and fork cannot be had.
	linux.SYS_EXECVE: {nil, supNone},
	linux.SYS_FORK:   {nil, supNone},
	linux.SYS_VFORK:  {nil, supNone},
	linux.SYS_WAIT4:  {nil, supNone},
	linux.SYS_WAITID: {nil, supNone},
	linux.SYS_CLONE3: {nil, supNone}, // Go falls back to clone

	// sys_fs.go
	linux.SYS_READ:       {sysRead, supPartial},
	linux.SYS_WRITE:      {sysWrite, supPartial},
	linux.SYS_READV:      {sysReadv, supPartial},
	linux.SYS_WRITEV:     {sysWritev, supPartial},
	linux.SYS_OPENAT:     {sysOpenat, supPartial},
	linux.SYS_OPEN:       {sysOpen, supPartial},
	linux.SYS_CREAT:      {sysCreat, supPartial},
	linux.SYS_CLOSE:      {sysClose, supFull},
	linux.SYS_PREAD64:    {sysPread64, supPartial},
	linux.SYS_PWRITE64:   {sysPwrite64, supPartial},
	linux.SYS_LSEEK:      {sysLseek, supPartial},
	linux.SYS_GETDENTS64: {sysGetdents64, supFull},
	linux.SYS_FCNTL:      {sysFcntl, supPartial},
	linux.SYS_EVENTFD2:   {sysEventfd2, supFull},
	linux.SYS_PIPE2:      {sysPipe2, supFull},
	linux.SYS_SPLICE:     {sysSplice, supPartial},
	// sys_file.go
	linux.SYS_FTRUNCATE: {sysFtruncate, supFull},
	linux.SYS_FSYNC:     {sysFsync, supFull},
	linux.SYS_FDATASYNC: {sysFsync, supFull},
	linux.SYS_SYNC:      {sysSync, supFull},
	linux.SYS_SYNCFS:    {sysSyncfs, supFull},
	linux.SYS_FALLOCATE: {sysFallocate, supPartial},
	linux.SYS_FLOCK:     {sysFlock, supFull},
	linux.SYS_DUP:       {sysDup, supFull},
	linux.SYS_DUP2:      {sysDup2, supFull},
	linux.SYS_DUP3:      {sysDup3, supFull},
	linux.SYS_STATFS:    {sysStatfs, supFull},
	linux.SYS_FSTATFS:   {sysFstatfs, supFull},
	// synth.go
	linux.SYS_FSTAT:      {sysFstat, supFull},
	linux.SYS_NEWFSTATAT: {sysNewfstatat, supFull},
	linux.SYS_SENDFILE:   {sysSendfile, supPartial},
	linux.SYS_STATX:      {sysStatx, supPartial},
	// sys_path.go
	linux.SYS_MKDIRAT:    {sysMkdirat, supFull},
	linux.SYS_MKDIR:      {sysMkdir, supFull},
	linux.SYS_UNLINKAT:   {sysUnlinkat, supFull},
	linux.SYS_UNLINK:     {sysUnlink, supFull},
	linux.SYS_RMDIR:      {sysRmdir, supFull},
	linux.SYS_RENAMEAT2:  {sysRenameat2, supPartial}, // no RENAME_WHITEOUT
	linux.SYS_RENAMEAT:   {sysRenameat, supFull},
	linux.SYS_RENAME:     {sysRename, supFull},
	linux.SYS_LINKAT:     {sysLinkat, supFull},
	linux.SYS_SYMLINKAT:  {sysSymlinkat, supFull},
	linux.SYS_READLINKAT: {sysReadlinkat, supFull},
	linux.SYS_READLINK:   {sysReadlink, supFull},
	linux.SYS_FCHMODAT:   {sysFchmodat, supFull},
	linux.SYS_FCHMOD:     {sysFchmod, supFull},
	linux.SYS_FCHOWNAT:   {sysFchownat, supFull},
	linux.SYS_FCHOWN:     {sysFchown, supFull},
	linux.SYS_UTIMENSAT:  {sysUtimensat, supFull},
	linux.SYS_TRUNCATE:   {sysTruncate, supFull},
	linux.SYS_FACCESSAT:  {sysFaccessat, supFull},
	linux.SYS_FACCESSAT2: {sysFaccessat2, supFull},
	linux.SYS_ACCESS:     {sysAccess, supFull},
	linux.SYS_GETCWD:     {sysGetcwd, supFull},
	linux.SYS_CHDIR:      {sysChdir, supFull},
	linux.SYS_FCHDIR:     {sysFchdir, supFull},
	linux.SYS_UMASK:      {sysUmask, supFull},
	// sys_socket.go: IPv4 TCP through the network component
	linux.SYS_SOCKET:      {sysSocket, supPartial},
	linux.SYS_BIND:        {sysBind, supPartial},
	linux.SYS_LISTEN:      {sysListen, supFull},
	linux.SYS_ACCEPT4:     {sysAccept4, supFull},
	linux.SYS_CONNECT:     {sysConnect, supPartial},
	linux.SYS_GETSOCKNAME: {sysGetsockname, supPartial},
	linux.SYS_GETPEERNAME: {sysGetpeername, supPartial},
	linux.SYS_SETSOCKOPT:  {sysSetsockopt, supPartial},
	linux.SYS_GETSOCKOPT:  {sysGetsockopt, supPartial},
	linux.SYS_SHUTDOWN:    {sysShutdown, supFull},
	linux.SYS_SENDTO:      {sysSendto, supPartial},
	linux.SYS_RECVFROM:    {sysRecvfrom, supPartial},
	// sys_msg.go
	linux.SYS_SENDMSG: {sysSendmsg, supPartial},
	linux.SYS_RECVMSG: {sysRecvmsg, supPartial},
	// sys_epoll.go
	linux.SYS_EPOLL_CREATE1: {sysEpollCreate1, supFull},
	linux.SYS_EPOLL_CTL:     {sysEpollCtl, supPartial},
	linux.SYS_EPOLL_PWAIT:   {sysEpollPwait, supPartial},
	linux.SYS_EPOLL_WAIT:    {sysEpollWait, supPartial},
	// sys_mm.go
	linux.SYS_MMAP:     {sysMmap, supPartial},
	linux.SYS_MUNMAP:   {sysMunmap, supFull},
	linux.SYS_MPROTECT: {sysMprotect, supPartial},
	linux.SYS_MADVISE:  {sysMadvise, supPartial},
	// sys_thread.go
	linux.SYS_CLONE:             {sysClone, supPartial},
	linux.SYS_EXIT:              {sysExit, supFull},
	linux.SYS_EXIT_GROUP:        {sysExitGroup, supFull},
	linux.SYS_FUTEX:             {sysFutex, supPartial},
	linux.SYS_SCHED_YIELD:       {sysSchedYield, supFull},
	linux.SYS_GETTID:            {sysGettid, supFull},
	linux.SYS_GETPID:            {sysGetpid, supFull},
	linux.SYS_ARCH_PRCTL:        {sysArchPrctl, supPartial},
	linux.SYS_SCHED_GETAFFINITY: {sysSchedGetaffinity, supFull},
	// sys_signal.go
	linux.SYS_RT_SIGACTION:   {sysRtSigaction, supPartial},
	linux.SYS_RT_SIGPROCMASK: {sysRtSigprocmask, supFull},
	linux.SYS_SIGALTSTACK:    {sysSigaltstack, supFull},
	linux.SYS_RT_SIGRETURN:   {sysRtSigreturn, supFull},
	linux.SYS_TGKILL:         {sysTgkill, supFull},
	linux.SYS_TKILL:          {sysTkill, supFull},
	// sys_time.go
	linux.SYS_CLOCK_GETTIME: {sysClockGettime, supPartial},
	linux.SYS_NANOSLEEP:     {sysNanosleep, supFull},
	// sys_misc.go
	linux.SYS_GETRANDOM: {sysGetrandom, supFull},
	linux.SYS_UNAME:     {sysUname, supFull},
	linux.SYS_PRLIMIT64: {sysPrlimit64, supPartial},
	linux.SYS_PRCTL:     {sysPrctl, supPartial},
	linux.SYS_GETUID:    {sysGetuid, supFull},
	linux.SYS_GETEUID:   {sysGetuid, supFull},
	linux.SYS_GETGID:    {sysGetuid, supFull},
	linux.SYS_GETEGID:   {sysGetuid, supFull},
	linux.SYS_GETPPID:   {sysGetppid, supFull},
}
