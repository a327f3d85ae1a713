/*
 * start32.S: entry of the 32-bit multiboot (v1) guests.
 *
 * The multiboot header is the first thing in the image (link32.ld), so it
 * lies within the first 8 KiB of the file. Flags: bit 0 (page-align
 * modules), bit 1 (memory information); an ELF32 image is loaded from its
 * program headers. Built with -DRT_MB_AOUT, the header also sets bit 16 and
 * the a.out-kludge address fields, and a loader loads the file as one flat
 * image from the header's position instead.
 *
 * Entry: 32-bit protected mode, flat segments, paging off, EAX = 0x2BADB002,
 * EBX = the multiboot information structure. The runtime zeroes .bss, sets
 * its own stack and calls main(magic, mbi); exit(main's return value).
 */
#define MB_MAGIC	0x1BADB002
#ifdef RT_MB_AOUT
#define MB_FLAGS	0x00010003
#else
#define MB_FLAGS	0x00000003
#endif

	.section .multiboot, "a"
	.balign 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
#ifdef RT_MB_AOUT
	.long mb_header			/* header_addr */
	.long __image_start		/* load_addr: the header is the first byte */
	.long _edata			/* load_end_addr */
	.long _end			/* bss_end_addr */
	.long _start			/* entry_addr */
#endif

	.section .text.start, "ax"
	.code32
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	movl %eax, %esi			/* magic */
	movl %ebx, %ebp			/* information structure */
	movl $__bss_start, %edi
	movl $_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	movl $rt_stack_top, %esp
	subl $8, %esp			/* 16-byte aligned at the call */
	pushl %ebp
	pushl %esi
	call main
	addl $16, %esp
	pushl %eax
	pushl %eax
	pushl %eax
	pushl %eax
	call exit
	ud2
	.size _start, . - _start

	.bss
	.balign 16
rt_stack:
	.skip 16384
rt_stack_top:

	.section .note.GNU-stack, "", @progbits
