	.code32
	.text
	.globl start
start:
	cli
	cld
	movl %ebx, %esi                 # PVH: EBX = physical address of hvm_start_info
	movl $0xf000, %esp              # scratch stack in free low memory
	# Zero PML4 and PDPT (0x3000-0x4fff).
	movl $0x3000, %edi
	xorl %eax, %eax
	movl $2048, %ecx
	rep stosl
	movl $0x4007, 0x3000            # PML4[0] = PDPT | P|RW|US
	movl $0x5007, 0x4000            # PDPT[0..3] = PD pages
	movl $0x6007, 0x4008
	movl $0x7007, 0x4010
	movl $0x8007, 0x4018
	# PD entries: 2048 x 2 MiB identity, P|RW|US|PS.
	movl $0x5000, %edi
	movl $0x87, %eax
	movl $2048, %ecx
1:	movl %eax, (%edi)
	movl $0, 4(%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 1b
	# The first 2 MiB through a page table, as the monitor maps them (abi).
	# Page 0 stays mapped until the kernel has read the start info, which
	# firmware may have put there; the first system call unmaps it.
	movl $0x9007, 0x5000            # PD[0] = PT0 | P|RW|US
	movl $0x9000, %edi
	movl $0x0007, %eax
	movl $512, %ecx
7:	movl %eax, (%edi)
	movl $0, 4(%edi)
	addl $0x1000, %eax
	addl $8, %edi
	loop 7b
	# CR4: PAE, OSFXSR, OSXMMEXCPT; FSGSBASE and OSXSAVE where CPUID has them.
	# (CR4 bits collect in EBP: CPUID writes EAX, EBX, ECX and EDX.)
	movl $0x620, %ebp
	movl $7, %eax
	xorl %ecx, %ecx
	cpuid
	testl $1, %ebx
	jz 2f
	orl $0x10000, %ebp
2:	movl $1, %eax
	cpuid
	movl %ecx, %edi                 # keep leaf 1 ECX
	testl $0x4000000, %ecx          # XSAVE
	jz 3f
	orl $0x40000, %ebp
3:	movl %ebp, %cr4
	testl $0x4000000, %edi
	jz 4f
	movl $3, %eax                   # x87, SSE
	testl $0x10000000, %edi         # AVX
	jz 5f
	movl $7, %eax
5:	xorl %edx, %edx
	xorl %ecx, %ecx
	xsetbv
4:	movl $0x3000, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx          # EFER: LME, SCE
	rdmsr
	orl $0x101, %eax
	wrmsr
	movl %cr0, %eax
	andl $0x9ffafff3, %eax          # clear CD, NW, AM, TS, EM
	orl $0x80010023, %eax           # PG, WP, NE, MP, PE
	movl %eax, %cr0
	# Load a GDT with the kernel's 64-bit code segment at 0x10, then far return to 64-bit code.
	call 6f
6:	popl %ebp
	leal (gdt - 6b)(%ebp), %eax
	movl %eax, gdtr_base - 6b(%ebp)
	lgdt (gdtr - 6b)(%ebp)
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	leal (entry64 - 6b)(%ebp), %eax
	pushl $0x10
	pushl %eax
	lret
	.balign 8
gdt:
	.quad 0
	.quad 0
	.quad 0x00af9b000000ffff
	.quad 0x00cf93000000ffff
gdtr:
	.word 31
gdtr_base:
	.long 0
	.long 0
entry64:
