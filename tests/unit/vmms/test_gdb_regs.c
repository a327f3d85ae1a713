/*
 * test_gdb_regs.c: the register set the GDB stub shows (vmms/gdbstub/
 * regs.h): the target descriptions name what GDB's i386 and amd64
 * architectures require, 'g' and 'G' round-trip, the i386 order of the
 * general registers, 32-bit writes keep the upper half, the x87 tag word,
 * and registers the host does not give.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../../vmms/gdbstub/regs.h"

static char buf[8192];

static void fill(struct debug_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->regs.rax = 0x1111111111111111ull;
	r->regs.rbx = 0x2222222222222222ull;
	r->regs.rcx = 0x3333333333333333ull;
	r->regs.rsp = 0x7000;
	r->regs.rip = 0xffffffff80001234ull;
	r->regs.rflags = 0x246;
	r->sregs.cs.selector = 0x10;
	r->sregs.fs.base = 0xabcdef;
	r->sregs.cr0 = 0x80010033;
	r->sregs.cr3 = 0x2000;
	r->sregs.efer = 0x500;
	r->have_fpu = true;
	r->fpu.fcw = 0x37f;
	r->fpu.ftwx = 0x81; /* ST registers 0 and 7 valid */
	r->fpu.xmm[15][0] = 0x5a;
	r->fpu.mxcsr = 0x1f80;
	r->fpu.fpr[0][9] = 0x40;
}

static void test_xml(void **state)
{
	(void)state;
	static const char *const need64[] = {"<architecture>i386:x86-64</architecture>",
					     "org.gnu.gdb.i386.core",
					     "org.gnu.gdb.i386.sse",
					     "\"rax\"",
					     "\"rbp\"",
					     "\"r15\"",
					     "\"rip\"",
					     "\"eflags\"",
					     "\"gs\"",
					     "\"st7\"",
					     "\"fop\"",
					     "\"xmm15\"",
					     "\"mxcsr\"",
					     "\"fs_base\"",
					     "\"cr3\"",
					     "\"efer\"",
					     "union id=\"vec128\"",
					     "i387_ext"};
	long n = gdb_target_xml(true, buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n == strlen(buf));
	for (size_t i = 0; i < sizeof(need64) / sizeof(need64[0]); i++)
		assert_non_null(strstr(buf, need64[i]));
	n = gdb_target_xml(false, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "<architecture>i386</architecture>"));
	assert_non_null(strstr(buf, "\"eax\""));
	assert_null(strstr(buf, "\"xmm8\""));
	assert_null(strstr(buf, "fs_base")); /* GDB's plain i386 has none */
	assert_null(strstr(buf, "\"rax\""));
	/* every register numbered in order */
	for (size_t i = 0; i < gdb_reg_count(false); i++) {
		char want[64];
		snprintf(want, sizeof(want), "name=\"%s\"", gdb_reg_name(false, i));
		char *p = strstr(buf, want);
		assert_non_null(p);
		char num[32];
		snprintf(num, sizeof(num), "regnum=\"%zu\"", i);
		assert_non_null(strstr(p, num));
	}
	assert_int_equal(gdb_target_xml(true, buf, 100), -1); /* too small */
}

static void test_g_round_trip(void **state)
{
	(void)state;
	struct debug_regs r, w;
	for (int lm = 0; lm < 2; lm++) {
		fill(&r);
		long n = gdb_regs_encode(lm, &r, buf, sizeof(buf));
		assert_true(n > 0);
		buf[n] = '\0';
		memset(&w, 0, sizeof(w));
		w.have_fpu = true;
		assert_int_equal(gdb_regs_decode(lm, &w, buf, (size_t)n), 0);
		long m = gdb_regs_encode(lm, &w, buf + 4096, sizeof(buf) - 4096);
		assert_int_equal(m, n);
		assert_memory_equal(buf, buf + 4096, (size_t)n);
	}
	/* long mode: rax first, little-endian */
	fill(&r);
	gdb_regs_encode(true, &r, buf, sizeof(buf));
	assert_memory_equal(buf, "1111111111111111", 16);
	assert_memory_equal(buf + 16, "2222222222222222", 16); /* rbx */
}

