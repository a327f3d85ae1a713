/*
 * mb_hello (and mb_aout, the same code behind an a.out-kludge header): a
 * multiboot v1 guest that prints only what is the same under QEMU and vmmux
 * (the command line), then exits with code 0x2a.
 */
#include "multiboot.h"
#include "rt.h"

int main(uint32_t magic, const struct multiboot_info *mbi)
{
	if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
		printf("bad multiboot magic %x\n", magic);
		return 0x2b;
	}
	puts("multiboot ok\n");
	if (mbi->flags & MBI_FLAG_CMDLINE)
		printf("cmdline: %s\n", (const char *)(uintptr_t)mbi->cmdline);
	else
		puts("cmdline: (none)\n");
	return 0x2a;
}
