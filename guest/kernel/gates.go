package kernel

// syscallGates is the room for the system-call gates that unigo build
// writes (build/gates.go, abi.GatesSize): each SYSCALL instruction of the
// image moves into a gate there, which jumps into syscallEntry on a
// paging-based KVM, where a SYSCALL is a round trip through the host's
// hypervisor, and executes the SYSCALL elsewhere. Never called.
func syscallGates()
func gatesPC() uintptr

// gatesAt is where the gates are. kinit takes it, so that the linker, which
// drops functions nothing refers to, keeps the room.
var gatesAt uintptr
