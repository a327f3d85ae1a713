/*
 * Unit tests of raise grants (src/vmm/grants.c): the grant syntax, and which
 * raised events a set of grants allows: for each grant kind, an event it
 * admits and the events just outside it, raised with the reply of a request
 * (both placements: a parallel VMM's reply slot, an in-process handle call)
 * and outside one (a parallel VMM's async ring, an in-process input
 * callback).
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
	assert_true(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_IRQ, 3);
	assert_false(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_IRQ, 256);
	assert_false(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_PLATFORM, VMMUX_PLAT_RESET);
	assert_true(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_PLATFORM, VMMUX_PLAT_POWEROFF);
	assert_false(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_PLATFORM, 99);
	assert_false(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_REQUEST, VMMUX_REQ_EXIT);
	assert_true(grant_allows(&g, &a, NULL));
	a = ev(VMMUX_EV_EXCEPTION, 6);
	assert_false(grant_allows(&g, &a, NULL)); /* no "exception" grant */
	a = ev(VMMUX_EV_IO, 0x80);
	assert_false(grant_allows(&g, &a, NULL)); /* no "forward" grant */
	a = ev(VMMUX_EV_FAULT, 1);
	assert_false(grant_allows(&g, &a, NULL)); /* never */
	const char *more[] = {"exception", "forward", NULL};
	assert_int_equal(grant_parse_list(more, &g, NULL), 0);
	a = ev(VMMUX_EV_EXCEPTION, 6);
	assert_true(grant_allows(&g, &a, NULL));
	for (unsigned t = VMMUX_EV_IO; t <= VMMUX_EV_SHUTDOWN; t++) {
		a = ev(t, 1);
		if (t == VMMUX_EV_EXCEPTION)
			continue;
		/* a copy of the request served: allowed; outside a request: never */
		struct vmmux_event served = a;
		assert_true(grant_allows(&g, &a, &served));
		assert_false(grant_allows(&g, &a, NULL));
	}
	a = ev(VMMUX_EV_FAULT, 1);
	assert_false(grant_allows(&g, &a, NULL));

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

/* One row: a grant, an event it admits, and events just outside it. */
struct row {
	const char *grant;
	struct vmmux_event in;
	struct vmmux_event out[8];
	unsigned nout;
	bool needs_request; /* admitted only with the reply of IN itself */
};

static struct vmmux_event mk(unsigned type, uint64_t key, uint64_t value, uint8_t size,
			     uint16_t flags)
{
	struct vmmux_event e = ev(type, key);
	e.value = value;
	e.size = size;
	e.flags = flags;
	e.count = 1;
	e.vcpu = 0;
	return e;
}

static void test_table(void **state)
{
	(void)state;
	const struct vmmux_event io = mk(VMMUX_EV_IO, 0x80, 0x12, 1, VMMUX_EVF_WRITE);
	struct vmmux_event io_key = io, io_val = io, io_size = io, io_flags = io, io_type = io,
			   io_vcpu = io, io_count = io, io_aux = io;
	io_key.key = 0x81;
	io_val.value = 0x13;
	io_size.size = 2;
	io_flags.flags = 0; /* the read, not the write */
	io_type.type = VMMUX_EV_MMIO;
	io_vcpu.vcpu = 1;
	io_count.count = 2;
	io_aux.aux = 1;
	const struct row rows[] = {
	    {"irq:4",
	     mk(VMMUX_EV_IRQ, 4, 1, 0, 0),
	     {mk(VMMUX_EV_IRQ, 5, 1, 0, 0), mk(VMMUX_EV_IRQ, 3, 1, 0, 0),
	      mk(VMMUX_EV_IRQ, 256 + 4, 1, 0, 0)},
	     3,
	     false},
	    {"irq:4:edge",
	     mk(VMMUX_EV_IRQ, 4, 1, 0, 0),
	     {mk(VMMUX_EV_IRQ, 5, 1, 0, 0), mk(VMMUX_EV_IRQ, 1ull << 32 | 4, 1, 0, 0)},
	     2,
	     false},
	    {"irq:255:level",
	     mk(VMMUX_EV_IRQ, 255, 0, 0, 0),
	     {mk(VMMUX_EV_IRQ, 254, 0, 0, 0), mk(VMMUX_EV_IRQ, 256, 0, 0, 0)},
	     2,
	     false},
	    {"platform:reset",
	     mk(VMMUX_EV_PLATFORM, VMMUX_PLAT_RESET, 0, 0, 0),
	     {mk(VMMUX_EV_PLATFORM, VMMUX_PLAT_POWEROFF, 0, 0, 0),
	      mk(VMMUX_EV_PLATFORM, VMMUX_PLAT_SMI, 0, 0, 0),
	      mk(VMMUX_EV_PLATFORM, VMMUX_PLAT__COUNT, 0, 0, 0),
	      mk(VMMUX_EV_PLATFORM, 32 + VMMUX_PLAT_RESET, 0, 0, 0)},
	     4,
	     false},
	    {"platform:watchdog",
	     mk(VMMUX_EV_PLATFORM, VMMUX_PLAT_WATCHDOG, 0, 0, 0),
	     {mk(VMMUX_EV_PLATFORM, VMMUX_PLAT_POWERBTN, 0, 0, 0),
	      mk(VMMUX_EV_PLATFORM, VMMUX_PLAT__COUNT, 0, 0, 0)},
	     2,
	     false},
	    {"request:exit",
	     mk(VMMUX_EV_REQUEST, VMMUX_REQ_EXIT, 3, 0, 0),
	     {mk(VMMUX_EV_REQUEST, VMMUX_REQ__COUNT, 3, 0, 0), mk(VMMUX_EV_REQUEST, 32, 3, 0, 0)},
	     2,
	     false},
	    {"exception",
	     mk(VMMUX_EV_EXCEPTION, 255, 0, 0, VMMUX_EVF_GUEST_REPORTED),
	     {mk(VMMUX_EV_EXCEPTION, 256, 0, 0, VMMUX_EVF_GUEST_REPORTED),
	      mk(VMMUX_EV_FAULT, 1, 0, 0, 0)},
	     2,
	     false},
	    {"forward",
	     io,
	     {io_key, io_val, io_size, io_flags, io_type, io_vcpu, io_count, io_aux},
	     8,
	     true},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct raise_grants g;
		memset(&g, 0, sizeof(g));
		struct errbuf e;
		if (grant_parse(r->grant, &g, &e) != 0)
			fail_msg("'%s': %s", r->grant, e.msg);
		/* what the VMM serves: the admitted event itself (a copy), or an
		 * unrelated port read */
		const struct vmmux_event other = mk(VMMUX_EV_IO, 0x3f8, 0, 1, 0);
		const struct vmmux_event *served_in = r->needs_request ? &r->in : &other;
		if (!grant_allows(&g, &r->in, served_in))
			fail_msg("'%s' refuses what it grants (row %zu)", r->grant, i);
		/* outside a request (async ring, input): only what needs none */
		if (grant_allows(&g, &r->in, NULL) != !r->needs_request)
			fail_msg("'%s' outside a request: wrong answer (row %zu)", r->grant, i);
		if (r->needs_request && grant_allows(&g, &r->in, &other))
			fail_msg("'%s' admits a copy of a request it does not serve", r->grant);
		for (unsigned k = 0; k < r->nout; k++) {
			/* just outside: refused while serving IN (or anything, for
			 * the grants that do not depend on the request) */
			if (grant_allows(&g, &r->out[k], served_in) ||
			    (!r->needs_request && grant_allows(&g, &r->out[k], &r->out[k])) ||
			    grant_allows(&g, &r->out[k], NULL))
				fail_msg("'%s' admits the event just outside it, #%u", r->grant, k);
		}
		/* no other grant kind admits it: every other kind's event refused */
		for (size_t j = 0; j < sizeof(rows) / sizeof(rows[0]); j++) {
			if (rows[j].in.type == r->in.type)
				continue;
			if (grant_allows(&g, &rows[j].in, &rows[j].in))
				fail_msg("'%s' admits the event of '%s'", r->grant, rows[j].grant);
		}
	}
}