static void test_i386_order(void **state)
{
	(void)state;
	struct debug_regs r;
	fill(&r);
	/* eax ecx edx ebx: ecx is register 1 */
	long n = gdb_reg_encode(false, 1, &r, buf, sizeof(buf));
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "33333333", 8);
	/* eip is register 8: the low half of rip */
	n = gdb_reg_encode(false, 8, &r, buf, sizeof(buf));
	assert_memory_equal(buf, "34120080", 8);
	/* a 32-bit write keeps the upper half */
	assert_int_equal(gdb_reg_decode(false, 0, &r, "78563412", 8), 0);
	assert_true(r.regs.rax == 0x1111111112345678ull);
	/* a wrong size is refused */
	assert_int_equal(gdb_reg_decode(false, 0, &r, "7856341200000000", 16), -1);
	assert_int_equal(gdb_reg_decode(false, 0, &r, "zz563412", 8), -1);
	assert_int_equal(gdb_reg_decode(false, 999, &r, "00", 2), -1);
	assert_int_equal(gdb_reg_encode(false, 999, &r, buf, sizeof(buf)), -1);
	/* a segment write sets the selector only */
	size_t cs = 10;
	assert_string_equal(gdb_reg_name(false, cs), "cs");
	r.sregs.cs.base = 0x1000;
	assert_int_equal(gdb_reg_decode(false, cs, &r, "08000000", 8), 0);
	assert_int_equal(r.sregs.cs.selector, 8);
	assert_true(r.sregs.cs.base == 0x1000);
}

static size_t regno(bool lm, const char *name)
{
	for (size_t i = 0; i < gdb_reg_count(lm); i++)
		if (strcmp(gdb_reg_name(lm, i), name) == 0)
			return i;
	fail_msg("no register %s", name);
	return 0;
}

static void test_fpu(void **state)
{
	(void)state;
	struct debug_regs r;
	fill(&r);
	/* the full tag word: 00 (valid) for ST 0 and 7, 11 (empty) for the rest */
	long n = gdb_reg_encode(true, regno(true, "ftag"), &r, buf, sizeof(buf));
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "fc3f0000", 8); /* 0x3ffc */
	assert_int_equal(gdb_reg_decode(true, regno(true, "ftag"), &r, "ffff0000", 8), 0);
	assert_int_equal(r.fpu.ftwx, 0);
	/* st0 is 10 bytes */
	n = gdb_reg_encode(true, regno(true, "st0"), &r, buf, sizeof(buf));
	assert_int_equal(n, 20);
	assert_memory_equal(buf, "00000000000000000040", 20);
	/* without KVM_GET_FPU: unavailable, and writes refused */
	r.have_fpu = false;
	n = gdb_reg_encode(true, regno(true, "xmm15"), &r, buf, sizeof(buf));
	assert_int_equal(n, 32);
	assert_memory_equal(buf, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 32);
	assert_int_equal(gdb_reg_decode(true, regno(true, "mxcsr"), &r, "801f0000", 8), -2);
	/* ... and skipped in a 'G' */
	n = gdb_regs_encode(true, &r, buf, sizeof(buf));
	assert_int_equal(gdb_regs_decode(true, &r, buf, (size_t)n), 0);
	/* control registers */
	r.have_fpu = true;
	assert_int_equal(gdb_reg_decode(true, regno(true, "cr3"), &r, "0030000000000000", 16), 0);
	assert_true(r.sregs.cr3 == 0x3000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xml),
	    cmocka_unit_test(test_g_round_trip),
	    cmocka_unit_test(test_i386_order),
	    cmocka_unit_test(test_fpu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
