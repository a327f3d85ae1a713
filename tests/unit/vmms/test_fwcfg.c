/*
 * test_fwcfg.c: the fwcfg role (QEMU's fw_cfg, legacy port I/O): items,
 * selector and read offset, the file directory, refused accesses, args,
 * reset and saved state.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/fwcfg/fwcfg.h"
#include "../../../vmms/fwcfg/pc_memmap.h"

#define SEL  0x510
#define DATA 0x511

static struct vmmux_ctx *fw_new(const char *cpus, const char *max, const char *ram)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_fwcfg, "fwcfg");
	if (cpus)
		host_arg(ctx, "cpus", cpus);
	if (max)
		host_arg(ctx, "max_cpus", max);
	if (ram)
		host_arg(ctx, "ram", ram);
	return ctx;
}

static void sel(struct vmmux_ctx *ctx, uint16_t key)
{
	assert_int_equal(host_out(ctx, SEL, 2, key), 0);
}

static void rd(struct vmmux_ctx *ctx, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = host_inb(ctx, DATA);
		assert_true(v >= 0);
		buf[i] = (uint8_t)v;
	}
}

static uint64_t rd_le(struct vmmux_ctx *ctx, uint16_t key, unsigned n)
{
	uint8_t b[8] = {0};
	sel(ctx, key);
	rd(ctx, b, n);
	uint64_t v = 0;
	for (unsigned i = n; i > 0; i--)
		v = v << 8 | b[i - 1];
	return v;
}

static void test_items(void **state)
{
	(void)state;
	struct vmmux_ctx *ctx = fw_new("2", "4", "67108864");
	assert_int_equal(host_init(ctx), 0);
	uint8_t sig[6];
	sel(ctx, 0x0000);
	rd(ctx, sig, 6);
	assert_memory_equal(sig, "QEMU\0\0", 6); /* zeros past the end */
	assert_int_equal(rd_le(ctx, 0x0001, 4), 1);
	assert_int_equal(rd_le(ctx, 0x0003, 8), 64ull << 20);
	assert_int_equal(rd_le(ctx, 0x0005, 2), 2);
	assert_int_equal(rd_le(ctx, 0x000f, 2), 4);
	assert_int_equal(rd_le(ctx, 0x1234, 8), 0); /* unknown item */
	/* the selector rewinds the offset; a byte read of the selector port
	 * reads data, as QEMU's combined port */
	sel(ctx, 0x0000);
	assert_int_equal(host_inb(ctx, SEL), 'Q');
	assert_int_equal(host_inb(ctx, DATA), 'E');
	sel(ctx, 0x0000);
	assert_int_equal(host_inb(ctx, DATA), 'Q');
	host_free(ctx);
}

static void test_file_dir(void **state)
{
	(void)state;
	struct vmmux_ctx *ctx = fw_new("1", NULL, "0x200000");
	assert_int_equal(host_init(ctx), 0);
	uint8_t hdr[4], ent[64];
	sel(ctx, 0x0019);
	rd(ctx, hdr, 4);
	assert_memory_equal(hdr, "\0\0\0\1", 4); /* big-endian count */
	rd(ctx, ent, 64);
	/* QEMU's pc machine's table (pc_memmap.h): reserved KVM TSS pages,
	 * AMD's HyperTransport range on AMD hosts, RAM from 0 */
	unsigned n = pc_amd_ht_hole() ? 3 : 2;
	assert_memory_equal(ent, "\0\0\0", 3);
	assert_int_equal(ent[3], n * 20);
	assert_memory_equal(ent + 4, "\0\x20\0\0", 4); /* selector 0x20 */
	assert_string_equal((const char *)ent + 8, "etc/e820");
	for (unsigned i = 8 + 9; i < 64; i++)
		assert_int_equal(ent[i], 0);
	assert_int_equal(host_inb(ctx, DATA), 0); /* past the directory */
	static const uint64_t want[3][3] = {
	    {0xfeffc000, 0x4000, 2}, {0xfd00000000, 0x300000000, 2}, {0, 0x200000, 1}};
	sel(ctx, 0x0020);
	for (unsigned i = 0; i < 3; i++) {
		if (i == 1 && n == 2)
			continue;
		uint8_t e[20];
		rd(ctx, e, 20);
		uint64_t base = 0, len = 0;
		for (unsigned j = 8; j > 0; j--) {
			base = base << 8 | e[j - 1];
			len = len << 8 | e[j + 7];
		}
		assert_int_equal(base, want[i][0]);
		assert_int_equal(len, want[i][1]);
		assert_int_equal(e[16], want[i][2]);
		assert_int_equal(e[17] | e[18] | e[19], 0);
	}
	assert_int_equal(host_inb(ctx, DATA), 0); /* past the file */
	assert_int_equal(rd_le(ctx, 0x0005, 2), 1);
	assert_int_equal(rd_le(ctx, 0x000f, 2), 1); /* max_cpus defaults to cpus */
	host_free(ctx);
}

