package kernel

// The block volume's file system is deeper than the linker lets a chain of
// nosplit functions be: it checks each chain against the 792 bytes a
// goroutine stack guards, while trap context runs on the thread's 32 KiB
// kernel stack (kstackSize). So tmpfs enters a volume's code, and that
// code commits, misses the cache and writes blocks home, through function
// values (these, and volume.go's): an indirect call ends the linker's
// chain, and the chain below it is checked on its own. A system call
// passes at most six such parts (the call to tmpfs, the volume's code, a
// commit, a miss, the home writes it may need, a block read), each within
// 792 bytes: under 5 KiB, far inside the kernel stack.
var (
	volCommitFn   = volCommit
	volPageFn     = volPage
	volPageOverFn = volPageOver
	volNodeFn     = volNode
	volParentFn   = volParent
	volNewFn      = volNew
	volEvictFn    = volEvict
	volFreeNodeFn = volFreeNode
	volFreeFromFn = volFreeFrom
)
