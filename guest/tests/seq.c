/*
 * seq: prints the numbered lines "seq 00000\n" .. "seq NNNNN\n" (N =
 * SEQ_COUNT - 1) through the UART at 0x3f8, then exits with code 0. For
 * tests that disturb the UART's VMM while the guest writes: every line is
 * known, so a lost, reordered or repeated byte shows.
 *
 * The line is kept as text and its digits incremented in place (no
 * division per line), so the guest's own work is a few instructions per
 * byte next to the two UART accesses of each byte (LSR poll, THR write).
 */
#include "rt.h"

#ifndef SEQ_COUNT
#define SEQ_COUNT 1000
#endif
#define SEQ_DIGITS 5

_Static_assert(SEQ_COUNT >= 1 && SEQ_COUNT <= 100000, "SEQ_COUNT fits in five digits");

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	char line[] = "seq 00000\n";
	char *digits = line + 4;
	for (unsigned i = 0; i < SEQ_COUNT; i++) {
		puts(line);
		/* the next number: carry through the decimal digits */
		for (int d = SEQ_DIGITS - 1; d >= 0; d--) {
			if (digits[d] != '9') {
				digits[d]++;
				break;
			}
			digits[d] = '0';
		}
	}
	return 0;
}
