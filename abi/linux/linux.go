// Package linux holds the Linux x86-64 ABI the kernel answers: system call
// numbers, errno values, flags and structure layouts, as typed Go with the
// kernel's spelling kept. It imports nothing, so both the guest kernel and the
// host monitor can use it.
package linux

//go:generate go run mksysno.go

// Errno is a Linux error number. System calls return -Errno on failure.
type Errno uintptr

// Ret is the raw return value of a system call for e: -e.
func (e Errno) Ret() uintptr { return -uintptr(e) }

// mmap(2), mprotect(2), madvise(2): include/uapi/asm-generic/mman-common.h.
const (
	PROT_NONE  = 0x0
	PROT_READ  = 0x1
	PROT_WRITE = 0x2
	PROT_EXEC  = 0x4

	MAP_SHARED          = 0x01
	MAP_PRIVATE         = 0x02
	MAP_FIXED           = 0x10
	MAP_ANONYMOUS       = 0x20
	MAP_NORESERVE       = 0x4000
	MAP_FIXED_NOREPLACE = 0x100000

	MADV_NORMAL     = 0
	MADV_RANDOM     = 1
	MADV_SEQUENTIAL = 2
	MADV_WILLNEED   = 3
	MADV_DONTNEED   = 4
	MADV_FREE       = 8
	MADV_HUGEPAGE   = 14
	MADV_NOHUGEPAGE = 15
	MADV_COLLAPSE   = 25
)

// futex(2): include/uapi/linux/futex.h.
const (
	FUTEX_WAIT           = 0
	FUTEX_WAKE           = 1
	FUTEX_PRIVATE_FLAG   = 128
	FUTEX_CLOCK_REALTIME = 256
)

// clone(2): include/uapi/linux/sched.h.
const (
	CLONE_VM             = 0x00000100
	CLONE_FS             = 0x00000200
	CLONE_FILES          = 0x00000400
	CLONE_SIGHAND        = 0x00000800
	CLONE_THREAD         = 0x00010000
	CLONE_SYSVSEM        = 0x00040000
	CLONE_SETTLS         = 0x00080000
	CLONE_PARENT_SETTID  = 0x00100000
	CLONE_CHILD_CLEARTID = 0x00200000
	CLONE_CHILD_SETTID   = 0x01000000
)

// arch_prctl(2): arch/x86/include/uapi/asm/prctl.h.
const (
	ARCH_SET_GS = 0x1001
	ARCH_SET_FS = 0x1002
	ARCH_GET_FS = 0x1003
	ARCH_GET_GS = 0x1004
)

// Clocks: include/uapi/linux/time.h.
const (
	CLOCK_REALTIME           = 0
	CLOCK_MONOTONIC          = 1
	CLOCK_PROCESS_CPUTIME_ID = 2
	CLOCK_THREAD_CPUTIME_ID  = 3
	CLOCK_MONOTONIC_RAW      = 4
	CLOCK_REALTIME_COARSE    = 5
	CLOCK_MONOTONIC_COARSE   = 6
	CLOCK_BOOTTIME           = 7
)

// Timespec is struct timespec (64-bit).
type Timespec struct {
	Sec  int64
	Nsec int64
}

// Signals: arch/x86/include/uapi/asm/signal.h.
const (
	SIGINT  = 2
	SIGKILL = 9
	SIGSEGV = 11
	SIGTERM = 15
	SIGSTOP = 19
	SIGURG  = 23
	NSIG    = 64 // _NSIG

	SIG_BLOCK   = 0
	SIG_UNBLOCK = 1
	SIG_SETMASK = 2

	SS_ONSTACK = 1
	SS_DISABLE = 2

	SIG_DFL = 0
	SIG_IGN = 1

	SA_SIGINFO  = 0x4
	SA_NODEFER  = 0x40000000
	SA_RESTART  = 0x10000000
	SA_ONSTACK  = 0x08000000
	SA_RESTORER = 0x04000000

	SI_USER     = 0
	SI_TKILL    = -6
	SEGV_MAPERR = 1
	SEGV_ACCERR = 2
	BUS_ADRERR  = 2

	SIGILL  = 4
	SIGTRAP = 5
	SIGBUS  = 7
	SIGFPE  = 8
)

