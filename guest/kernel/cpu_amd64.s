// CPU entry, the system-call entry and exit, thread switch and the few
// instructions Go cannot express. Each function carries its Go signature.

#include "go_asm.h"
#include "textflag.h"

#define MSR_STAR    0xc0000081
#define MSR_LSTAR   0xc0000082
#define MSR_SFMASK  0xc0000084
#define SFMASK_BITS 0x47700 // TF|DF|IF|IOPL|AC|NT, as Linux (arch/x86/kernel/cpu/common.c)

// WRFSBASE RAX (F3 REX.W 0F AE /2), Intel SDM Vol. 2D.
#define WRFSBASE_AX BYTE $0xf3; BYTE $0x48; BYTE $0x0f; BYTE $0xae; BYTE $0xd0
// SYSRETQ (REX.W 0F 07)
#define SYSRETQ BYTE $0x48; BYTE $0x0f; BYTE $0x07

// func entry()
// The ELF entry point of the 64-bit boot (see package abi): CPL 0, RDI = boot
// info. Runs once, emulated on paging-based KVMs, so it does only what needs
// CPL 0: the GDT, the SYSCALL MSRs, then IRETQ to start0 at CPL 3.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	CLI
	MOVW	$(const_gdtEntries*8-1), ·gdtr(SB)
	LEAQ	·gdt(SB), AX
	MOVQ	AX, ·gdtr+2(SB)
	// TSS descriptor in GDT slots 8-9 (SDM Vol. 3A §8.2.3): base, limit 103,
	// type 0x89 (present, 64-bit TSS available).
	LEAQ	·tss(SB), AX
	MOVQ	AX, BX
	ANDQ	$0xffff, BX
	SHLQ	$16, BX
	ORQ	$103, BX
	MOVQ	AX, CX
	SHRQ	$16, CX
	ANDQ	$0xff, CX
	SHLQ	$32, CX
	ORQ	CX, BX
	MOVQ	$0x89, CX
	SHLQ	$40, CX
	ORQ	CX, BX
	MOVQ	AX, CX
	SHRQ	$24, CX
	ANDQ	$0xff, CX
	SHLQ	$56, CX
	ORQ	CX, BX
	MOVQ	BX, ·gdt+(const_selTSS)(SB)
	MOVQ	AX, CX
	SHRQ	$32, CX
	MOVQ	CX, ·gdt+(const_selTSS+8)(SB)
	LGDT	·gdtr(SB)
	MOVW	$const_selTSS, AX
	LTR	AX
	MOVW	$(256*16-1), ·idtr(SB)
	LEAQ	·idt(SB), AX
	MOVQ	AX, ·idtr+2(SB)
	LIDT	·idtr(SB)

	MOVL	$MSR_STAR, CX
	MOVL	$0, AX
	MOVL	$((const_selUser32Code<<16)|const_selKernelCode), DX
	WRMSR
	MOVL	$MSR_LSTAR, CX
	LEAQ	·syscallEntry(SB), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	WRMSR
	MOVL	$MSR_SFMASK, CX
	MOVL	$SFMASK_BITS, AX
	MOVL	$0, DX
	WRMSR

	// IRETQ frame: SS, RSP, RFLAGS, CS, RIP (SDM Vol. 3A §6.14.3).
	LEAQ	·kstack0+const_kstackSize(SB), AX
	MOVQ	AX, SP
	PUSHQ	$const_selUserData
	PUSHQ	AX
	PUSHQ	·iretFlags(SB)
	PUSHQ	$const_selUserCode
	LEAQ	·start0(SB), AX
	PUSHQ	AX
	IRETQ

