/*
 * start64.S: entry of the 64-bit guests and the IDT stubs.
 *
 * Entry (src/vm/cpu_setup.h): long mode, identity paging, RIP = _start,
 * RSI = vCPU index, RDX = vCPU count, RSP = this vCPU's stack (16-byte
 * aligned minus 8, as after a call), at CPL0, or at CPL3 with IOPL=3.
 *
 * vCPU 0 zeroes .bss, records the top of RAM (for rt_cpu_index), fills the
 * IDT (CPL0) and then releases the other vCPUs, which spin until it has.
 * Every vCPU loads the IDT (CPL0), calls main(index, count) and ends the run
 * with exit(main's return value).
 */
	.section .text.start, "ax"
	.code64
	.globl _start
	.type _start, @function
_start:
	cld
	movl %esi, %r12d		/* callee-saved across the calls below */
	movl %edx, %r13d
	pushq $0			/* align RSP to 16 for calls; ends backtraces */
	xorl %ebp, %ebp
	testl %esi, %esi
	jnz 2f

	/* vCPU 0: zero .bss (8-byte multiples: the linker script aligns it) */
	leaq __bss_start(%rip), %rdi
	leaq __bss_end(%rip), %rcx
	subq %rdi, %rcx
	shrq $3, %rcx
	xorl %eax, %eax
	rep stosq
	leaq 16(%rsp), %rax		/* RSP at entry + 8 = the top of RAM */
	movq %rax, rt_ram_top(%rip)
	call rt_init_boot
	movl $1, rt_boot_ready(%rip)
	jmp 3f

1:	pause
2:	cmpl $0, rt_boot_ready(%rip)
	je 1b

3:	call rt_init_cpu
	movl %r12d, %edi
	movl %r13d, %esi
	call main
	movl %eax, %edi
	call exit
	ud2
	.size _start, . - _start

/*
 * IDT stubs. Each pushes an error code (0 when the CPU pushes none) and its
 * vector, then the common part saves the GPRs, calls rt_exception(frame)
 * and returns to frame->rip (which rt_exception may have changed). The
 * gates are interrupt gates: the CPU clears RFLAGS.IF on entry and IRETQ
 * restores it.
 */
	.text
	.macro STUB vec, has_err
	.balign 16
rt_isr_\vec:
	.if \has_err == 0
	pushq $0
	.endif
	pushq $\vec
	jmp rt_isr_common
	.endm

	STUB 0, 0
	STUB 1, 0
	STUB 2, 0
	STUB 3, 0
	STUB 4, 0
	STUB 5, 0
	STUB 6, 0
	STUB 7, 0
	STUB 8, 1
	STUB 9, 0
	STUB 10, 1
	STUB 11, 1
	STUB 12, 1
	STUB 13, 1
	STUB 14, 1
	STUB 15, 0
	STUB 16, 0
	STUB 17, 1
	STUB 18, 0
	STUB 19, 0
	STUB 20, 0
	STUB 21, 1
	STUB 22, 0
	STUB 23, 0
	STUB 24, 0
	STUB 25, 0
	STUB 26, 0
	STUB 27, 0
	STUB 28, 0
	STUB 29, 1
	STUB 30, 1
	STUB 31, 0

/*
 * Stubs of the interrupt vectors 32-255, RT_IRQ_STUB_SIZE (16) bytes apart
 * from rt_irq_stubs: vector V's stub is at rt_irq_stubs + (V - 32) * 16.
 * The CPU pushes no error code for them; each pushes 0 and its vector and
 * joins the exceptions' common part (rt_exception hands vectors >= 32 to
 * the handler that rt_irq_set_handler installed).
 */
	.balign 16
	.globl rt_irq_stubs
rt_irq_stubs:
	.set rt_vec, 32
	.rept 224
1:	pushq $0
	pushq $rt_vec
	jmp rt_isr_common
	.org 1b + 16			/* the assembler fails if a stub is longer */
	.set rt_vec, rt_vec + 1
	.endr

	.balign 16
rt_isr_common:
	/* The CPU aligned RSP to 16 before pushing 5 (or 6 with the stub's
	 * 0) quadwords; with the vector and 15 GPRs that makes 22 quadwords,
	 * so RSP is 16-byte aligned at the call. */
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call rt_exception
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp			/* vector and error code */
	iretq

	.section .rodata
	.balign 8
	.globl rt_isr_table
rt_isr_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad rt_isr_\v
	.endr

	.data
	.balign 8
	.globl rt_boot_ready
rt_boot_ready:			/* in .data: the image load resets it to 0 */
	.long 0
	.long 0

	.bss
	.balign 8
	.globl rt_ram_top
rt_ram_top:
	.quad 0

	.section .note.GNU-stack, "", @progbits