/* forward: what makes a copy (grant_is_copy), flag by flag. */
static void test_copy(void **state)
{
	(void)state;
	struct raise_grants g;
	memset(&g, 0, sizeof(g));
	assert_int_equal(grant_parse("forward", &g, NULL), 0);
	struct vmmux_event served = mk(VMMUX_EV_HYPERCALL, 4, 0x1000, 4, VMMUX_EVF_WRITE);
	struct vmmux_event c = served;
	assert_true(grant_allows(&g, &c, &served));
	/* marks set on the way do not matter */
	c.flags |= VMMUX_EVF_REDELIVERED | VMMUX_EVF_UNROUTED;
	assert_true(grant_allows(&g, &c, &served));
	served.flags |= VMMUX_EVF_UNROUTED;
	c = served;
	c.flags &= (uint16_t)~VMMUX_EVF_UNROUTED;
	assert_true(grant_allows(&g, &c, &served));
	/* any other flag does, either way */
	for (unsigned bit = 0; bit < 16; bit++) {
		uint16_t f = (uint16_t)(1u << bit);
		if (f & (VMMUX_EVF_REDELIVERED | VMMUX_EVF_UNROUTED))
			continue;
		c = served;
		c.flags ^= f;
		assert_false(grant_allows(&g, &c, &served));
	}
	/* a different hypercall number, argument */
	c = served;
	c.key = 5;
	assert_false(grant_allows(&g, &c, &served));
	c = served;
	c.value = 0x1008;
	assert_false(grant_allows(&g, &c, &served));
	/* string I/O is never handed on (its data lives in the request) */
	struct vmmux_event s = mk(VMMUX_EV_IO, 0x81, 0, 1, VMMUX_EVF_STRING);
	s.count = 8;
	c = s;
	assert_false(grant_allows(&g, &c, &s));
	/* a request that is no device event has no copy */
	struct vmmux_event irq = mk(VMMUX_EV_IRQ, 4, 1, 0, 0);
	c = irq;
	c.type = VMMUX_EV_IO;
	struct vmmux_event irq_io = irq;
	irq_io.type = VMMUX_EV_IO;
	assert_true(grant_is_copy(&c, &irq_io));
	assert_false(grant_is_copy(&c, &irq));
	assert_false(grant_is_copy(&c, NULL));
	/* every device type, and only those */
	for (unsigned t = 0; t < VMMUX_EV__COUNT + 2; t++) {
		struct vmmux_event d = mk(t, 1, 2, 1, 0), dd = d;
		bool device = t == VMMUX_EV_IO || t == VMMUX_EV_MMIO || t == VMMUX_EV_MSR ||
			      t == VMMUX_EV_HLT || t == VMMUX_EV_HYPERCALL ||
			      t == VMMUX_EV_SHUTDOWN;
		assert_int_equal(grant_allows(&g, &dd, &d), device);
	}
	/* without the grant: nothing, even the exact copy */
	memset(&g, 0, sizeof(g));
	c = served;
	assert_false(grant_allows(&g, &c, &served));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_allows),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