// func start0()
// First code at CPL 3, on thread 0's kernel stack, DI = boot info. Gives thread
// 0 its kernel g and TLS so Go code can run, lets kinit set up the kernel and
// build the process stack, then enters the Go runtime as Linux would.
TEXT ·start0(SB),NOSPLIT|NOFRAME,$0
	LEAQ	·kstack0(SB), AX
	LEAQ	·kgs(SB), BX
	MOVQ	AX, kg_lo(BX)
	ADDQ	$const_kstackSize, AX
	MOVQ	AX, kg_hi(BX)
	SUBQ	$const_kstackSize, AX
	ADDQ	$const_stackGuard, AX
	MOVQ	AX, kg_guard0(BX)
	MOVQ	AX, kg_guard1(BX)
	LEAQ	·ktls(SB), AX
	MOVQ	BX, 0(AX)
	ADDQ	$8, AX // ELF TLS: g lives at -8(FS)
	WRFSBASE_AX
	SUBQ	$16, SP
	MOVQ	DI, 0(SP)
	CALL	·kinit(SB)
	MOVQ	8(SP), AX
	MOVQ	AX, SP
	XORL	AX, AX
	XORL	BX, BX
	XORL	CX, CX
	XORL	DX, DX
	XORL	SI, SI
	XORL	DI, DI
	// BP is still 0 from the boot registers (kinit preserves it): the
	// outermost frame, as at a Linux exec.
	JMP	_rt0_amd64_linux(SB)

// func syscallEntry()
// The LSTAR target, and where a system-call gate jumps (gates.go) with RCX
// and R11 set as SYSCALL sets them, having set abi.CsViaGate. Trap context:
// interrupts are off (SFMASK; on a paging-based KVM, where gates jump here,
// they are off in user mode too), the user's RSP is live. Saves the user
// registers in a trapFrame on the current thread's kernel stack, switches
// FS to the thread's kernel TLS and calls syscall.
// On a paging-based KVM this runs outside architectural ring 0 (CS has RPL 3);
// handlerCPL records which, for sysexit.
TEXT ·syscallEntry(SB),NOSPLIT|NOFRAME,$0
	// One instruction moves to the kernel stack, so that the vCPU is on the
	// user stack or on a kernel stack and nowhere between: a soft interrupt
	// (abi.CPUStateAddr) may arrive at any user-stack instruction. kstackTop
	// holds the user RSP until it is restored below.
	XCHGQ	SP, ·kstackTop(SB)
	SUBQ	$trapFrame__size, SP
	MOVQ	AX, trapFrame_rax(SP)
	MOVQ	·kstackTop(SB), AX
	MOVQ	AX, trapFrame_rsp(SP)
	LEAQ	trapFrame__size(SP), AX
	MOVQ	AX, ·kstackTop(SB)
	MOVQ	BX, trapFrame_rbx(SP)
	MOVQ	CX, trapFrame_rcx(SP)
	MOVQ	CX, trapFrame_rip(SP)
	MOVQ	DX, trapFrame_rdx(SP)
	MOVQ	SI, trapFrame_rsi(SP)
	MOVQ	DI, trapFrame_rdi(SP)
	MOVQ	BP, trapFrame_rbp(SP)
	MOVQ	R8, trapFrame_r8(SP)
	MOVQ	R9, trapFrame_r9(SP)
	MOVQ	R10, trapFrame_r10(SP)
	MOVQ	R11, trapFrame_r11(SP)
	MOVQ	R11, trapFrame_rflags(SP)
	MOVQ	R12, trapFrame_r12(SP)
	MOVQ	R13, trapFrame_r13(SP)
	MOVQ	R14, trapFrame_r14(SP)
	MOVQ	R15, trapFrame_r15(SP)
	MOVQ	$const_vecSyscall, trapFrame_vector(SP)
	MOVQ	$const_selUserCode, trapFrame_cs(SP)
	MOVQ	$const_selUserData, trapFrame_ss(SP)
	MOVW	CS, AX
	ANDL	$3, AX
	MOVB	AX, ·handlerCPL(SB)
	MOVQ	·kernelFS(SB), AX
	WRFSBASE_AX
	MOVQ	SP, AX
	SUBQ	$8, SP
	MOVQ	AX, 0(SP)
	CALL	·countSyscall(SB) // apart from syscall's nosplit chains
	CALL	·syscall(SB)
	ADDQ	$8, SP
	CMPB	·fullReturn(SB), $0
	JNE	full
	JMP	·sysexit(SB)
