package abi

// The control channel of the PVH platform. Where the monitor that boots the
// image through PVH (vmm/qemu) provides a third 16550 UART at CtlPort, the
// kernel writes to it, one line each, what Unigo's own monitor learns from
// hypercalls, so that both monitors report the same:
//
//	exit N          the exit status, 0-255 (isa-debug-exit carries 7 bits)
//	unimpl NR       an unimplemented system call (debug only)
//	fatal MSG       the kernel gave up
//	fault ADDR W…   a CPU exception in kernel code: the faulting address and
//	                the FrameWords words of the trap frame, hexadecimal
//	bt PC…          the return addresses found by following frame pointers
//
// The other way, the monitor writes one byte for each signal it sends the
// process (unigo run's SIGINT and SIGTERM): the signal's number, 1-64. The
// kernel polls the UART for them at each tick.
//
// Without it the kernel writes its messages to the console and the exit
// status goes through isa-debug-exit alone.
const (
	CtlPort    = 0x3e8 // COM3
	CtlExit    = "exit"
	CtlUnimpl  = "unimpl"
	CtlFatal   = "fatal"
	CtlFault   = "fault"
	CtlBacktr  = "bt"
	CtlMaxLine = 4096
)