// Sigcontext is struct sigcontext of x86-64 (arch/x86/include/uapi/asm/sigcontext.h),
// the uc_mcontext of a signal frame.
type Sigcontext struct {
	R8, R9, R10, R11, R12, R13, R14, R15 uint64
	Rdi, Rsi, Rbp, Rbx, Rdx, Rax, Rcx    uint64
	Rsp, Rip, Eflags                     uint64
	Cs, Gs, Fs, Ss                       uint16
	Err, Trapno, Oldmask, Cr2            uint64
	Fpstate                              uint64
	_                                    [8]uint64
}

// Ucontext is struct ucontext of x86-64 (include/uapi/asm-generic/ucontext.h).
type Ucontext struct {
	Flags    uint64
	Link     uint64
	Stack    StackT
	Mcontext Sigcontext
	Sigmask  uint64
}

// Siginfo is the 128-byte siginfo_t. Union is its first union word: si_addr
// of a fault, or si_pid and si_uid of a kill(2)-style signal.
type Siginfo struct {
	Signo, Errno, Code int32
	_                  int32
	Union              uint64
	_                  [13]uint64
}

// RtSigframe is the frame Linux pushes for a handler (arch/x86/include/asm/sigframe.h):
// the return address (sa_restorer), the context and the signal information.
type RtSigframe struct {
	Pretcode uint64
	Uc       Ucontext
	Info     Siginfo
}

// Sigaction is struct sigaction as rt_sigaction(2) takes it on x86-64
// (kernel layout: handler, flags, restorer, mask).
type Sigaction struct {
	Handler  uintptr
	Flags    uint64
	Restorer uintptr
	Mask     uint64
}

// StackT is stack_t of sigaltstack(2).
type StackT struct {
	SP    uintptr
	Flags int32
	_     int32
	Size  uintptr
}

// fcntl(2): include/uapi/asm-generic/fcntl.h.
const (
	F_DUPFD         = 0
	F_GETFD         = 1
	F_SETFD         = 2
	F_GETFL         = 3
	F_SETFL         = 4
	F_DUPFD_CLOEXEC = 1030
	FD_CLOEXEC      = 1

	O_RDONLY      = 0x0
	O_WRONLY      = 0x1
	O_RDWR        = 0x2
	O_ACCMODE     = 0x3
	O_CREAT       = 0x40
	O_EXCL        = 0x80
	O_TRUNC       = 0x200
	O_APPEND      = 0x400
	O_NONBLOCK    = 0x800
	O_LARGEFILE   = 0x8000
	O_DIRECTORY   = 0x10000
	O_NOFOLLOW    = 0x20000
	O_PATH        = 0x200000
	O_TMPFILE     = 0x410000
	O_CLOEXEC     = 0x80000
	AT_FDCWD      = -100
	EFD_CLOEXEC   = O_CLOEXEC
	EFD_NONBLOCK  = O_NONBLOCK
	EFD_SEMAPHORE = 1
)

// epoll(7): include/uapi/linux/eventpoll.h.
const (
	EPOLLIN      = 0x001
	EPOLLOUT     = 0x004
	EPOLLERR     = 0x008
	EPOLLHUP     = 0x010
	EPOLLRDHUP   = 0x2000
	EPOLLET      = 1 << 31
	EPOLLONESHOT = 1 << 30

	EPOLL_CTL_ADD = 1
	EPOLL_CTL_DEL = 2
	EPOLL_CTL_MOD = 3
)

// EpollEvent is struct epoll_event, packed on x86-64 (12 bytes).
type EpollEvent struct {
	Events uint32
	Data   [8]byte
}

// Resource limits: include/uapi/asm-generic/resource.h.
const (
	RLIMIT_STACK  = 3
	RLIMIT_NOFILE = 7
)

// Rlimit is struct rlimit64.
type Rlimit struct {
	Cur uint64
	Max uint64
}

// Auxiliary vector keys: include/uapi/linux/auxvec.h.
const (
	AT_NULL         = 0
	AT_PAGESZ       = 6
	AT_HWCAP        = 16
	AT_CLKTCK       = 17
	AT_SECURE       = 23
	AT_RANDOM       = 25
	AT_HWCAP2       = 26
	AT_EXECFN       = 31
	AT_SYSINFO_EHDR = 33
)

// Utsname is struct new_utsname of uname(2).
type Utsname struct {
	Sysname    [65]byte
	Nodename   [65]byte
	Release    [65]byte
	Version    [65]byte
	Machine    [65]byte
	Domainname [65]byte
}