full:
	MOVB	$0, ·fullReturn(SB)
	JMP	·intrExit(SB)

// func sysexit()
// Returns to user mode from the trapFrame at SP: restores the registers and
// the user FS base, then SYSRETQ in architectural ring 0, or a jump where the
// handler runs at RPL 3 (paging-based KVM, where SYSRETQ raises #GP). RCX and
// R11 are clobbered, as Linux does (rip and rflags); user mode always runs
// with interrupts on.
TEXT ·sysexit(SB),NOSPLIT|NOFRAME,$0
	MOVQ	·userFS(SB), AX
	WRFSBASE_AX
	MOVQ	trapFrame_rax(SP), AX
	MOVQ	trapFrame_rbx(SP), BX
	MOVQ	trapFrame_rdx(SP), DX
	MOVQ	trapFrame_rsi(SP), SI
	MOVQ	trapFrame_rdi(SP), DI
	// XCHGQ rather than MOVQ: the frame is dead, and vet's framepointer
	// check takes the exchange for the save it wants before BP changes.
	XCHGQ	BP, trapFrame_rbp(SP)
	MOVQ	trapFrame_r8(SP), R8
	MOVQ	trapFrame_r9(SP), R9
	MOVQ	trapFrame_r10(SP), R10
	MOVQ	trapFrame_r12(SP), R12
	MOVQ	trapFrame_r13(SP), R13
	MOVQ	trapFrame_r14(SP), R14
	MOVQ	trapFrame_r15(SP), R15
	MOVQ	trapFrame_rip(SP), CX
	MOVQ	trapFrame_rflags(SP), R11
	ORQ	$const_rflagsIF, R11
	MOVQ	trapFrame_rsp(SP), SP
	CMPB	·handlerCPL(SB), $0
	JNE	rpl3
	SYSRETQ
rpl3:
	JMP	CX

// func intrCommon()
// Common path of every interrupt and exception stub. Trap context, interrupts
// off (interrupt gates). The CPU has pushed the IRET frame on the kernel stack
// from TSS.RSP0, the stub the error code and vector: together with the
// registers saved here they form a trapFrame.
//
// On a paging-based KVM an exception arrives in ring 0, which is emulated and
// whose emulator knows no SSE, so no Go code can run there: intrCommon
// IRETQs at once to intrNative at CPL 3, on the same kernel stack.
TEXT ·intrCommon(SB),NOSPLIT|NOFRAME,$0
	SUBQ	$(15*8), SP
	MOVQ	AX, trapFrame_rax(SP)
	MOVQ	BX, trapFrame_rbx(SP)
	MOVQ	CX, trapFrame_rcx(SP)
	MOVQ	DX, trapFrame_rdx(SP)
	MOVQ	SI, trapFrame_rsi(SP)
	MOVQ	DI, trapFrame_rdi(SP)
	MOVQ	BP, trapFrame_rbp(SP)
	MOVQ	R8, trapFrame_r8(SP)
	MOVQ	R9, trapFrame_r9(SP)
	MOVQ	R10, trapFrame_r10(SP)
	MOVQ	R11, trapFrame_r11(SP)
	MOVQ	R12, trapFrame_r12(SP)
	MOVQ	R13, trapFrame_r13(SP)
	MOVQ	R14, trapFrame_r14(SP)
	MOVQ	R15, trapFrame_r15(SP)
	CMPB	·handlerCPL(SB), $0
	JEQ	native // architectural: ring 0 runs at full speed
	MOVW	CS, AX
	ANDL	$3, AX
	JNE	native // a soft interrupt: already outside ring 0
	// The #GP of invlpgAX's INVLPG: do it here, in ring 0, and go on after
	// it (INVLPG (RAX) is 3 bytes: 0F 01 38).
	CMPQ	trapFrame_vector(SP), $13
	JNE	notinvlpg
	LEAQ	·invlpgAX(SB), AX
	CMPQ	AX, trapFrame_rip(SP)
	JNE	notinvlpg
	MOVQ	trapFrame_rax(SP), AX
	INVLPG	(AX)
	ADDQ	$3, trapFrame_rip(SP)
	ADDQ	$(17*8), SP // AX is the only register changed
	IRETQ
