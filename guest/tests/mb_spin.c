/*
 * mb_spin: a multiboot kernel that keeps touching one device, as a kernel
 * polls a device it expects a PC to have. The last word of its command
 * line chooses it:
 *
 *   lapic   reads of the local APIC's ICR (0xfee00300) until its
 *           delivery-status bit is clear
 *   fwcfg   selects the signature at 0x510 and reads 0x511 until it says "Q"
 *   port    reads of port 0x1234 until one returns 0
 *
 * Each loop gives up after 5000 accesses; then "gave up" and exit 0x20
 * (status 65). If the device answered, "answered" and exit 0x21 (67).
 */
#include "multiboot.h"
#include "rt.h"

#define TRIES 5000u

static int spin_lapic(void)
{
	for (unsigned i = 0; i < TRIES; i++)
		if ((mmio_read32(0xfee00300u) & (1u << 12)) == 0)
			return 1;
	return 0;
}

static int spin_fwcfg(void)
{
	for (unsigned i = 0; i < TRIES; i++) {
		outw(0x510, 0);
		if (inb(0x511) == 'Q')
			return 1;
	}
	return 0;
}

static int spin_port(void)
{
	for (unsigned i = 0; i < TRIES; i++)
		if (inb(0x1234) == 0)
			return 1;
	return 0;
}

static bool same(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

int main(uint32_t magic, const struct multiboot_info *mbi)
{
	(void)magic;
	const char *cmd = (const char *)(uintptr_t)mbi->cmdline;
	const char *last = cmd;
	for (const char *p = cmd; *p != '\0'; p++)
		if (*p == ' ')
			last = p + 1;
	int ok;
	if (same(last, "lapic"))
		ok = spin_lapic();
	else if (same(last, "fwcfg"))
		ok = spin_fwcfg();
	else if (same(last, "port"))
		ok = spin_port();
	else {
		printf("mb_spin: unknown device '%s'\n", last);
		return 0x22;
	}
	puts(ok ? "answered\n" : "gave up\n");
	return ok ? 0x21 : 0x20;
}
