/*
 * Unit tests of raise grants (src/vmm/grants.c): the grant syntax, and which
 * raised events a set of grants allows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/grants.h"

static struct vmmux_event ev(unsigned type, uint64_t key)
{
	struct vmmux_event e;
	memset(&e, 0, sizeof(e));
	e.type = (uint16_t)type;
	e.key = key;
	return e;
}

static void test_syntax(void **state)
{
	(void)state;
	struct raise_grants g;
	struct errbuf e;
	memset(&g, 0, sizeof(g));
	const char *good[] = {"irq:4",	      "irq:0x5:edge", "irq:255:level", "platform:reset",
			      "platform:SMI", "request:exit", "exception",     "forward"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (grant_parse(good[i], &g, &e) != 0)
			fail_msg("'%s': %s", good[i], e.msg);
	static const struct {
		const char *s, *msg;
	} bad[] = {
	    {"irq:256", "grant 'irq:256': the IRQ line is a number from 0 to 255"},
	    {"irq:", "grant 'irq:': expected irq:LINE[:edge|:level]"},
	    {"irq:4:pulse", "grant 'irq:4:pulse': the trigger is 'level' or 'edge'"},
	    {"irq:x", "grant 'irq:x': the IRQ line is a number from 0 to 255"},
	    {"platform:nap", "grant 'platform:nap': unknown platform event"},
	    {"request:halt", "grant 'request:halt': unknown request (exit)"},
	    {"everything", "grant 'everything': expected irq:LINE[:edge|:level], platform:NAME"},
	    {"", "grant '': expected"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(grant_parse(bad[i].s, &g, &e), -1);
		if (strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("'%s': message \"%s\" lacks \"%s\"", bad[i].s, e.msg, bad[i].msg);
	}
}

static void test_allows(void **state)
{
	(void)state;
	struct raise_grants g;
	memset(&g, 0, sizeof(g));
	const char *list[] = {"irq:4", "irq:5:level", "platform:reset", "request:exit", NULL};
	assert_int_equal(grant_parse_list(list, &g, NULL), 0);
	struct vmmux_event a;
	a = ev(VMMUX_EV_IRQ, 4);
	assert_true(grant_allows(&g, &a));
	a = ev(VMMUX_EV_IRQ, 3);
	assert_false(grant_allows(&g, &a));
	a = ev(VMMUX_EV_IRQ, 256);
	assert_false(grant_allows(&g, &a));
	a = ev(VMMUX_EV_PLATFORM, VMMUX_PLAT_RESET);
	assert_true(grant_allows(&g, &a));
	a = ev(VMMUX_EV_PLATFORM, VMMUX_PLAT_POWEROFF);
	assert_false(grant_allows(&g, &a));
	a = ev(VMMUX_EV_PLATFORM, 99);
	assert_false(grant_allows(&g, &a));
	a = ev(VMMUX_EV_REQUEST, VMMUX_REQ_EXIT);
	assert_true(grant_allows(&g, &a));
	a = ev(VMMUX_EV_EXCEPTION, 6);
	assert_false(grant_allows(&g, &a)); /* no "exception" grant */
	a = ev(VMMUX_EV_IO, 0x80);
	assert_false(grant_allows(&g, &a)); /* no "forward" grant */
	a = ev(VMMUX_EV_FAULT, 1);
	assert_false(grant_allows(&g, &a)); /* never */
	const char *more[] = {"exception", "forward", NULL};
	assert_int_equal(grant_parse_list(more, &g, NULL), 0);
	a = ev(VMMUX_EV_EXCEPTION, 6);
	assert_true(grant_allows(&g, &a));
	for (unsigned t = VMMUX_EV_IO; t <= VMMUX_EV_SHUTDOWN; t++) {
		a = ev(t, 1);
		if (t != VMMUX_EV_EXCEPTION)
			assert_true(grant_allows(&g, &a));
	}
	a = ev(VMMUX_EV_FAULT, 1);
	assert_false(grant_allows(&g, &a));

	/* irq:N goes through the main VMM; only a trigger wires an irqfd */
	bool wire, level;
	assert_true(grant_irq(&g, 4, &wire, &level));
	assert_false(wire);
	assert_true(grant_irq(&g, 5, &wire, &level));
	assert_true(wire);
	assert_true(level);
	assert_false(grant_irq(&g, 6, &wire, &level));
	assert_false(grant_irq(&g, 300, NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_allows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
