/*
 * test_chipset.c: reset and power-off decoding of the chipset role.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/roles.h"

static struct vmmux_ctx *cs_new(void)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_chipset, "chipset");

	assert_int_equal(host_init(ctx), 0);
	return ctx;
}

static void assert_platform(struct vmmux_ctx *ctx, size_t i, uint64_t code)
{
	assert_true(i < ctx->nraised);
	assert_int_equal(ctx->raised[i].type, VMMUX_EV_PLATFORM);
	assert_int_equal(ctx->raised[i].key, code);
	assert_int_equal(ctx->raised[i].vcpu, 0);
}

static uint64_t in(struct vmmux_ctx *ctx, uint64_t port, uint8_t size)
{
	uint64_t v;

	assert_int_equal(host_in(ctx, port, size, &v), 0);
	return v;
}

static void test_cf9(void **state)
{
	struct vmmux_ctx *ctx = cs_new();

	(void)state;
	assert_int_equal(in(ctx, 0xcf9, 1), 0x00);
	/* without bit 2: kept, no reset */
	assert_int_equal(host_out(ctx, 0xcf9, 1, 0x02), 0);
	assert_int_equal(ctx->nraised, 0);
	assert_int_equal(in(ctx, 0xcf9, 1), 0x02);
	/* with bit 2: reset, the other bits kept */
	assert_int_equal(host_out(ctx, 0xcf9, 1, 0x06), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_platform(ctx, 0, VMMUX_PLAT_RESET);
	assert_int_equal(in(ctx, 0xcf9, 1), 0x02);
	assert_int_equal(host_out(ctx, 0xcf9, 1, 0x0e), 0);
	assert_int_equal(ctx->nraised, 2);
	assert_platform(ctx, 1, VMMUX_PLAT_RESET);
	assert_int_equal(in(ctx, 0xcf9, 1), 0x0a);
	/* a dword at 0xcf8 (PCI CONFIG_ADDRESS) never resets */
	assert_int_equal(host_out(ctx, 0xcf8, 4, 0x80000400), 0);
	assert_int_equal(ctx->nraised, 2);
	assert_int_equal(in(ctx, 0xcf8, 4), 0xffffffff);
	host_free(ctx);
}

