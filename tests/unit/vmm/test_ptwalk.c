/*
 * test_ptwalk.c: the guest page-table walker (src/vmm/ptwalk.h) on
 * synthetic page tables in every paging mode: 4 KiB, 2 MiB, 4 MiB (PSE,
 * PSE-36) and 1 GiB pages, entries not present, non-canonical addresses,
 * tables outside RAM, and the mode CR0/CR4/EFER select.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/ptwalk.h"

#define RAM (1u << 20) /* the tables live in 1 MiB of "guest RAM" */
static uint8_t ram[RAM];
static unsigned reads;

static int rd(void *arg, uint64_t gpa, void *buf, size_t len)
{
	(void)arg;
	reads++;
	if (gpa > RAM || len > RAM - gpa)
		return -1;
	memcpy(buf, ram + gpa, len);
	return 0;
}

static void put32(uint64_t gpa, uint32_t v)
{
	memcpy(ram + gpa, &v, 4);
}

static void put64(uint64_t gpa, uint64_t v)
{
	memcpy(ram + gpa, &v, 8);
}

static uint64_t walk(enum pt_mode m, uint64_t cr3, int pse, uint64_t va, enum pt_fail want)
{
	uint64_t gpa = 0xdeadbeef;
	assert_int_equal(pt_walk(m, cr3, pse, va, rd, NULL, &gpa), want);
	if (want != PT_OK)
		assert_true(gpa == 0xdeadbeef); /* untouched */
	return gpa;
}

static int setup(void **state)
{
	(void)state;
	memset(ram, 0, sizeof(ram));
	reads = 0;
	return 0;
}

static void test_mode_of(void **state)
{
	(void)state;
	const uint64_t PG = 1ull << 31, PAE = 1ull << 5, LA57 = 1ull << 12, LMA = 1ull << 10;
	assert_int_equal(pt_mode_of(0x11, 0, 0), PT_OFF);
	assert_int_equal(pt_mode_of(0x11, PAE, LMA), PT_OFF); /* PG clear wins */
	assert_int_equal(pt_mode_of(PG | 1, 0, 0), PT_32);
	assert_int_equal(pt_mode_of(PG | 1, PAE, 0), PT_PAE);
	assert_int_equal(pt_mode_of(PG | 1, PAE, LMA | (1 << 8)), PT_4LEVEL);
	assert_int_equal(pt_mode_of(PG | 1, PAE | LA57, LMA), PT_5LEVEL);
	assert_string_equal(pt_mode_name(PT_PAE), "PAE");
	assert_string_equal(pt_mode_name(PT_4LEVEL), "4-level");
}

static void test_off(void **state)
{
	(void)state;
	assert_true(walk(PT_OFF, 0, 0, 0x12345678, PT_OK) == 0x12345678);
	/* linear addresses are 32 bits wide without paging */
	assert_true(walk(PT_OFF, 0, 0, 0x1fffff000ull, PT_OK) == 0xfffff000ull);
	assert_int_equal(reads, 0);
}

static void test_32bit(void **state)
{
	(void)state;
	/* CR3 0x1000: PDE 0 -> table 0x2000; PTE 5 -> 0x7000 (4 KiB) */
	put32(0x1000 + 0 * 4, 0x2000 | 0x3);
	put32(0x2000 + 5 * 4, 0x7000 | 0x1);
	assert_true(walk(PT_32, 0x1000, 1, 0x5abc, PT_OK) == 0x7abc);
	/* PTE 6 not present */
	walk(PT_32, 0x1000, 1, 0x6000, PT_NOT_PRESENT);
	/* PDE 1 not present */
	walk(PT_32, 0x1000, 1, 0x400000, PT_NOT_PRESENT);
	/* PDE 2: a 4 MiB page at 0x00c00000 with PSE-36 bits 39:32 = 0x3 */
	put32(0x1000 + 2 * 4, 0x00c00000 | (0x3u << 13) | 0x80 | 0x1);
	assert_true(walk(PT_32, 0x1000, 1, 0x00923456, PT_OK) == 0x300d23456ull);
	/* without CR4.PSE the PS bit is ignored: the entry is a table
	 * (at 0x00c00000 + attribute bits: outside our RAM) */
	walk(PT_32, 0x1000, 0, 0x00923456, PT_READ_FAILED);
	/* the upper half of a 64-bit VA is ignored in 32-bit paging */
	assert_true(walk(PT_32, 0x1000, 1, 0xffffffff00005abcull, PT_OK) == 0x7abc);
	/* CR3's low bits (PCD, PWT) are not part of the address */
	assert_true(walk(PT_32, 0x1018, 1, 0x5abc, PT_OK) == 0x7abc);
}

static void test_pae(void **state)
{
	(void)state;
	/* CR3 0x1020 (32-byte aligned): PDPTE 3 -> PD 0x3000 */
	put64(0x1020 + 3 * 8, 0x3000 | 0x1);
	/* PDE 1 of that PD: a 2 MiB page at 0x40000000 */
	put64(0x3000 + 1 * 8, 0x40000000ull | 0x80 | 0x1);
	assert_true(walk(PT_PAE, 0x1020, 0, 0xc0212345ull, PT_OK) == 0x40012345ull);
	/* PDE 2 -> PT 0x4000, PTE 0x10 -> 0x123456000 (above 4 GiB) */
	put64(0x3000 + 2 * 8, 0x4000 | 0x1);
	put64(0x4000 + 0x10 * 8, 0x123456000ull | 0x1);
	assert_true(walk(PT_PAE, 0x1020, 0, 0xc0410abcull, PT_OK) == 0x123456abcull);
	/* PDPTE 0 not present */
	walk(PT_PAE, 0x1020, 0, 0x1000, PT_NOT_PRESENT);
	/* NX (bit 63) is not part of the address */
	put64(0x4000 + 0x11 * 8, 0x8000000000055000ull | 0x1);
	assert_true(walk(PT_PAE, 0x1020, 0, 0xc0411004ull, PT_OK) == 0x55004);
}

