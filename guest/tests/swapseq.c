/*
 * swapseq: the hot-swap guest. Programs the UART at 0x3f8 (divisor latch
 * 0x000c, LCR 0x03, IER 0x00, scratch 0x5a), prints "ready", then
 * SWAPSEQ_N numbered lines "swap 00000".."swap NNNNN", then reads the
 * registers back and prints them: "regs dll=0c dlm=00 lcr=03 ier=00
 * scr=5a" when they survived whatever happened to the UART's VMM meanwhile.
 * Exit code 0 (status 1).
 */
#include "rt.h"

#ifndef SWAPSEQ_N
#define SWAPSEQ_N 2000
#endif

#define COM1 0x3f8

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x0c);
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);
	outb(COM1 + 1, 0x00);
	outb(COM1 + 7, 0x5a);
	puts("ready\n");
	for (unsigned i = 0; i < SWAPSEQ_N; i++)
		printf("swap %05u\n", i);
	outb(COM1 + 3, 0x83);
	unsigned dll = inb(COM1 + 0), dlm = inb(COM1 + 1);
	outb(COM1 + 3, 0x03);
	unsigned lcr = inb(COM1 + 3), ier = inb(COM1 + 1), scr = inb(COM1 + 7);
	printf("regs dll=%02x dlm=%02x lcr=%02x ier=%02x scr=%02x\n", dll, dlm, lcr, ier, scr);
	return 0;
}
