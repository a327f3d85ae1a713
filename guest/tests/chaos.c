/*
 * chaos: the guest of the chaos harness (tests/chaos/chaos.py) and of the
 * control-plane regression tests, for 2 vCPUs at CPL3 (--cpu-mode user).
 * Each vCPU writes numbered streams, each value once, in order, so that a
 * VMM's log shows every lost, repeated or reordered value, and reads values
 * back from VMMs that keep state:
 *
 *   port         who   what                                  route (harness)
 *   0x80-0x83    vCPU0 sync  32-bit OUT of s0 = 0, 1, 2 ... to 0x80 + (s0 & 3)
 *   0x84-0x87    vCPU1 sync  32-bit OUT of s1 = 0, 1, 2 ... to 0x84 + (s1 & 3)
 *                                                        io:0x80-0x87=monitor
 *   0x88, 0x89   vCPU0, vCPU1 posted: 32-bit OUT of p0 / p1 = 0, 1, 2 ...
 *                                               io:0x88-0x8b=monitor;posted
 *   0x8c         vCPU1 doorbell: 8-bit OUT of 1, counted in db
 *                                               io:0x8c=monitor;doorbell
 *   0x90         vCPU1 32-bit OUT of e = 0, 1, 2 ..., then a 32-bit IN from
 *                0x90 that must return e (a VMM that keeps the last value
 *                written: tests/vmms/vmm_chaos)          io:0x90-0x93=ext
 *   0x9d         vCPU1 doorbell: 8-bit OUT of 1, counted in x; the VMM
 *                (vmm_chaos) counts the rings it handled in its state, and
 *                at the end vCPU1 reads that count back from 0x9d (a read
 *                on a doorbell route exits to the same VMM), up to
 *                CHAOS_XREADS times until it equals x (the rings travel
 *                apart from the read), and reports the last read as xr
 *                                                  io:0x9d=ext;doorbell
 *   0x94         vCPU1 every CHAOS_HOSTILE_EVERY rounds a 32-bit OUT of h
 *                (a hostile VMM's port; not checked)     io:0x94-0x97=...
 *   0x3f8-0x3ff  vCPU0 the UART: a line "u NNNNNNN\n" (u = 0, 1, 2 ...) to
 *                THR every round, then SCR written with the round number's
 *                low byte and read back: it must return it (the UART's
 *                state carries across restarts and swaps)
 *                                                        io:0x3f8-0x3ff=uart
 *   0x2f8-0x2ff  vCPU0 the control UART (in-process, input=stdin, output a
 *                file): a byte received (LSR.DR, polled every 4 rounds)
 *                ends the streams; the report goes out there
 *   0xf4         exit device
 *
 * A round of vCPU0: 16 sync writes, 4 posted writes, one UART line, one SCR
 * check; of vCPU1: 16 sync writes, 8 posted writes, one doorbell, one
 * write/read-back at 0x90, one ring of 0x9d. vCPU1 stops when vCPU0 tells
 * it to (and reads the ring count back). Then vCPU0 prints on the control
 * UART
 *
 *   chaos s0=N s1=N p0=N p1=N db=N e=N u=N scr=N bad_scr=N bad_e=N h=N x=N xr=N
 *
 * (how many values each stream wrote: the next value it would have
 * written; scr the SCR checks, bad_scr and bad_e the read-backs that did
 * not return what was written), then waits for a second byte on the
 * control UART (at most CHAOS_END_POLLS polls of its LSR, about 2 minutes
 * here) so that the harness may end the run with SIGTERM while the guest
 * still runs, and exits with code 0 (status 1) when every read-back matched
 * (xr == x included), else code 3 (status 7).
 */
#include "rt.h"

#define SYNC0_PORT   0x80
#define SYNC1_PORT   0x84
#define POSTED_PORT  0x88
#define DOORBELL     0x8c
#define EXT_PORT     0x90
#define HOSTILE_PORT 0x94
#define RING_PORT    0x9d
#define UART	     0x3f8
#define CTL_UART     0x2f8

#ifndef CHAOS_HOSTILE_EVERY
#define CHAOS_HOSTILE_EVERY 64
#endif
#ifndef CHAOS_END_POLLS
#define CHAOS_END_POLLS 2000000
#endif
#ifndef CHAOS_XREADS
#define CHAOS_XREADS 20000
#endif

static volatile uint32_t stop;
static volatile uint32_t done1;
static volatile uint32_t s1, p1, db, e, bad_e, h, x, xr;