/* Long mode: PML4 at 0x10000. */
static void long_tables(void)
{
	/* PML4[0] -> PDPT 0x11000; PML4[511] -> PDPT 0x12000 */
	put64(0x10000 + 0 * 8, 0x11000 | 0x3);
	put64(0x10000 + 511 * 8, 0x12000 | 0x3);
	/* PDPT 0x11000: [0] -> PD 0x13000; [1] 1 GiB page at 0x80000000 */
	put64(0x11000 + 0 * 8, 0x13000 | 0x3);
	put64(0x11000 + 1 * 8, 0x80000000ull | 0x80 | 0x3);
	/* PD 0x13000: [0] -> PT 0x14000; [1] 2 MiB page at 0x600000 */
	put64(0x13000 + 0 * 8, 0x14000 | 0x3);
	put64(0x13000 + 1 * 8, 0x600000 | 0x80 | 0x3);
	/* PT 0x14000: [0x100] -> 0x9000 */
	put64(0x14000 + 0x100 * 8, 0x9000 | 0x3);
	/* PDPT 0x12000 [510] -> PD 0x15000; [0] -> 4 KiB... as a 2 MiB page */
	put64(0x12000 + 510 * 8, 0x15000 | 0x3);
	put64(0x15000 + 0 * 8, 0x200000 | 0x80 | 0x3);
}

static void test_4level(void **state)
{
	(void)state;
	long_tables();
	assert_true(walk(PT_4LEVEL, 0x10000, 0, 0x100123, PT_OK) == 0x9123);
	walk(PT_4LEVEL, 0x10000, 0, 0x2badbeef, PT_NOT_PRESENT); /* PD[0x15d] */
	/* 2 MiB page: VA 0x200000-0x3fffff -> 0x600000 */
	assert_true(walk(PT_4LEVEL, 0x10000, 0, 0x234567, PT_OK) == 0x634567);
	/* 1 GiB page: VA 0x40000000-0x7fffffff -> 0x80000000 */
	assert_true(walk(PT_4LEVEL, 0x10000, 0, 0x41234567, PT_OK) == 0x81234567);
	/* the top of the address space (PML4 511, PDPT 510): a kernel's
	 * -2 GiB mapping */
	assert_true(walk(PT_4LEVEL, 0x10000, 0, 0xffffffff80012345ull, PT_OK) == 0x212345);
	/* non-canonical */
	walk(PT_4LEVEL, 0x10000, 0, 0x0000800000000000ull, PT_NONCANONICAL);
	walk(PT_4LEVEL, 0x10000, 0, 0xfff0000000000000ull, PT_NONCANONICAL);
	/* not present at each level */
	walk(PT_4LEVEL, 0x10000, 0, 0x0000008000000000ull, PT_NOT_PRESENT); /* PML4[1] */
	walk(PT_4LEVEL, 0x10000, 0, 0x80000000ull, PT_NOT_PRESENT);	    /* PDPT[2] */
	walk(PT_4LEVEL, 0x10000, 0, 0x400000, PT_NOT_PRESENT);		    /* PD[2] */
	walk(PT_4LEVEL, 0x10000, 0, 0x101000, PT_NOT_PRESENT);		    /* PT[0x101] */
	/* a table outside RAM */
	put64(0x14000 + 0x102 * 8, 0x9000 | 0x3);
	put64(0x13000 + 3 * 8, 0x7ff00000ull | 0x3);
	walk(PT_4LEVEL, 0x10000, 0, 0x600000, PT_READ_FAILED);
	/* CR3's PCID bits are not part of the address */
	assert_true(walk(PT_4LEVEL, 0x10000 | 0x5, 0, 0x100123, PT_OK) == 0x9123);
}

static void test_5level(void **state)
{
	(void)state;
	long_tables();
	/* PML5 at 0x20000: [0] -> the PML4 above; [511] -> the same */
	put64(0x20000 + 0 * 8, 0x10000 | 0x3);
	put64(0x20000 + 511 * 8, 0x10000 | 0x3);
	assert_true(walk(PT_5LEVEL, 0x20000, 0, 0x100123, PT_OK) == 0x9123);
	assert_true(walk(PT_5LEVEL, 0x20000, 0, 0xffffffff80012345ull, PT_OK) == 0x212345);
	/* 57-bit canonical: bit 56 set needs 63:57 set */
	walk(PT_5LEVEL, 0x20000, 0, 0x0100000000000000ull, PT_NONCANONICAL);
	/* a 4-level non-canonical address is canonical with 5 levels */
	walk(PT_5LEVEL, 0x20000, 0, 0x0000800000000000ull, PT_NOT_PRESENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_mode_of, setup), cmocka_unit_test_setup(test_off, setup),
	    cmocka_unit_test_setup(test_32bit, setup),	 cmocka_unit_test_setup(test_pae, setup),
	    cmocka_unit_test_setup(test_4level, setup),	 cmocka_unit_test_setup(test_5level, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
