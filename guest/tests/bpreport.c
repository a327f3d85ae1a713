/*
 * bpreport: the breakpoint of int3, reported by the guest itself
 * (rt_report_breakpoint) instead of by an INT3 instruction, which cannot run
 * at CPL0 where KVM emulates guest kernel code. When the report is consumed
 * the guest resumes and exits 0x34.
 */
#include "rt.h"

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	puts("bpreport\n");
	rt_report_breakpoint();
	puts("resumed\n");
	return 0x34;
}