// getrandom(2) flags: include/uapi/linux/random.h.
const (
	GRND_NONBLOCK = 0x1
	GRND_RANDOM   = 0x2
	GRND_INSECURE = 0x4
)

// Sockets (socket(7), ip(7), tcp(7); include/linux/socket.h, in.h, tcp.h).
const (
	AF_UNIX  = 1
	AF_INET  = 2
	AF_INET6 = 10

	SOCK_STREAM   = 1
	SOCK_DGRAM    = 2
	SOCK_NONBLOCK = 0x800
	SOCK_CLOEXEC  = 0x80000

	IPPROTO_IP    = 0
	IPPROTO_TCP   = 6
	IPPROTO_UDP   = 17
	IPPROTO_IPV6  = 41
	IPPROTO_MPTCP = 262

	IPV6_V6ONLY = 26 // ipv6(7)

	SOL_SOCKET   = 1
	SO_REUSEADDR = 2
	SO_TYPE      = 3
	SO_ERROR     = 4
	SO_BROADCAST = 6
	SO_SNDBUF    = 7
	SO_RCVBUF    = 8
	SO_KEEPALIVE = 9
	SO_LINGER    = 13
	SO_REUSEPORT = 15

	TCP_NODELAY   = 1
	TCP_KEEPIDLE  = 4
	TCP_KEEPINTVL = 5
	TCP_KEEPCNT   = 6

	SHUT_RD   = 0
	SHUT_WR   = 1
	SHUT_RDWR = 2

	MSG_PEEK         = 0x2
	MSG_TRUNC        = 0x20
	MSG_DONTWAIT     = 0x40
	MSG_NOSIGNAL     = 0x4000
	MSG_CMSG_CLOEXEC = 0x40000000
)

// Msghdr is struct msghdr on x86-64 (include/linux/socket.h): what
// sendmsg(2) and recvmsg(2) take.
type Msghdr struct {
	Name       uint64 // struct sockaddr *, or 0
	Namelen    uint32
	_          uint32
	Iov        uint64 // struct iovec *
	Iovlen     uint64
	Control    uint64 // ancillary data
	Controllen uint64
	Flags      int32 // recvmsg: MSG_TRUNC when a datagram was cut
	_          int32
}

// SockaddrIn is struct sockaddr_in: the port and address in network order.
type SockaddrIn struct {
	Family uint16
	Port   [2]byte
	Addr   [4]byte
	Zero   [8]byte
}

// SockaddrIn6 is struct sockaddr_in6 (RFC 3493 §3.3): the port in network
// order.
type SockaddrIn6 struct {
	Family   uint16
	Port     [2]byte
	Flowinfo uint32
	Addr     [16]byte
	ScopeID  uint32
}

// Stat is struct stat on x86-64 (arch/x86/include/uapi/asm/stat.h).
type Stat struct {
	Dev, Ino, Nlink uint64
	Mode, UID, GID  uint32
	_               uint32
	Rdev            uint64
	Size            int64
	Blksize         int64
	Blocks          int64
	Atime, Mtime    Timespec
	Ctime           Timespec
	_               [3]int64
}

// File types of Stat.Mode (inode(7)), and newfstatat's AT_EMPTY_PATH.
const (
	S_IFIFO       = 0o010000
	S_IFCHR       = 0o020000
	S_IFDIR       = 0o040000
	S_IFBLK       = 0o060000
	S_IFREG       = 0o100000
	S_IFLNK       = 0o120000
	S_IFSOCK      = 0o140000
	S_IFMT        = 0o170000
	AT_EMPTY_PATH = 0x1000

	AT_SYMLINK_NOFOLLOW = 0x100
	AT_REMOVEDIR        = 0x200
	AT_EACCESS          = 0x200
	AT_SYMLINK_FOLLOW   = 0x400

	RENAME_NOREPLACE = 1
	RENAME_EXCHANGE  = 2

	UTIME_NOW  = 1<<30 - 1
	UTIME_OMIT = 1<<30 - 2

	FALLOC_FL_KEEP_SIZE = 1
	TMPFS_MAGIC         = 0x01021994
)

// fcntl(2) locks and flock(2).
const (
	F_GETLK  = 5
	F_SETLK  = 6
	F_SETLKW = 7
	F_RDLCK  = 0
	F_WRLCK  = 1
	F_UNLCK  = 2

	LOCK_SH = 1
	LOCK_EX = 2
	LOCK_NB = 4
	LOCK_UN = 8
)