notinvlpg:
	CMPQ	trapFrame_vector(SP), $14
	JNE	nocr2
	MOVQ	CR2, AX // only ring 0 can read it
	MOVQ	AX, ·faultCR2(SB)
nocr2:
	MOVQ	SP, AX
	PUSHQ	$const_selUserData
	PUSHQ	AX
	PUSHQ	·iretFlags(SB)
	PUSHQ	$const_selUserCode
	LEAQ	·intrNative(SB), AX
	PUSHQ	AX
	IRETQ
native:
	JMP	·intrNative(SB)

// func intrNative()
// The rest of intrCommon, outside emulated ring 0: kernel TLS, the vector
// state (the interrupted code owns every register, and trap runs Go code and
// may switch threads), then trap.
TEXT ·intrNative(SB),NOSPLIT|NOFRAME,$0
	MOVQ	·kernelFS(SB), AX
	WRFSBASE_AX
	MOVQ	·curXsave(SB), DI
	MOVL	$-1, AX
	MOVL	$-1, DX
	CMPB	·useXsave(SB), $0
	JEQ	fxsave
	XSAVE64	(DI)
	JMP	saved
fxsave:
	FXSAVE64	(DI)
saved:
	MOVQ	SP, AX
	SUBQ	$8, SP
	MOVQ	AX, 0(SP)
	CALL	·trap(SB)
	ADDQ	$8, SP
	JMP	·intrExit(SB)

// func intrExit()
// Returns from an interrupt to the trapFrame at SP: every register, the
// vector state and the user FS base come back, then IRETQ.
TEXT ·intrExit(SB),NOSPLIT|NOFRAME,$0
	MOVQ	·curXsave(SB), DI
	MOVL	$-1, AX
	MOVL	$-1, DX
	CMPB	·useXsave(SB), $0
	JEQ	fxrstor
	XRSTOR64	(DI)
	JMP	restored
fxrstor:
	FXRSTOR64	(DI)
restored:
	MOVQ	·userFS(SB), AX
	WRFSBASE_AX
	MOVQ	trapFrame_rax(SP), AX
	MOVQ	trapFrame_rbx(SP), BX
	MOVQ	trapFrame_rcx(SP), CX
	MOVQ	trapFrame_rdx(SP), DX
	MOVQ	trapFrame_rsi(SP), SI
	MOVQ	trapFrame_rdi(SP), DI
	XCHGQ	BP, trapFrame_rbp(SP) // see sysexit
	MOVQ	trapFrame_r8(SP), R8
	MOVQ	trapFrame_r9(SP), R9
	MOVQ	trapFrame_r10(SP), R10
	MOVQ	trapFrame_r11(SP), R11
	MOVQ	trapFrame_r12(SP), R12
	MOVQ	trapFrame_r13(SP), R13
	MOVQ	trapFrame_r14(SP), R14
	MOVQ	trapFrame_r15(SP), R15
	ADDQ	$(17*8), SP // registers, vector, error code
	IRETQ

