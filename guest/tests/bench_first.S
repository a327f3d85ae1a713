/*
 * bench_first: the start-up benchmark's guest (bench/footprint), a multiboot
 * v1 image without the runtime. Its first instruction writes '!' to COM1's
 * transmit register (0x3f8), so the first byte on the VMM's console marks
 * the guest's first instruction; then it ends the run through the exit port
 * 0xf4 (value 0: status 1 under vmmux and under QEMU's isa-debug-exit).
 */
	.section .multiboot, "a"
	.balign 4
	.long 0x1BADB002		/* magic */
	.long 0x00000003		/* flags: page-align modules, memory info */
	.long -(0x1BADB002 + 0x00000003)

	.section .text.start, "ax"
	.code32
	.globl _start
	.type _start, @function
_start:
	movb $0x21, %al
	movw $0x3f8, %dx
	outb %al, %dx
	movb $0x0a, %al
	outb %al, %dx
	xorl %eax, %eax
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
