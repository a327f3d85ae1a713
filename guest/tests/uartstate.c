/*
 * uartstate: the UART's registers survive a restart of the VMM that serves
 * them. Programs the 16550 at 0x3f8 (divisor latch, LCR, IER, FCR, MCR,
 * SCR), prints "ready\n", then polls (bounded: WAIT_MAX rounds) for one
 * byte of input, reading SCR on every round and counting the reads that do
 * not give back what was written; meanwhile a test restarts the UART's VMM.
 * Then it reads every register back and prints
 *
 *     input XX scr-misreads N
 *     lcr 1b ier 0c mcr 0b scr a5 iir c1 dll 34 dlm 12
 *
 * (the values as programmed when the state was carried over; XX is the
 * input byte) and exits with code 0. Without input within WAIT_MAX rounds
 * it prints "no input\n" and exits with code 2.
 */
#include "rt.h"

#define COM1 0x3f8
#define RBR  (COM1 + 0) /* DLL with DLAB */
#define IER  (COM1 + 1) /* DLM with DLAB */
#define IIR  (COM1 + 2) /* FCR on write */
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define SCR  (COM1 + 7)

#define LCR_DLAB 0x80
#define LSR_DR	 0x01

#define DLL_VALUE 0x34
#define DLM_VALUE 0x12
#define LCR_VALUE 0x1b /* 8 bits, 2 stop bits, even parity */
#define IER_VALUE 0x0c /* line status and modem status: nothing pending here */
#define FCR_VALUE 0xc1 /* FIFOs on, trigger level 14 */
#define MCR_VALUE 0x0b /* DTR, RTS, OUT2; no loopback */
#define SCR_VALUE 0xa5

/* 25 to 120 us a round here (two exits to a parallel VMM): 5 s to 25 s. */
#define WAIT_MAX 200000u

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	outb(LCR, LCR_DLAB);
	outb(RBR, DLL_VALUE);
	outb(IER, DLM_VALUE);
	outb(LCR, LCR_VALUE);
	outb(IER, IER_VALUE);
	outb(IIR, FCR_VALUE);
	outb(MCR, MCR_VALUE);
	outb(SCR, SCR_VALUE);
	puts("ready\n");

	unsigned misreads = 0, n;
	for (n = 0; n < WAIT_MAX; n++) {
		if (inb(SCR) != SCR_VALUE)
			misreads++;
		if (inb(LSR) & LSR_DR)
			break;
	}
	if (n == WAIT_MAX) {
		puts("no input\n");
		return 2;
	}
	uint8_t in = inb(RBR);
	uint8_t lcr = inb(LCR), ier = inb(IER), mcr = inb(MCR), scr = inb(SCR), iir = inb(IIR);
	outb(LCR, lcr | LCR_DLAB);
	uint8_t dll = inb(RBR), dlm = inb(IER);
	outb(LCR, lcr);
	printf("input %02x scr-misreads %u\n", in, misreads);
	printf("lcr %02x ier %02x mcr %02x scr %02x iir %02x dll %02x dlm %02x\n", lcr, ier, mcr,
	       scr, iir, dll, dlm);
	return 0;
}