// Interrupt and exception stubs: vectors 0-31 (exceptions, SDM Vol. 3A
// §7.3) and const_vecTimer. Each pushes an error code where the CPU does not,
// and its vector.
// func intr0()
TEXT ·intr0(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$0
	JMP	·intrCommon(SB)

// func intr1()
TEXT ·intr1(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$1
	JMP	·intrCommon(SB)

// func intr2()
TEXT ·intr2(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$2
	JMP	·intrCommon(SB)

// func intr3()
TEXT ·intr3(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$3
	JMP	·intrCommon(SB)

// func intr4()
TEXT ·intr4(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$4
	JMP	·intrCommon(SB)

// func intr5()
TEXT ·intr5(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$5
	JMP	·intrCommon(SB)

// func intr6()
TEXT ·intr6(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$6
	JMP	·intrCommon(SB)

// func intr7()
TEXT ·intr7(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$7
	JMP	·intrCommon(SB)

// func intr8()
TEXT ·intr8(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$8
	JMP	·intrCommon(SB)

// func intr9()
TEXT ·intr9(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$9
	JMP	·intrCommon(SB)

// func intr10()
TEXT ·intr10(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$10
	JMP	·intrCommon(SB)

// func intr11()
TEXT ·intr11(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$11
	JMP	·intrCommon(SB)

// func intr12()
TEXT ·intr12(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$12
	JMP	·intrCommon(SB)

// func intr13()
TEXT ·intr13(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$13
	JMP	·intrCommon(SB)

// func intr14()
TEXT ·intr14(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$14
	JMP	·intrCommon(SB)

// func intr15()
TEXT ·intr15(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$15
	JMP	·intrCommon(SB)

// func intr16()
TEXT ·intr16(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$16
	JMP	·intrCommon(SB)

// func intr17()
TEXT ·intr17(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$17
	JMP	·intrCommon(SB)

// func intr18()
TEXT ·intr18(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$18
	JMP	·intrCommon(SB)

// func intr19()
TEXT ·intr19(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$19
	JMP	·intrCommon(SB)

// func intr20()
TEXT ·intr20(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$20
	JMP	·intrCommon(SB)

// func intr21()
TEXT ·intr21(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$21
	JMP	·intrCommon(SB)

// func intr22()
TEXT ·intr22(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$22
	JMP	·intrCommon(SB)

// func intr23()
TEXT ·intr23(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$23
	JMP	·intrCommon(SB)

// func intr24()
TEXT ·intr24(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$24
	JMP	·intrCommon(SB)

// func intr25()
TEXT ·intr25(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$25
	JMP	·intrCommon(SB)

// func intr26()
TEXT ·intr26(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$26
	JMP	·intrCommon(SB)

// func intr27()
TEXT ·intr27(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$27
	JMP	·intrCommon(SB)

// func intr28()
TEXT ·intr28(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$28
	JMP	·intrCommon(SB)

// func intr29()
TEXT ·intr29(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$29
	JMP	·intrCommon(SB)

// func intr30()
TEXT ·intr30(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$30
	JMP	·intrCommon(SB)

// func intr31()
TEXT ·intr31(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$31
	JMP	·intrCommon(SB)

// func intr32()
TEXT ·intr32(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$32
	JMP	·intrCommon(SB)

// func intr33()
TEXT ·intr33(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$33
	JMP	·intrCommon(SB)

// func intrStubs(pcs *[nIntrStubs]uintptr)
TEXT ·intrStubs(SB),NOSPLIT,$0-8
	MOVQ	pcs+0(FP), DI
	LEAQ	·intr0(SB), AX
	MOVQ	AX, 0(DI)
	LEAQ	·intr1(SB), AX
	MOVQ	AX, 8(DI)
	LEAQ	·intr2(SB), AX
	MOVQ	AX, 16(DI)
	LEAQ	·intr3(SB), AX
	MOVQ	AX, 24(DI)
	LEAQ	·intr4(SB), AX
	MOVQ	AX, 32(DI)
	LEAQ	·intr5(SB), AX
	MOVQ	AX, 40(DI)
	LEAQ	·intr6(SB), AX
	MOVQ	AX, 48(DI)
	LEAQ	·intr7(SB), AX
	MOVQ	AX, 56(DI)
	LEAQ	·intr8(SB), AX
	MOVQ	AX, 64(DI)
	LEAQ	·intr9(SB), AX
	MOVQ	AX, 72(DI)
	LEAQ	·intr10(SB), AX
	MOVQ	AX, 80(DI)
	LEAQ	·intr11(SB), AX
	MOVQ	AX, 88(DI)
	LEAQ	·intr12(SB), AX
	MOVQ	AX, 96(DI)
	LEAQ	·intr13(SB), AX
	MOVQ	AX, 104(DI)
	LEAQ	·intr14(SB), AX
	MOVQ	AX, 112(DI)
	LEAQ	·intr15(SB), AX
	MOVQ	AX, 120(DI)
	LEAQ	·intr16(SB), AX
	MOVQ	AX, 128(DI)
	LEAQ	·intr17(SB), AX
	MOVQ	AX, 136(DI)
	LEAQ	·intr18(SB), AX
	MOVQ	AX, 144(DI)
	LEAQ	·intr19(SB), AX
	MOVQ	AX, 152(DI)
	LEAQ	·intr20(SB), AX
	MOVQ	AX, 160(DI)
	LEAQ	·intr21(SB), AX
	MOVQ	AX, 168(DI)
	LEAQ	·intr22(SB), AX
	MOVQ	AX, 176(DI)
	LEAQ	·intr23(SB), AX
	MOVQ	AX, 184(DI)
	LEAQ	·intr24(SB), AX
	MOVQ	AX, 192(DI)
	LEAQ	·intr25(SB), AX
	MOVQ	AX, 200(DI)
	LEAQ	·intr26(SB), AX
	MOVQ	AX, 208(DI)
	LEAQ	·intr27(SB), AX
	MOVQ	AX, 216(DI)
	LEAQ	·intr28(SB), AX
	MOVQ	AX, 224(DI)
	LEAQ	·intr29(SB), AX
	MOVQ	AX, 232(DI)
	LEAQ	·intr30(SB), AX
	MOVQ	AX, 240(DI)
	LEAQ	·intr31(SB), AX
	MOVQ	AX, 248(DI)
	LEAQ	·intr32(SB), AX
	MOVQ	AX, 256(DI)
	LEAQ	·intr33(SB), AX
	MOVQ	AX, 264(DI)
	RET

// func softEntryPC() uintptr
TEXT ·softEntryPC(SB),NOSPLIT,$0-8
	LEAQ	·intrCommon(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func sysexitPC() uintptr
TEXT ·sysexitPC(SB),NOSPLIT,$0-8
	LEAQ	·sysexit(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func swtch(save *uintptr, sp, fs uintptr)
// Saves the kernel stack pointer of the running thread in *save and resumes
// the thread whose kernel stack is sp, with fs as its kernel TLS. Trap context.
TEXT ·swtch(SB),NOSPLIT,$0-24
	MOVQ	save+0(FP), BX
	MOVQ	sp+8(FP), CX
	MOVQ	fs+16(FP), AX
	PUSHQ	BP
	MOVQ	SP, 0(BX)
	MOVQ	CX, SP
	WRFSBASE_AX
	POPQ	BP
	RET

// func hypercall(nr uintptr)
// One 8-byte store to the doorbell, which exits to the monitor (package abi).
TEXT ·hypercall(SB),NOSPLIT,$0-8
	MOVQ	nr+0(FP), AX
	MOVQ	$const_doorbell, BX
	MOVQ	AX, 0(BX)
	RET

// func kptr(a uintptr) unsafe.Pointer
TEXT ·kptr(SB),NOSPLIT,$0-16
	MOVQ	a+0(FP), AX
	MOVQ	AX, ret+8(FP)
	RET

// func load64(addr uintptr) uint64
TEXT ·load64(SB),NOSPLIT,$0-16
	MOVQ	addr+0(FP), AX
	MOVQ	0(AX), AX
	MOVQ	AX, ret+8(FP)
	RET

// func store64(addr uintptr, v uint64)
TEXT ·store64(SB),NOSPLIT,$0-16
	MOVQ	addr+0(FP), AX
	MOVQ	v+8(FP), BX
	MOVQ	BX, 0(AX)
	RET

// func wrmsr(msr uint32, v uint64)
// CPL 0 only: the PVH platform's kernel runs in ring 0.
TEXT ·wrmsr(SB),NOSPLIT,$0-16
	MOVL	msr+0(FP), CX
	MOVQ	v+8(FP), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	WRMSR
	RET

// func xchg64(addr uintptr, v uint64) uint64
// An atomic exchange: the monitor writes the word from another host thread.
TEXT ·xchg64(SB),NOSPLIT,$0-24
	MOVQ	addr+0(FP), BX
	MOVQ	v+8(FP), AX
	XCHGQ	AX, 0(BX)
	MOVQ	AX, ret+16(FP)
	RET

// func memclr(addr, n uintptr)
TEXT ·memclr(SB),NOSPLIT,$0-16
	MOVQ	addr+0(FP), DI
	MOVQ	n+8(FP), CX
	XORL	AX, AX
	CLD
	REP; STOSB
	RET

// func memmove(dst, src, n uintptr)
// Forward copy; the kernel never copies between overlapping ranges.
TEXT ·memmove(SB),NOSPLIT,$0-24
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	n+16(FP), CX
	CLD
	REP; MOVSB
	RET

// func spinPause()
// A spin-wait hint (PAUSE): the 9P client's poll of a device's used ring.
TEXT ·spinPause(SB),NOSPLIT,$0-0
	PAUSE
	RET

// func rdtsc() uint64
TEXT ·rdtsc(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func xgetbv() uint64
// XCR0, the enabled XSAVE components.
TEXT ·xgetbv(SB),NOSPLIT,$0-8
	MOVL	$0, CX
	XGETBV
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func rdrand() (v uint64, ok bool)
TEXT ·rdrand(SB),NOSPLIT,$0-9
	BYTE $0x48; BYTE $0x0f; BYTE $0xc7; BYTE $0xf0 // RDRAND RAX
	SETCS	ok+8(FP)
	MOVQ	AX, v+0(FP)
	RET

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	leaf+0(FP), AX
	MOVL	sub+4(FP), CX
	CPUID
	MOVL	AX, a+8(FP)
	MOVL	BX, b+12(FP)
	MOVL	CX, c+16(FP)
	MOVL	DX, d+20(FP)
	RET

// func readCR2() uintptr
// The faulting address of the last page fault; in ring 0 only.
TEXT ·readCR2(SB),NOSPLIT,$0-8
	MOVQ	CR2, AX
	MOVQ	AX, ret+0(FP)
	RET

// func invlpg(va uintptr)
TEXT ·invlpg(SB),NOSPLIT,$0-8
	MOVQ	va+0(FP), AX
	CALL	·invlpgAX(SB)
	RET

// func invlpgAX()
// INVLPG (RAX). Outside ring 0 (paging-based KVM) it raises #GP, and
// intrCommon completes it in ring 0: see there.
TEXT ·invlpgAX(SB),NOSPLIT|NOFRAME,$0
	INVLPG	(AX)
	RET

// func imageEnd() uintptr
// The end of the image's BSS, from the linker.
TEXT ·imageEnd(SB),NOSPLIT,$0-8
	LEAQ	runtime·end(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func imageText() uintptr
// The start of the image's text, from the linker.
TEXT ·imageText(SB),NOSPLIT,$0-8
	LEAQ	runtime·text(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func vdsoClockGettime()
// __vdso_clock_gettime of the vDSO (vdso.go), C calling convention: DI =
// clock id, SI = *timespec, returns 0 in AX; uses only caller-saved
// registers. The same arithmetic as nanotime and walltime in time.go; other
// clocks go to the system call.
TEXT ·vdsoClockGettime(SB),NOSPLIT|NOFRAME,$0
	XORL	R8, R8
	CMPL	DI, $1 // CLOCK_MONOTONIC
	JEQ	compute
	CMPL	DI, $4 // CLOCK_MONOTONIC_RAW
	JEQ	compute
	CMPL	DI, $6 // CLOCK_MONOTONIC_COARSE
	JEQ	compute
	CMPL	DI, $7 // CLOCK_BOOTTIME
	JEQ	compute
	MOVQ	·wall0(SB), R8
	CMPL	DI, $0 // CLOCK_REALTIME
	JEQ	compute
	CMPL	DI, $5 // CLOCK_REALTIME_COARSE
	JEQ	compute
	MOVL	$228, AX // SYS_clock_gettime
	SYSCALL
	RET
compute:
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	SUBQ	·tsc0(SB), AX
	MULQ	·tscMult(SB)
	SHRQ	$32, AX
	SHLQ	$32, DX
	ORQ	DX, AX
	ADDQ	R8, AX
	XORL	DX, DX
	MOVQ	$1000000000, CX
	DIVQ	CX
	MOVQ	AX, 0(SI)
	MOVQ	DX, 8(SI)
	XORL	AX, AX
	RET

// func vdsoClockGettimePC() uintptr
TEXT ·vdsoClockGettimePC(SB),NOSPLIT,$0-8
	LEAQ	·vdsoClockGettime(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func pvhEntryPC() uintptr
TEXT ·pvhEntryPC(SB),NOSPLIT,$0-8
	LEAQ	·pvhEntry(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func outb(port uint16, v uint8)
TEXT ·outb(SB),NOSPLIT,$0-3
	MOVW	port+0(FP), DX
	MOVB	v+2(FP), AX
	OUTB
	RET

// func inb(port uint16) uint8
TEXT ·inb(SB),NOSPLIT,$0-9
	MOVW	port+0(FP), DX
	XORL	AX, AX
	INB
	MOVB	AX, ret+8(FP)
	RET

// func outl(port uint16, v uint32)
TEXT ·outl(SB),NOSPLIT,$0-8
	MOVW	port+0(FP), DX
	MOVL	v+4(FP), AX
	OUTL
	RET

// func outw(port uint16, v uint16)
TEXT ·outw(SB),NOSPLIT,$0-4
	MOVW	port+0(FP), DX
	MOVW	v+2(FP), AX
	OUTW
	RET

// func inw(port uint16) uint16
TEXT ·inw(SB),NOSPLIT,$0-10
	MOVW	port+0(FP), DX
	XORL	AX, AX
	INW
	MOVW	AX, ret+8(FP)
	RET

// func store8(addr uintptr, v uint8)
// A one-byte store: device registers that take no wider access.
TEXT ·store8(SB),NOSPLIT,$0-9
	MOVQ	addr+0(FP), AX
	MOVB	v+8(FP), BX
	MOVB	BX, 0(AX)
	RET

// func inl(port uint16) uint32
TEXT ·inl(SB),NOSPLIT,$0-12
	MOVW	port+0(FP), DX
	INL
	MOVL	AX, ret+8(FP)
	RET

// func ioLoad8(addr uintptr) uint8
// A one-byte load, for device registers that take no wider access.
TEXT ·ioLoad8(SB),NOSPLIT,$0-9
	MOVQ	addr+0(FP), AX
	MOVB	0(AX), AX
	MOVB	AX, ret+8(FP)
	RET

// func ioLoad16(addr uintptr) uint16
TEXT ·ioLoad16(SB),NOSPLIT,$0-10
	MOVQ	addr+0(FP), AX
	MOVW	0(AX), AX
	MOVW	AX, ret+8(FP)
	RET

// func ioStore16(addr uintptr, v uint16)
TEXT ·ioStore16(SB),NOSPLIT,$0-10
	MOVQ	addr+0(FP), AX
	MOVW	v+8(FP), BX
	MOVW	BX, 0(AX)
	RET

// func load32(addr uintptr) uint32
// A 32-bit load: device registers (the local APIC) take no wider access.
TEXT ·load32(SB),NOSPLIT,$0-12
	MOVQ	addr+0(FP), AX
	MOVL	0(AX), AX
	MOVL	AX, ret+8(FP)
	RET

// func store32(addr uintptr, v uint32)
TEXT ·store32(SB),NOSPLIT,$0-12
	MOVQ	addr+0(FP), AX
	MOVL	v+8(FP), BX
	MOVL	BX, 0(AX)
	RET

// func stiHlt()
// Waits for the next interrupt in ring 0 (the PVH platform's idle): STI
// takes effect after HLT, so no interrupt slips in between (SDM Vol. 2B, STI).
TEXT ·stiHlt(SB),NOSPLIT,$0-0
	STI
	HLT
	CLI
	RET