static void test_refused_and_ignored(void **state)
{
	(void)state;
	struct vmmux_ctx *ctx = fw_new("1", NULL, "0x100000");
	assert_int_equal(host_init(ctx), 0);
	uint64_t v;
	sel(ctx, 0x0000);
	assert_int_equal(host_in(ctx, DATA, 2, &v), -EINVAL);  /* data is byte-wise */
	assert_int_equal(host_in(ctx, SEL, 4, &v), -EINVAL);   /* no 32-bit reads */
	assert_int_equal(host_out(ctx, SEL, 4, 0x5), -EINVAL); /* selector is 16-bit */
	assert_int_equal(host_out(ctx, DATA, 2, 0x5), -EINVAL);
	assert_int_equal(host_out(ctx, DATA, 1, 0x5), 0); /* data writes ignored */
	assert_int_equal(host_out(ctx, SEL, 1, 0x5), 0);  /* byte selector ignored */
	assert_int_equal(host_inb(ctx, DATA), 'Q');	  /* still the signature */
	assert_int_equal(host_out(ctx, 0x512, 1, 0), -ERANGE);
	assert_int_equal(host_inb(ctx, 0x50f), -1);
	struct vmmux_event ev = host_event(VMMUX_EV_MMIO, 0x510, 1, 0);
	struct vmmux_reply rep;
	assert_int_equal(host_handle(ctx, &ev, &rep), -EINVAL);
	ev = host_event(VMMUX_EV_IO, 0x511, 1, 0);
	ev.flags = VMMUX_EVF_STRING;
	ev.count = 4;
	assert_int_equal(host_handle(ctx, &ev, &rep), -EINVAL);
	assert_int_equal(ctx->nraised, 0);
	host_free(ctx);
}

static void test_args(void **state)
{
	(void)state;
	static const struct {
		const char *cpus, *max, *ram, *log;
	} bad[] = {
	    {NULL, NULL, "0x100000", "required"},   {"1", NULL, NULL, "required"},
	    {"0", NULL, "0x100000", "\"cpus\""},    {"256", NULL, "0x100000", "\"cpus\""},
	    {"4", "2", "0x100000", "\"max_cpus\""}, {"1", NULL, "4096", "\"ram\""},
	    {"1", NULL, "12M", "\"ram\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vmmux_ctx *ctx = fw_new(bad[i].cpus, bad[i].max, bad[i].ram);
		assert_int_equal(host_init(ctx), -EINVAL);
		assert_true(host_log_count(ctx, bad[i].log) >= 1);
		host_free(ctx);
	}
	struct vmmux_ctx *ctx = fw_new("1", NULL, "0x100000");
	host_arg(ctx, "iobase", "0x600");
	assert_int_equal(host_init(ctx), 0);
	assert_int_equal(host_out(ctx, 0x600, 2, 0x0005), 0);
	assert_int_equal(host_inb(ctx, 0x601), 1);
	assert_int_equal(host_out(ctx, SEL, 2, 0), -ERANGE);
	host_free(ctx);
}

static void test_reset_save_restore(void **state)
{
	(void)state;
	struct vmmux_ctx *a = fw_new("2", NULL, "0x100000");
	struct vmmux_ctx *b = fw_new("2", NULL, "0x100000");
	assert_int_equal(host_init(a), 0);
	assert_int_equal(host_init(b), 0);
	sel(a, 0x0000);
	assert_int_equal(host_inb(a, DATA), 'Q');
	assert_int_equal(host_inb(a, DATA), 'E');
	uint8_t st[64];
	long len = a->role->save(a, st, sizeof(st));
	assert_true(len > 0);
	assert_int_equal(a->role->save(a, st, 4), -1);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	assert_int_equal(host_inb(b, DATA), 'M'); /* selector and offset carried */
	assert_true(b->role->restore(b, st, (size_t)len - 1) < 0);
	st[0] ^= 1;
	assert_true(b->role->restore(b, st, (size_t)len) < 0);
	assert_int_equal(host_inb(b, DATA), 'U'); /* untouched by the refusals */
	/* reset: selector 0, offset 0 */
	sel(a, 0x0005);
	a->role->reset(a);
	assert_int_equal(host_inb(a, DATA), 'Q');
	host_free(a);
	host_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_items),
	    cmocka_unit_test(test_file_dir),
	    cmocka_unit_test(test_refused_and_ignored),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_reset_save_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
