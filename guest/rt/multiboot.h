/*
 * multiboot.h: the multiboot v1 information structure (the fields the
 * guests read), as a multiboot loader passes it in EBX.
 */
#ifndef VMMUX_GUEST_MULTIBOOT_H
#define VMMUX_GUEST_MULTIBOOT_H

#include <stdint.h>

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

#define MBI_FLAG_MEM	 (1u << 0) /* mem_lower, mem_upper valid */
#define MBI_FLAG_CMDLINE (1u << 2) /* cmdline valid */

struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower; /* KiB below 1 MiB */
	uint32_t mem_upper; /* KiB from 1 MiB */
	uint32_t boot_device;
	uint32_t cmdline; /* physical address of a NUL-terminated string */
	uint32_t mods_count;
	uint32_t mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length;
	uint32_t mmap_addr;
};

#endif
