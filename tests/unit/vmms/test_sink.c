/*
 * Unit tests of the sink role (vmms/sink/sink.c): reads answer its "read"
 * value, writes and other events are consumed, a shutdown ends the run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../../vmms/roles.h"
#include "host.h"

static void test_reads_and_writes(void **state)
{
	(void)state;
	struct vmmux_ctx *ctx = host_new(&vmmux_role_sink, "sink");
	host_arg(ctx, "read", "0x1234");
	assert_int_equal(host_init(ctx), 0);
	struct vmmux_reply rep;
	struct vmmux_event ev = host_event(VMMUX_EV_IO, 0x80, 2, 0);
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	assert_int_equal(rep.value, 0x1234);
	ev = host_event(VMMUX_EV_MSR, 0x40001000, 8, 0);
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(rep.value, 0x1234);
	ev = host_event(VMMUX_EV_MMIO, 0xd0000000, 4, 7);
	ev.flags |= VMMUX_EVF_WRITE;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	assert_int_equal(rep.value, 0);
	/* INS: the buffer gets the low byte */
	uint8_t buf[6] = {0};
	ev = host_event(VMMUX_EV_IO, 0x80, 2, 0);
	ev.flags |= VMMUX_EVF_STRING;
	ev.count = 3;
	ev.data = buf;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x34);
	ev = host_event(VMMUX_EV_SHUTDOWN, 0, 0, 0);
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(rep.action, VMMUX_ACT_END);
	host_free(ctx);
}

static void test_bad_arg(void **state)
{
	(void)state;
	struct vmmux_ctx *ctx = host_new(&vmmux_role_sink, "sink");
	host_arg(ctx, "read", "lots");
	assert_true(host_init(ctx) < 0);
	host_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_and_writes),
	    cmocka_unit_test(test_bad_arg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
