/*
 * test_fault_report.c: guest exception reports through the fault-report port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/fault-report/fault_report.h"
#include "../../../vmms/roles.h"

#define GM_BASE 0x100000
#define GM_SIZE 0x2000

static struct vmmux_ctx *fr_new(uint8_t **gm)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_fault_report, "faults");

	*gm = host_guest_memory(ctx, GM_BASE, GM_SIZE);
	assert_int_equal(host_init(ctx), 0);
	return ctx;
}

/* Write a report at GPA in the little-endian layout the guest uses. */
static void put_report(uint8_t *gm, uint64_t gpa, uint32_t vector, uint64_t err, uint64_t rip,
		       uint64_t cr2)
{
	uint8_t *p = gm + (gpa - GM_BASE);

	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(vector >> (8 * i));
	memset(p + 4, 0, 4);
	for (int i = 0; i < 8; i++) {
		p[8 + i] = (uint8_t)(err >> (8 * i));
		p[16 + i] = (uint8_t)(rip >> (8 * i));
		p[24 + i] = (uint8_t)(cr2 >> (8 * i));
	}
}

static void test_report(void **state)
{
	uint8_t *gm;
	struct vmmux_ctx *ctx = fr_new(&gm);
	struct vmmux_event ev;
	struct vmmux_reply rep;

	(void)state;
	assert_int_equal(offsetof(struct vmmux_fault_report, error_code), 8);
	assert_int_equal(offsetof(struct vmmux_fault_report, rip), 16);
	assert_int_equal(offsetof(struct vmmux_fault_report, cr2), 24);

	put_report(gm, GM_BASE + 0x100, 14, 0x2, 0xffffffff80001234, 0xdead000);
	ev = host_event(VMMUX_EV_IO, 0x4f0, 4, GM_BASE + 0x100);
	ev.flags = VMMUX_EVF_WRITE;
	ev.vcpu = 1;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_int_equal(ctx->raised[0].type, VMMUX_EV_EXCEPTION);
	assert_int_equal(ctx->raised[0].key, 14);
	assert_int_equal(ctx->raised[0].value, 0xffffffff80001234);
	assert_int_equal(ctx->raised[0].aux, 0x2);
	assert_int_equal(ctx->raised[0].flags, VMMUX_EVF_GUEST_REPORTED);
	assert_int_equal(ctx->raised[0].vcpu, 1);
	assert_int_equal(host_log_count(ctx, "cr2 0xdead000"), 1);

	/* the last report that fits in the window; vector 255 is valid */
	put_report(gm, GM_BASE + GM_SIZE - 32, 255, 0, 0x400000, 0);
	assert_int_equal(host_out(ctx, 0x4f0, 4, GM_BASE + GM_SIZE - 32), 0);
	assert_int_equal(ctx->nraised, 2);
	assert_int_equal(ctx->raised[1].key, 255);
	assert_int_equal(ctx->raised[1].aux, 0);
	host_free(ctx);
}

static void test_bad_gpa(void **state)
{
	uint8_t *gm;
	struct vmmux_ctx *ctx = fr_new(&gm);
	static const uint64_t gpas[] = {0, GM_BASE - 1, GM_BASE + GM_SIZE - 31, GM_BASE + GM_SIZE,
					0xfffffff0};

	(void)state;
	for (size_t i = 0; i < sizeof(gpas) / sizeof(gpas[0]); i++) {
		char needle[64];

		host_clear(ctx);
		assert_int_equal(host_out(ctx, 0x4f0, 4, gpas[i]), 0);
		assert_int_equal(ctx->nraised, 0);
		snprintf(needle, sizeof(needle),
			 "guest-physical 0x%llx:", (unsigned long long)gpas[i]);
		assert_int_equal(host_log_count(ctx, needle), 1);
	}
	/* only EAX is the address: upper bits of the value are ignored */
	put_report(gm, GM_BASE, 6, 0, 0x1000, 0);
	host_clear(ctx);
	assert_int_equal(host_out(ctx, 0x4f0, 4, 0xffffffff00000000ull | GM_BASE), 0);
	assert_int_equal(ctx->nraised, 1);
	host_free(ctx);
}

static void test_bad_vector(void **state)
{
	uint8_t *gm;
	struct vmmux_ctx *ctx = fr_new(&gm);

	(void)state;
	put_report(gm, GM_BASE, 256, 0, 0x1000, 0);
	assert_int_equal(host_out(ctx, 0x4f0, 4, GM_BASE), 0);
	assert_int_equal(ctx->nraised, 0);
	assert_int_equal(host_log_count(ctx, "vector 256"), 1);
	put_report(gm, GM_BASE, 0xffffffff, 0, 0x1000, 0);
	assert_int_equal(host_out(ctx, 0x4f0, 4, GM_BASE), 0);
	assert_int_equal(ctx->nraised, 0);
	host_free(ctx);
}

static void test_port_rules(void **state)
{
	uint8_t *gm;
	struct vmmux_ctx *ctx = fr_new(&gm);
	uint64_t v;

	(void)state;
	put_report(gm, GM_BASE, 3, 0, 0x1000, 0);
	/* reads: all ones on each of the four ports */
	assert_int_equal(host_in(ctx, 0x4f0, 4, &v), 0);
	assert_int_equal(v, 0xffffffff);
	assert_int_equal(host_in(ctx, 0x4f3, 1, &v), 0);
	assert_int_equal(v, 0xff);
	/* a report needs a 32-bit OUT to the base port */
	assert_true(host_out(ctx, 0x4f0, 1, GM_BASE) < 0);
	assert_true(host_out(ctx, 0x4f0, 2, GM_BASE) < 0);
	assert_true(host_out(ctx, 0x4f1, 4, GM_BASE) < 0);
	assert_true(host_out(ctx, 0x4f4, 4, GM_BASE) < 0);
	assert_true(host_out(ctx, 0x4ef, 4, GM_BASE) < 0);
	assert_int_equal(ctx->nraised, 0);
	/* a refused raise is an error */
	ctx->raise_limit = 0;
	assert_true(host_out(ctx, 0x4f0, 4, GM_BASE) < 0);
	host_free(ctx);

	/* another base */
	ctx = host_new(&vmmux_role_fault_report, "faults");
	gm = host_guest_memory(ctx, GM_BASE, GM_SIZE);
	host_arg(ctx, "iobase", "0x600");
	assert_int_equal(host_init(ctx), 0);
	put_report(gm, GM_BASE, 0, 0, 0x2000, 0);
	assert_int_equal(host_out(ctx, 0x600, 4, GM_BASE), 0);
	assert_int_equal(ctx->nraised, 1);
	assert_true(host_out(ctx, 0x4f0, 4, GM_BASE) < 0);
	host_free(ctx);

	ctx = host_new(&vmmux_role_fault_report, "faults");
	host_arg(ctx, "iobase", "0xfffd");
	assert_true(host_init(ctx) < 0);
	assert_int_equal(host_log_count(ctx, "arg \"iobase\""), 1);
	host_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_report),
	    cmocka_unit_test(test_bad_gpa),
	    cmocka_unit_test(test_bad_vector),
	    cmocka_unit_test(test_port_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
