#include "textflag.h"

// The room for the system-call gates that unigo build writes into an image
// (build/gates.go): INT3s until then, so that a stray jump here traps.
#define CC8 BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC
#define CC64 CC8; CC8; CC8; CC8; CC8; CC8; CC8; CC8
#define CC512 CC64; CC64; CC64; CC64; CC64; CC64; CC64; CC64

// func syscallGates()
// Never called: build/gates.go writes a gate here for each SYSCALL
// instruction of the image it moves out of its place (abi.GatesSize bytes).
TEXT ·syscallGates(SB),NOSPLIT|NOFRAME,$0
	CC512; CC512; CC512; CC512; CC512; CC512; CC512; CC512

// func gatesPC() uintptr
TEXT ·gatesPC(SB),NOSPLIT,$0-8
	LEAQ	·syscallGates(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