static void test_i8042(void **state)
{
	struct vmmux_ctx *ctx = cs_new();

	(void)state;
	assert_int_equal(in(ctx, 0x64, 1), 0x1c);
	assert_int_equal(in(ctx, 0x60, 1), 0x00);
	/* ordinary commands are ignored */
	assert_int_equal(host_out(ctx, 0x64, 1, 0xad), 0);
	assert_int_equal(host_out(ctx, 0x64, 1, 0xff), 0); /* pulse nothing */
	assert_int_equal(host_out(ctx, 0x60, 1, 0x12), 0);
	assert_int_equal(ctx->nraised, 0);
	assert_int_equal(host_out(ctx, 0x64, 1, 0xfe), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_platform(ctx, 0, VMMUX_PLAT_RESET);
	assert_int_equal(host_out(ctx, 0x64, 1, 0xf0), 0); /* pulses line 0 as well */
	assert_int_equal(ctx->nraised, 2);
	host_free(ctx);
}

static void test_pm1a(void **state)
{
	struct vmmux_ctx *ctx = cs_new();

	(void)state;
	/* 16-bit 0x2000: SLP_EN with SLP_TYP 0 */
	assert_int_equal(host_out(ctx, 0x604, 2, 0x2000), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_platform(ctx, 0, VMMUX_PLAT_POWEROFF);
	assert_int_equal(in(ctx, 0x604, 2), 0x0000); /* SLP_EN reads 0 */
	host_clear(ctx);

	/* byte writes merge: SCI_EN low, then SLP_EN high */
	assert_int_equal(host_out(ctx, 0x604, 1, 0x01), 0);
	assert_int_equal(ctx->nraised, 0);
	assert_int_equal(in(ctx, 0x604, 2), 0x0001);
	assert_int_equal(host_out(ctx, 0x605, 1, 0x20), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_platform(ctx, 0, VMMUX_PLAT_POWEROFF);
	assert_int_equal(in(ctx, 0x604, 2), 0x0001);
	assert_int_equal(in(ctx, 0x604, 1), 0x01);
	assert_int_equal(in(ctx, 0x605, 1), 0x00);
	host_clear(ctx);

	/* SLP_TYP != 0 is not power-off (S3, S4 ...): kept, nothing raised */
	assert_int_equal(host_out(ctx, 0x604, 2, 0x3400), 0); /* SLP_TYP 5 */
	assert_int_equal(host_out(ctx, 0x605, 1, 0x24), 0);   /* SLP_TYP 1 */
	assert_int_equal(ctx->nraised, 0);
	assert_int_equal(host_log_count(ctx, "sleep type"), 2);
	assert_int_equal(in(ctx, 0x604, 2), 0x0400); /* the word write cleared SCI_EN */
	/* SLP_TYP bits without SLP_EN: stored, nothing raised */
	assert_int_equal(host_out(ctx, 0x605, 1, 0x00), 0);
	assert_int_equal(host_out(ctx, 0x604, 2, 0x1c00), 0);
	assert_int_equal(in(ctx, 0x604, 2), 0x1c00);
	/* then the high byte sets SLP_EN with SLP_TYP 0 */
	assert_int_equal(host_out(ctx, 0x605, 1, 0x20), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_platform(ctx, 0, VMMUX_PLAT_POWEROFF);
	/* a dword at 0x604 takes the low 16 bits; the rest reads ones */
	host_clear(ctx);
	assert_int_equal(host_out(ctx, 0x604, 4, 0xffff0001), 0);
	assert_int_equal(ctx->nraised, 0);
	assert_int_equal(in(ctx, 0x604, 4), 0xffff0001);
	host_free(ctx);
}

static void test_other_ports(void **state)
{
	struct vmmux_ctx *ctx = cs_new();

	(void)state;
	assert_int_equal(in(ctx, 0x92, 1), 0xff);
	assert_int_equal(in(ctx, 0x92, 2), 0xffff);
	assert_int_equal(in(ctx, 0x92, 4), 0xffffffff);
	assert_int_equal(host_out(ctx, 0x92, 1, 0x01), 0);
	assert_int_equal(host_out(ctx, 0x606, 2, 0x2000), 0);
	assert_int_equal(ctx->nraised, 0);
	/* one warning per port */
	assert_int_equal(host_log_count(ctx, "port 0x92 "), 1);
	assert_int_equal(host_log_count(ctx, "port 0x606 "), 1);
	assert_int_equal(ctx->log_level[0], VMMUX_LOG_WARN);
	host_free(ctx);
}

static void test_refused(void **state)
{
	struct vmmux_ctx *ctx = cs_new();
	struct vmmux_event ev;
	struct vmmux_reply rep;
	uint8_t data[2] = {0xfe, 0xfe};

	(void)state;
	assert_true(host_out(ctx, 0x64, 8, 0xfe) < 0);
	ev = host_event(VMMUX_EV_IO, 0x64, 1, 0);
	ev.flags = VMMUX_EVF_WRITE | VMMUX_EVF_STRING;
	ev.count = 2;
	ev.data = data;
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_MMIO, 0xcf9, 1, 0x06);
	ev.flags = VMMUX_EVF_WRITE;
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_IO, 0x10064, 1, 0xfe);
	ev.flags = VMMUX_EVF_WRITE;
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	assert_int_equal(ctx->nraised, 0);
	host_free(ctx);
}

static void test_save_restore_reset(void **state)
{
	struct vmmux_ctx *a = cs_new(), *b = cs_new();
	uint8_t st[64];
	long len;

	(void)state;
	assert_int_equal(host_out(a, 0xcf9, 1, 0x0a), 0);
	assert_int_equal(host_out(a, 0x604, 2, 0x0c01), 0);
	len = a->role->save(a, st, sizeof(st));
	assert_true(len > 0);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	assert_int_equal(in(b, 0xcf9, 1), 0x0a);
	assert_int_equal(in(b, 0x604, 2), 0x0c01);
	st[0] ^= 1;
	assert_true(b->role->restore(b, st, (size_t)len) < 0);
	assert_true(b->role->restore(b, st, 3) < 0);
	b->role->reset(b);
	assert_int_equal(in(b, 0xcf9, 1), 0x00);
	assert_int_equal(in(b, 0x604, 2), 0x0000);
	host_free(a);
	host_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cf9),	    cmocka_unit_test(test_i8042),
	    cmocka_unit_test(test_pm1a),    cmocka_unit_test(test_other_ports),
	    cmocka_unit_test(test_refused), cmocka_unit_test(test_save_restore_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
