/*
 * test_smm.c: the APM ports and SMI servicing of the smm role.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/roles.h"

static struct vmmux_ctx *smm_new(void)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_smm, "smm");

	assert_int_equal(host_init(ctx), 0);
	return ctx;
}

/* Route the raised event I back to the role, as platform:smi=smm does. */
static void deliver_raised(struct vmmux_ctx *ctx, size_t i)
{
	struct vmmux_event ev = ctx->raised[i];
	struct vmmux_reply rep;

	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
}

static void test_smi_raise_and_service(void **state)
{
	struct vmmux_ctx *ctx = smm_new();

	(void)state;
	assert_int_equal(host_inb(ctx, 0xb3), 0x00);
	assert_int_equal(host_out(ctx, 0xb2, 1, 0x42), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_int_equal(ctx->raised[0].type, VMMUX_EV_PLATFORM);
	assert_int_equal(ctx->raised[0].key, VMMUX_PLAT_SMI);
	assert_int_equal(ctx->raised[0].value, 0x42);
	assert_int_equal(ctx->raised[0].vcpu, 0);
	assert_int_equal(host_inb(ctx, 0xb2), 0x42);
	/* not serviced yet */
	assert_int_equal(host_inb(ctx, 0xb3), 0x00);
	deliver_raised(ctx, 0);
	assert_int_equal(host_inb(ctx, 0xb3), 0x01);
	assert_int_equal(host_log_count(ctx, "SMI 1 serviced: APM command 0x42"), 1);

	/* the status counts serviced SMIs mod 256 */
	for (int i = 0; i < 256; i++) {
		host_clear(ctx);
		assert_int_equal(host_out(ctx, 0xb2, 1, (uint64_t)i), 0);
		deliver_raised(ctx, 0);
	}
	assert_int_equal(host_inb(ctx, 0xb3), 257 % 256);
	host_free(ctx);
}

static void test_status_scratch(void **state)
{
	struct vmmux_ctx *ctx = smm_new();
	uint64_t v;

	(void)state;
	assert_int_equal(host_out(ctx, 0xb3, 1, 0x5a), 0);
	assert_int_equal(host_inb(ctx, 0xb3), 0x5a);
	assert_int_equal(ctx->nraised, 0);
	/* a word at 0xb2 covers both: command 0x11, status 0x22 */
	assert_int_equal(host_out(ctx, 0xb2, 2, 0x2211), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_int_equal(ctx->raised[0].value, 0x11);
	assert_int_equal(host_in(ctx, 0xb2, 2, &v), 0);
	assert_int_equal(v, 0x2211);
	/* servicing overwrites the status with the count */
	deliver_raised(ctx, 0);
	assert_int_equal(host_inb(ctx, 0xb3), 0x01);
	/* bytes on other ports: ones */
	assert_int_equal(host_in(ctx, 0xb3, 2, &v), 0);
	assert_int_equal(v, 0xff01);
	assert_int_equal(host_inb(ctx, 0xb4), 0xff);
	host_free(ctx);
}

static void test_refused(void **state)
{
	struct vmmux_ctx *ctx = smm_new();
	struct vmmux_event ev;
	struct vmmux_reply rep;

	(void)state;
	ev = host_event(VMMUX_EV_PLATFORM, VMMUX_PLAT_RESET, 0, 0);
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_PLATFORM, VMMUX_PLAT_SMI, 0, 0x100);
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_MSR, 0xb2, 8, 0);
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	assert_true(host_out(ctx, 0xb2, 8, 1) < 0);
	assert_int_equal(host_inb(ctx, 0xb3), 0x00); /* nothing serviced */
	ctx->raise_limit = 0;
	assert_true(host_out(ctx, 0xb2, 1, 1) < 0);
	host_free(ctx);
}

static void test_save_restore_reset(void **state)
{
	struct vmmux_ctx *a = smm_new(), *b = smm_new();
	uint8_t st[64];
	long len;

	(void)state;
	for (int i = 0; i < 3; i++) {
		host_clear(a);
		assert_int_equal(host_out(a, 0xb2, 1, 0x80 + (uint64_t)i), 0);
		deliver_raised(a, 0);
	}
	len = a->role->save(a, st, sizeof(st));
	assert_true(len > 0);
	assert_int_equal(a->role->save(a, st, 4), -1);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	assert_int_equal(host_inb(b, 0xb2), 0x82);
	assert_int_equal(host_inb(b, 0xb3), 0x03);
	/* the count continues from the restored one */
	assert_int_equal(host_out(b, 0xb2, 1, 0x01), 0);
	deliver_raised(b, 0);
	assert_int_equal(host_inb(b, 0xb3), 0x04);
	assert_int_equal(host_log_count(b, "SMI 4 serviced"), 1);
	st[1] ^= 1;
	assert_true(b->role->restore(b, st, (size_t)len) < 0);
	assert_true(b->role->restore(b, st, (size_t)len + 1) < 0);
	b->role->reset(b);
	assert_int_equal(host_inb(b, 0xb2), 0x00);
	assert_int_equal(host_inb(b, 0xb3), 0x00);
	host_free(a);
	host_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_smi_raise_and_service),
	    cmocka_unit_test(test_status_scratch),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_save_restore_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
