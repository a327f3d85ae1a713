/*
 * test_debug_exit.c: the isa-debug-exit role.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/roles.h"

static struct vmmux_ctx *dx_new(void)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_debug_exit, "exit");

	assert_int_equal(host_init(ctx), 0);
	return ctx;
}

static void assert_exit(struct vmmux_ctx *ctx, size_t i, uint64_t status)
{
	assert_true(i < ctx->nraised);
	assert_int_equal(ctx->raised[i].type, VMMUX_EV_REQUEST);
	assert_int_equal(ctx->raised[i].key, VMMUX_REQ_EXIT);
	assert_int_equal(ctx->raised[i].value, status);
	assert_int_equal(ctx->raised[i].vcpu, 0);
}

static void test_statuses(void **state)
{
	static const struct {
		uint16_t port;
		uint8_t size;
		uint64_t value;
		uint64_t status;
	} cases[] = {
	    {0xf4, 1, 0x00, 1},
	    {0xf4, 1, 0x01, 3},
	    {0xf4, 1, 0x10, 0x21},
	    {0xf4, 1, 0x7f, 0xff},
	    {0xf4, 1, 0x80, 0x01},
	    {0xf4, 1, 0xff, 0xff},
	    {0xf4, 2, 0x0001, 3},
	    {0xf4, 2, 0x1234, 0x69},
	    {0xf5, 2, 0x00ff, 0xff},
	    {0xf4, 4, 0x00000000, 1},
	    {0xf4, 4, 0x00000020, 0x41},
	    {0xf6, 4, 0xdeadbeef, 0xdf},
	    {0xf7, 1, 0x02, 5},
	    /* bits above the access width are not the guest's */
	    {0xf4, 1, 0xffffff02, 5},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmmux_ctx *ctx = dx_new();

		assert_int_equal(host_out(ctx, cases[i].port, cases[i].size, cases[i].value), 0);
		assert_int_equal(ctx->nraised, 1);
		assert_exit(ctx, 0, cases[i].status);
		host_free(ctx);
	}
}

static void test_reads_zero(void **state)
{
	struct vmmux_ctx *ctx = dx_new();
	uint64_t v = 1;

	(void)state;
	for (uint8_t size = 1; size <= 4; size *= 2) {
		assert_int_equal(host_in(ctx, 0xf4, size, &v), 0);
		assert_int_equal(v, 0);
	}
	assert_int_equal(ctx->nraised, 0);
	host_free(ctx);
}

static void test_refused(void **state)
{
	struct vmmux_ctx *ctx = dx_new();
	struct vmmux_event ev;
	struct vmmux_reply rep;
	uint8_t data[2] = {1, 2};

	(void)state;
	assert_true(host_out(ctx, 0xf3, 1, 1) < 0); /* outside iobase..iobase+3 */
	assert_true(host_out(ctx, 0xf8, 1, 1) < 0);
	assert_true(host_out(ctx, 0xf4, 8, 1) < 0);
	assert_true(host_out(ctx, 0xf4, 3, 1) < 0);
	ev = host_event(VMMUX_EV_MMIO, 0xf4, 1, 1);
	ev.flags = VMMUX_EVF_WRITE;
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_IO, 0xf4, 1, 0);
	ev.flags = VMMUX_EVF_WRITE | VMMUX_EVF_STRING;
	ev.count = 2;
	ev.data = data;
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	assert_int_equal(ctx->nraised, 0);
	/* a refused raise is an error of the handler */
	ctx->raise_limit = 0;
	assert_true(host_out(ctx, 0xf4, 1, 1) < 0);
	host_free(ctx);
}

static void test_args(void **state)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_debug_exit, "exit");

	(void)state;
	host_arg(ctx, "iobase", "0x501");
	host_arg(ctx, "iosize", "2");
	assert_int_equal(host_init(ctx), 0);
	assert_int_equal(host_out(ctx, 0x502, 1, 7), 0);
	assert_exit(ctx, 0, 15);
	assert_true(host_out(ctx, 0x503, 1, 7) < 0);
	assert_true(host_out(ctx, 0xf4, 1, 7) < 0);
	host_free(ctx);

	static const char *const bad[][2] = {
	    {"iobase", "0x10000"}, {"iobase", "x"},  {"iosize", "0"},
	    {"iosize", "0x10001"}, {"iosize", "-4"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx = host_new(&vmmux_role_debug_exit, "exit");
		host_arg(ctx, bad[i][0], bad[i][1]);
		assert_true(host_init(ctx) < 0);
		assert_true(host_log_count(ctx, bad[i][0]) >= 1);
		host_free(ctx);
	}
	ctx = host_new(&vmmux_role_debug_exit, "exit");
	host_arg(ctx, "iobase", "0xfffe");
	host_arg(ctx, "iosize", "4"); /* past 0xffff */
	assert_true(host_init(ctx) < 0);
	assert_int_equal(host_log_count(ctx, "arg \"iosize\""), 1);
	host_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_statuses),
	    cmocka_unit_test(test_reads_zero),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