/* "u NNNNNNN\n": the UART line of round U, one THR write per byte (the
 * UART's THR is always empty: no LSR poll). */
static void uart_line(uint32_t u)
{
	char line[] = "u 0000000\n";
	for (int d = 8; d >= 2; d--) {
		line[d] = (char)('0' + u % 10);
		u /= 10;
	}
	for (const char *c = line; *c != '\0'; c++)
		outb(UART, (uint8_t)*c);
}

static void ctl_puts(const char *s)
{
	for (; *s != '\0'; s++)
		outb(CTL_UART, (uint8_t)*s);
}

/* Decimal text of V at *P (no terminator); advances *P. */
static void put_u32(char **p, uint32_t v)
{
	char tmp[10];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*(*p)++ = tmp[--n];
}

static void put_field(char **p, const char *name, uint32_t v)
{
	while (*name != '\0')
		*(*p)++ = *name++;
	*(*p)++ = '=';
	put_u32(p, v);
}

static void vcpu1(void)
{
	uint32_t n = 0, rounds = 0;
	while (!stop) {
		for (int k = 0; k < 16; k++, n++)
			outl(SYNC1_PORT + (n & 3), n);
		s1 = n;
		for (int k = 0; k < 8; k++)
			outl(POSTED_PORT + 1, p1++);
		outb(DOORBELL, 1);
		db++;
		outl(EXT_PORT, e);
		if (inl(EXT_PORT) != e)
			bad_e++;
		e++;
		outb(RING_PORT, 1);
		x++;
		if (++rounds % CHAOS_HOSTILE_EVERY == 0)
			outl(HOSTILE_PORT, h++);
	}
	for (unsigned i = 0; i < CHAOS_XREADS; i++) {
		xr = inl(RING_PORT);
		if (xr == x)
			break;
	}
	__atomic_store_n(&done1, 1, __ATOMIC_SEQ_CST);
	park();
}

int main(unsigned cpu, unsigned ncpus)
{
	if (ncpus != 2) {
		if (cpu == 0)
			ctl_puts("chaos needs 2 vCPUs\n");
		return cpu == 0 ? 2 : 0;
	}
	if (cpu == 1)
		vcpu1();
	uint32_t s0 = 0, p0 = 0, u = 0, scr = 0, bad_scr = 0;
	for (;;) {
		for (int k = 0; k < 16; k++, s0++)
			outl(SYNC0_PORT + (s0 & 3), s0);
		for (int k = 0; k < 4; k++)
			outl(POSTED_PORT, p0++);
		uart_line(u++);
		uint8_t v = (uint8_t)(scr * 37u + 11u);
		outb(UART + 7, v);
		if (inb(UART + 7) != v)
			bad_scr++;
		scr++;
		if (u % 4 == 0 && (inb(CTL_UART + 5) & 1) != 0)
			break;
	}
	stop = 1;
	while (!__atomic_load_n(&done1, __ATOMIC_SEQ_CST))
		cpu_relax();
	char buf[256], *p = buf;
	const char *head = "chaos ";
	while (*head != '\0')
		*p++ = *head++;
	put_field(&p, "s0", s0);
	*p++ = ' ';
	put_field(&p, "s1", s1);
	*p++ = ' ';
	put_field(&p, "p0", p0);
	*p++ = ' ';
	put_field(&p, "p1", p1);
	*p++ = ' ';
	put_field(&p, "db", db);
	*p++ = ' ';
	put_field(&p, "e", e);
	*p++ = ' ';
	put_field(&p, "u", u);
	*p++ = ' ';
	put_field(&p, "scr", scr);
	*p++ = ' ';
	put_field(&p, "bad_scr", bad_scr);
	*p++ = ' ';
	put_field(&p, "bad_e", bad_e);
	*p++ = ' ';
	put_field(&p, "h", h);
	*p++ = ' ';
	put_field(&p, "x", x);
	*p++ = ' ';
	put_field(&p, "xr", xr);
	*p++ = '\n';
	*p = '\0';
	ctl_puts(buf);
	/* Wait for a second byte (the first is still in RBR: take it), so
	 * that the harness can end the run with a signal while the guest
	 * runs; at most CHAOS_END_POLLS polls. */
	(void)inb(CTL_UART);
	for (unsigned i = 0; i < CHAOS_END_POLLS; i++)
		if ((inb(CTL_UART + 5) & 1) != 0)
			break;
	return bad_scr == 0 && bad_e == 0 && xr == x ? 0 : 3;
}
