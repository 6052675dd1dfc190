#include "textflag.h"

// func physPtr(pa uintptr) unsafe.Pointer
// The identity map makes RAM and device registers below 4 GiB addressable
// at their physical addresses; this turns one into a pointer without a
// uintptr conversion in Go (which vet rightly questions elsewhere).
TEXT ·physPtr(SB),NOSPLIT,$0-16
	MOVQ	pa+0(FP), AX
	MOVQ	AX, ret+8(FP)
	RET
