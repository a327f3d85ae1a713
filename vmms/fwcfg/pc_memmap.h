/*
 * pc_memmap.h: the memory map of QEMU's pc machine (QEMU 7.2, i440fx, KVM)
 * for a given RAM size, as its guests are told it. Header-only, shared by
 * the fwcfg role (the file etc/e820, which QEMU builds) and the multiboot
 * loader (the multiboot memory map, mem_lower and mem_upper, which the
 * multiboot option ROM reads from SeaBIOS's INT 15h E820 and INT 12h).
 *
 * Measured with guest/tests/mb_meminfo.c under qemu-system-x86_64 -accel
 * kvm for -m 2, 16, 64, 100, 128, 3584 (tests/integration/test_meminfo.py
 * compares them line by line):
 *
 *   etc/e820 (fw_cfg), in QEMU's order:
 *     reserved 0xfeffc000 +0x4000     KVM's TSS and identity-map pages
 *     reserved 0xfd00000000 +12 GiB   AMD's HyperTransport range, when the
 *                                     vCPU's vendor is AMD and it has at
 *                                     least 40 physical address bits
 *     RAM      0 +RAM
 *
 *   the multiboot memory map (SeaBIOS's E820), ascending:
 *     RAM      0 +0x9fc00             conventional memory
 *     reserved 0x9fc00 +0x400          the EBDA
 *     reserved 0xf0000 +0x10000        the BIOS
 *     RAM      1 MiB .. RAM-128 KiB
 *     reserved RAM-128 KiB +128 KiB    SeaBIOS's high tables
 *     reserved 0xfeffc000 +0x4000
 *     reserved 0xfffc0000 +0x40000     the BIOS ROM below 4 GiB
 *     reserved 0xfd00000000 +12 GiB    (as above)
 *   mem_lower 639 (KiB below the EBDA), mem_upper (RAM-128 KiB-1 MiB)/KiB.
 *
 * All RAM is below 4 GiB: QEMU's pc machine keeps RAM under 3.5 GiB
 * (0xe0000000) in one piece at 0, and vmmux refuses a pc machine with more
 * (PC_RAM_MAX). vmmux has no BIOS: the reserved ranges are RAM or nothing,
 * reported so that guests see what they see under QEMU.
 */
#ifndef VMMUX_VMMS_FWCFG_PC_MEMMAP_H
#define VMMUX_VMMS_FWCFG_PC_MEMMAP_H

#include <cpuid.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PC_RAM_MAX	 0xe0000000ull /* QEMU splits RAM at 3 GiB from here */
#define PC_EBDA		 0x9fc00ull
#define PC_VGA_HOLE	 0xa0000ull
#define PC_BIOS		 0xf0000ull
#define PC_ONE_MIB	 0x100000ull
#define PC_HIGH_TABLES	 0x20000ull /* SeaBIOS reserves the top 128 KiB */
#define PC_KVM_TSS	 0xfeffc000ull
#define PC_KVM_TSS_LEN	 0x4000ull
#define PC_BIOS_ROM	 0xfffc0000ull
#define PC_BIOS_ROM_LEN	 0x40000ull
#define PC_AMD_HT	 0xfd00000000ull
#define PC_AMD_HT_LEN	 0x300000000ull
#define PC_E820_RAM	 1u
#define PC_E820_RESERVED 2u
#define PC_MEMMAP_MAX	 8u

struct pc_memmap_ent {
	uint64_t base, len;
	uint32_t type;
};

/* True when QEMU (-cpu host, as vmmux's vCPUs have the host's CPUID) would
 * reserve AMD's HyperTransport range: an AMD vendor and at least 40
 * physical address bits. */
static inline bool pc_amd_ht_hole(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(0, &a, &b, &c, &d))
		return false;
	char v[13];
	memcpy(v, &b, 4);
	memcpy(v + 4, &d, 4);
	memcpy(v + 8, &c, 4);
	v[12] = '\0';
	if (strcmp(v, "AuthenticAMD") != 0 && strcmp(v, "HygonGenuine") != 0)
		return false;
	if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000008u)
		return false;
	__get_cpuid(0x80000008u, &a, &b, &c, &d);
	return (a & 0xff) >= 40;
}

/* The fw_cfg etc/e820 table for RAM bytes (RAM <= PC_RAM_MAX); returns the
 * entry count (at most 3). */
static inline size_t pc_fwcfg_e820(uint64_t ram, bool amd_ht, struct pc_memmap_ent *e)
{
	size_t n = 0;
	e[n++] = (struct pc_memmap_ent){PC_KVM_TSS, PC_KVM_TSS_LEN, PC_E820_RESERVED};
	if (amd_ht)
		e[n++] = (struct pc_memmap_ent){PC_AMD_HT, PC_AMD_HT_LEN, PC_E820_RESERVED};
	e[n++] = (struct pc_memmap_ent){0, ram, PC_E820_RAM};
	return n;
}

/* The BIOS's E820 map (the multiboot memory map) for RAM bytes; returns the
 * entry count (at most PC_MEMMAP_MAX). *upper_kib gets mem_upper. */
static inline size_t pc_bios_e820(uint64_t ram, bool amd_ht, struct pc_memmap_ent *e,
				  uint32_t *upper_kib)
{
	size_t n = 0;
	e[n++] = (struct pc_memmap_ent){0, ram < PC_EBDA ? ram : PC_EBDA, PC_E820_RAM};
	e[n++] = (struct pc_memmap_ent){PC_EBDA, PC_VGA_HOLE - PC_EBDA, PC_E820_RESERVED};
	e[n++] = (struct pc_memmap_ent){PC_BIOS, PC_ONE_MIB - PC_BIOS, PC_E820_RESERVED};
	*upper_kib = 0;
	if (ram > PC_ONE_MIB + PC_HIGH_TABLES) {
		uint64_t top = ram - PC_HIGH_TABLES;
		e[n++] = (struct pc_memmap_ent){PC_ONE_MIB, top - PC_ONE_MIB, PC_E820_RAM};
		e[n++] = (struct pc_memmap_ent){top, PC_HIGH_TABLES, PC_E820_RESERVED};
		*upper_kib = (uint32_t)((top - PC_ONE_MIB) / 1024);
	} else if (ram > PC_ONE_MIB) {
		e[n++] = (struct pc_memmap_ent){PC_ONE_MIB, ram - PC_ONE_MIB, PC_E820_RESERVED};
	}
	e[n++] = (struct pc_memmap_ent){PC_KVM_TSS, PC_KVM_TSS_LEN, PC_E820_RESERVED};
	e[n++] = (struct pc_memmap_ent){PC_BIOS_ROM, PC_BIOS_ROM_LEN, PC_E820_RESERVED};
	if (amd_ht)
		e[n++] = (struct pc_memmap_ent){PC_AMD_HT, PC_AMD_HT_LEN, PC_E820_RESERVED};
	return n;
}

#endif
