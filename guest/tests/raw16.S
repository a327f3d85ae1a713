/*
 * raw16: a real-mode flat binary loaded at 0x7c00 (CS = 0, IP = 0x7c00):
 * prints "real mode\n" on the UART at 0x3f8 (polling LSR bit 5), then
 * writes 0x05 to the exit device at 0xf4.
 */
	.code16
	.text
	.globl _start
_start:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %ss
	movw $0x7c00, %sp
	movw $msg, %si
next:
	lodsb
	testb %al, %al
	jz done
	movb %al, %bl
	movw $0x3fd, %dx
wait:
	inb %dx, %al
	testb $0x20, %al
	jz wait
	movw $0x3f8, %dx
	movb %bl, %al
	outb %al, %dx
	jmp next
done:
	movb $0x05, %al
	outb %al, $0xf4
halt:
	hlt
	jmp halt

msg:
	.asciz "real mode\n"

	.section .note.GNU-stack, "", @progbits
