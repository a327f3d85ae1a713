/*
 * ptwalk.c: guest page-table walks (ptwalk.h), after the Intel SDM vol. 3,
 * chapter 4 ("Paging").
 */
#include "vmm/ptwalk.h"

#define PTE_P	     (1ull << 0)
#define PTE_PS	     (1ull << 7)
#define ADDR_MASK    0x000ffffffffff000ull /* bits 51:12 */
#define ADDR_MASK_2M 0x000fffffffe00000ull
#define ADDR_MASK_1G 0x000fffffc0000000ull

enum pt_mode pt_mode_of(uint64_t cr0, uint64_t cr4, uint64_t efer)
{
	if (!(cr0 & (1ull << 31)))
		return PT_OFF;
	if (efer & (1ull << 10)) /* LMA */
		return (cr4 & (1ull << 12)) ? PT_5LEVEL : PT_4LEVEL;
	return (cr4 & (1ull << 5)) ? PT_PAE : PT_32;
}

const char *pt_mode_name(enum pt_mode m)
{
	static const char *const names[] = {"off", "32-bit", "PAE", "4-level", "5-level"};
	return (unsigned)m < 5 ? names[m] : "?";
}

static int read32(pt_read_fn rd, void *arg, uint64_t gpa, uint64_t *out)
{
	uint32_t v;
	if (rd(arg, gpa, &v, sizeof(v)) < 0)
		return -1;
	*out = v;
	return 0;
}

static int read64(pt_read_fn rd, void *arg, uint64_t gpa, uint64_t *out)
{
	uint64_t v;
	if (rd(arg, gpa, &v, sizeof(v)) < 0)
		return -1;
	*out = v;
	return 0;
}

enum pt_fail pt_walk(enum pt_mode m, uint64_t cr3, int pse, uint64_t va, pt_read_fn rd, void *arg,
		     uint64_t *gpa)
{
	uint64_t e;

	switch (m) {
	case PT_OFF:
		*gpa = va & 0xffffffffull;
		return PT_OK;
	case PT_32: {
		va &= 0xffffffffull;
		if (read32(rd, arg, (cr3 & 0xfffff000ull) + ((va >> 22) & 0x3ff) * 4, &e) < 0)
			return PT_READ_FAILED;
		if (!(e & PTE_P))
			return PT_NOT_PRESENT;
		if ((e & PTE_PS) && pse) {
			/* 4 MiB page; bits 20:13 of the entry are bits 39:32 (PSE-36) */
			*gpa = (e & 0xffc00000ull) | (((e >> 13) & 0xff) << 32) | (va & 0x3fffff);
			return PT_OK;
		}
		if (read32(rd, arg, (e & 0xfffff000ull) + ((va >> 12) & 0x3ff) * 4, &e) < 0)
			return PT_READ_FAILED;
		if (!(e & PTE_P))
			return PT_NOT_PRESENT;
		*gpa = (e & 0xfffff000ull) | (va & 0xfff);
		return PT_OK;
	}
	case PT_PAE:
		va &= 0xffffffffull;
		if (read64(rd, arg, (cr3 & 0xffffffe0ull) + ((va >> 30) & 3) * 8, &e) < 0)
			return PT_READ_FAILED;
		if (!(e & PTE_P))
			return PT_NOT_PRESENT;
		if (read64(rd, arg, (e & ADDR_MASK) + ((va >> 21) & 0x1ff) * 8, &e) < 0)
			return PT_READ_FAILED;
		if (!(e & PTE_P))
			return PT_NOT_PRESENT;
		if (e & PTE_PS) {
			*gpa = (e & ADDR_MASK_2M) | (va & 0x1fffff);
			return PT_OK;
		}
		if (read64(rd, arg, (e & ADDR_MASK) + ((va >> 12) & 0x1ff) * 8, &e) < 0)
			return PT_READ_FAILED;
		if (!(e & PTE_P))
			return PT_NOT_PRESENT;
		*gpa = (e & ADDR_MASK) | (va & 0xfff);
		return PT_OK;
	case PT_4LEVEL:
	case PT_5LEVEL: {
		unsigned top = m == PT_5LEVEL ? 48 : 39; /* shift of the root's index */
		unsigned bits = top + 9;		 /* 48 or 57 */
		/* canonical: bits 63:bits-1 all equal */
		int64_t sx = (int64_t)(va << (64 - bits)) >> (64 - bits);
		if ((uint64_t)sx != va)
			return PT_NONCANONICAL;
		uint64_t table = cr3 & ADDR_MASK;
		for (unsigned shift = top;; shift -= 9) {
			if (read64(rd, arg, table + ((va >> shift) & 0x1ff) * 8, &e) < 0)
				return PT_READ_FAILED;
			if (!(e & PTE_P))
				return PT_NOT_PRESENT;
			if (shift == 12) {
				*gpa = (e & ADDR_MASK) | (va & 0xfff);
				return PT_OK;
			}
			if ((e & PTE_PS) && shift == 30) {
				*gpa = (e & ADDR_MASK_1G) | (va & 0x3fffffff);
				return PT_OK;
			}
			if ((e & PTE_PS) && shift == 21) {
				*gpa = (e & ADDR_MASK_2M) | (va & 0x1fffff);
				return PT_OK;
			}
			table = e & ADDR_MASK;
		}
	}
	}
	return PT_NOT_PRESENT;
}
