/*
 * msrkvm: MSRs that KVM itself emulates, which never leave KVM unless its
 * MSR filter sends them out: a WRMSR and an RDMSR of IA32_PAT (0x277), then
 * an RDMSR of IA32_MISC_ENABLE (0x1a0). Each access survives a #GP. Prints
 * "pat: write ok|gp, read V|gp" and "misc_enable: read V|gp". Exit code 0.
 */
#include "rt.h"

#define MSR_PAT		0x277u
#define MSR_MISC_ENABLE 0x1a0u
#define PAT_VALUE	0x0007040600070406ull /* a valid PAT, not the reset one */

static void show(const char *what, int r, uint64_t v)
{
	if (r < 0)
		printf("%s gp", what);
	else
		printf("%s %lx", what, (unsigned long)v);
}

int main(unsigned cpu, unsigned ncpus)
{
	(void)cpu;
	(void)ncpus;
	uint64_t v = 0;
	int w = wrmsr_safe(MSR_PAT, PAT_VALUE);
	int r = rdmsr_safe(MSR_PAT, &v);
	printf("pat: write %s,", w < 0 ? "gp" : "ok");
	show(" read", r, v);
	puts("\n");
	r = rdmsr_safe(MSR_MISC_ENABLE, &v);
	show("misc_enable: read", r, v);
	puts("\n");
	return 0;
}
