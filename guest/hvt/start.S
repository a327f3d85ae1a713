/*
 * start.S: entry of the hvt test guests. The host enters at _start in long
 * mode at CPL0 with RDI = the boot information and RSP = top of RAM - 8
 * (include/vmmux/hvt_abi.h). Zero .bss, then hvt_rt_start(boot info).
 */
	.section .interp, "a"
	.asciz "/nonexistent/solo5/"

	.section .text.start, "ax"
	.code64
	.globl _start
	.type _start, @function
_start:
	cld
	movq %rdi, %r12
	leaq __bss_start(%rip), %rdi
	leaq __bss_end(%rip), %rcx
	subq %rdi, %rcx
	shrq $3, %rcx
	xorl %eax, %eax
	rep stosq
	movq %r12, %rdi
	pushq $0			/* RSP 16-byte aligned at the call */
	xorl %ebp, %ebp
	call hvt_rt_start
1:	hlt
	jmp 1b
	.size _start, . - _start
