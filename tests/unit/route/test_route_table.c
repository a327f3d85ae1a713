/*
 * Unit tests of the routing table: implicit and type: routes, overlap
 * detection in every key space, unknown VMMs, lookups at the boundaries of
 * ports, MMIO and MSR ranges, event lookups, the MSR filter ranges, groups
 * (members, weights, the smooth weighted round-robin sequence, errors) and
 * the dump.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route/table.h"

/* VMMs of the tests: "main" is 0 (built in), the names below 1.., and
 * "vN" is N. */
static const char *const vmm_names[] = {"main", "uart", "mon", "blk", "smm", "console", "x", "y"};
#define NVMMS (sizeof(vmm_names) / sizeof(vmm_names[0]))

static uint16_t resolve(void *arg, const char *name)
{
	(void)arg;
	for (size_t i = 1; i < NVMMS; i++)
		if (strcmp(name, vmm_names[i]) == 0)
			return (uint16_t)i;
	if (name[0] == 'v' && name[1] >= '0' && name[1] <= '9')
		return (uint16_t)atoi(name + 1);
	return VMM_ID_NONE;
}

static const char *vmm_name(void *arg, uint16_t id)
{
	(void)arg;
	return id < NVMMS ? vmm_names[id] : NULL;
}

/* Parse SPECS (asserting they parse) and build a table; NULL with e set on a
 * build error. */
static struct route_table *build(const char *const *specs, size_t n, struct errbuf *e)
{
	struct route_spec *s = calloc(n ? n : 1, sizeof(*s));
	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		if (route_spec_parse(specs[i], &s[i], e))
			fail_msg("'%s': %s", specs[i], e->msg);
	struct route_table *t = route_table_build(s, n, resolve, NULL, e);
	free(s);
	return t;
}

static struct route_table *build_ok(const char *const *specs, size_t n)
{
	struct errbuf e = {{0}};
	struct route_table *t = build(specs, n, &e);
	if (t == NULL)
		fail_msg("build failed: %s", e.msg);
	return t;
}

static void build_fails(const char *const *specs, size_t n, const char *msg);

/* MSRs that KVM keeps whatever the filter says cannot be routed. */
static void test_msr_kvm_own_refused(void **state)
{
	(void)state;
	const char *x2apic[] = {"msr:0x7f0-0x800=mon"};
	build_fails(x2apic, 1,
		    "route 'msr:0x7f0-0x800=mon': MSRs 0x800-0x8ff are x2APIC MSRs, which KVM's "
		    "MSR filter cannot cover: they never leave KVM and cannot be routed");
	const char *kvm[] = {"msr:0x4b564dff=mon"};
	build_fails(kvm, 1,
		    "route 'msr:0x4b564dff=mon': MSRs 0x4b564d00-0x4b564dff are KVM's own "
		    "paravirtual MSRs: they never leave KVM and cannot be routed");
	const char *ok[] = {"msr:0x7ff=mon", "msr:0x900=mon", "msr:0x4b564e00=mon"};
	route_table_free(build_ok(ok, 3));
}

static void build_fails(const char *const *specs, size_t n, const char *msg)
{
	struct errbuf e = {{0}};
	struct route_table *t = build(specs, n, &e);
	if (t != NULL) {
		route_table_free(t);
		fail_msg("build accepted, expected: %s", msg);
	}
	assert_string_equal(e.msg, msg);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The VMM id that handles port P, or -1 when no keyed route matches. */
static int port_vmm(const struct route_table *t, uint16_t p)
{
	uint16_t r = route_lookup_port(t, p);
	return r == ROUTE_NONE ? -1 : t->routes[r].vmm;
}

static int mmio_vmm(const struct route_table *t, uint64_t a)
{
	uint16_t r = route_lookup_mmio(t, a);
	return r == ROUTE_NONE ? -1 : t->routes[r].vmm;
}

static int msr_vmm(const struct route_table *t, uint32_t a)
{
	uint16_t r = route_lookup_msr(t, a);
	return r == ROUTE_NONE ? -1 : t->routes[r].vmm;
}

static void test_implicit_types(void **state)
{
	(void)state;
	struct errbuf e;
	struct route_table *t = route_table_build(NULL, 0, resolve, NULL, &e);
	assert_non_null(t);
	assert_int_equal(t->nroutes, VMMUX_EV__COUNT);
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		char want[64];
		snprintf(want, sizeof(want), "type:%s=main", event_type_name(ty));
		assert_int_equal(t->type_route[ty], ty);
		assert_int_equal(t->type_default[ty], VMM_ID_MAIN);
		assert_string_equal(t->routes[ty].spec.text, want);
		assert_true(t->routes[ty].flags & ROUTE_FLAG_IMPLICIT);
		assert_null(t->routes[ty].stats);
	}
	for (unsigned p = 0; p < 65536; p++)
		assert_int_equal(t->port[p], ROUTE_NONE);
	assert_int_equal(t->nmmio, 0);
	assert_int_equal(t->nmsr, 0);
	assert_int_equal(route_lookup_mmio(t, 0), ROUTE_NONE);
	assert_int_equal(route_lookup_msr(t, 0), ROUTE_NONE);
	route_table_free(t);
	route_table_free(NULL);
}

static void test_type_routes(void **state)
{
	(void)state;
	const char *specs[] = {"io:0x3f8-0x3ff=uart", "type:hlt=mon", "type:io-msr=uart",
			       "type:fault=x;timeout=5ms"};
	struct route_table *t = build_ok(specs, N(specs));
	/* 11 types, 5 covered by 3 type: specs: 6 implicit + 3 + 1 keyed */
	assert_int_equal(t->nroutes, 6 + 3 + 1);
	assert_int_equal(t->type_route[VMMUX_EV_IO], t->type_route[VMMUX_EV_MMIO]);
	assert_int_equal(t->type_route[VMMUX_EV_IO], t->type_route[VMMUX_EV_MSR]);
	assert_string_equal(t->routes[t->type_route[VMMUX_EV_MSR]].spec.text, "type:io-msr=uart");
	assert_false(t->routes[t->type_route[VMMUX_EV_MSR]].flags & ROUTE_FLAG_IMPLICIT);
	assert_string_equal(t->routes[t->type_route[VMMUX_EV_HLT]].spec.text, "type:hlt=mon");
	assert_string_equal(t->routes[t->type_route[VMMUX_EV_SHUTDOWN]].spec.text,
			    "type:shutdown=main");
	assert_true(t->routes[t->type_route[VMMUX_EV_FAULT]].timeout_ns == 5000000);
	assert_int_equal(t->type_default[VMMUX_EV_IO], 1);
	assert_int_equal(t->type_default[VMMUX_EV_MMIO], 1);
	assert_int_equal(t->type_default[VMMUX_EV_MSR], 1);
	assert_int_equal(t->type_default[VMMUX_EV_HLT], 2);
	assert_int_equal(t->type_default[VMMUX_EV_FAULT], 6);
	assert_int_equal(t->type_default[VMMUX_EV_HYPERCALL], 0);
	/* type routes come first, in type order, keyed routes after them */
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++)
		assert_true(t->type_route[ty] < 9);
	assert_int_equal(t->port[0x3f8], 9);
	assert_string_equal(t->routes[9].spec.text, "io:0x3f8-0x3ff=uart");
	route_table_free(t);
}

/* Routes keyed by source overlap only routes of the same source. */
static void test_sourced_overlaps(void **state)
{
	(void)state;
	const char *ok[] = {"io:0x3f8-0x3ff=uart", "io:0x3f8-0x3ff=mon;from=uart",
			    "io:0x3f8-0x3ff=mon;from=x", "type:io=mon;from=uart"};
	struct route_table *t = build_ok(ok, 4);
	assert_int_equal(t->nsourced, 3);
	assert_int_equal(t->port[0x3f8], t->nroutes - 4); /* the plain route keeps the port */
	route_table_free(t);
	const char *bad[] = {"io:0x3f8-0x3ff=mon;from=uart", "hypercall:0-8=x;from=uart",
			     "io:0x500=y;from=uart"};
	build_fails(bad + 1, 2,
		    "route 'io:0x500=y;from=uart' overlaps route 'hypercall:0-8=x;from=uart' at "
		    "port 0x500 (hypercall 0)");
	const char *unknown[] = {"io:1=mon;from=ghost"};
	build_fails(unknown, 1, "route 'io:0x1=mon;from=ghost': no VMM named 'ghost' (its source)");
}

static void test_overlaps(void **state)
{
	(void)state;
	const char *io[] = {"io:0x3f8-0x3ff=uart", "io:0x3fc=mon"};
	build_fails(io, 2,
		    "route 'io:0x3fc=mon' overlaps route 'io:0x3f8-0x3ff=uart' at port 0x3fc");
	const char *io2[] = {"io:0x3f8-0x3ff=uart", "io:0x3f0-0x3f9=mon"};
	build_fails(
	    io2, 2,
	    "route 'io:0x3f0-0x3f9=mon' overlaps route 'io:0x3f8-0x3ff=uart' at port 0x3f8");
	const char *io3[] = {"io:0x60=x", "io:0x3f8-0x3ff=uart", "io:0x300-0x3f8=mon"};
	build_fails(
	    io3, 3,
	    "route 'io:0x300-0x3f8=mon' overlaps route 'io:0x3f8-0x3ff=uart' at port 0x3f8");
	const char *hc[] = {"io:0x500-0x5ff=x", "hypercall:2=console"};
	build_fails(hc, 2,
		    "route 'hypercall:2=console' overlaps route 'io:0x500-0x5ff=x' at port 0x502 "
		    "(hypercall 2)");
	const char *hc2[] = {"hypercall:1-3=console", "io:0x503+4=x"};
	build_fails(hc2, 2,
		    "route 'io:0x503-0x506=x' overlaps route 'hypercall:1-3=console' at port "
		    "0x503 (hypercall 3)");
	const char *hc3[] = {"hypercall:7=console", "hypercall:0-255=x"};
	build_fails(hc3, 2,
		    "route 'hypercall:0-255=x' overlaps route 'hypercall:7=console' at port "
		    "0x507 (hypercall 7)");
	const char *mm[] = {"mmio:0x1000-0x1fff=blk", "mmio:0x1800+0x1000=x"};
	build_fails(mm, 2,
		    "route 'mmio:0x1800-0x27ff=x' overlaps route 'mmio:0x1000-0x1fff=blk' at "
		    "address 0x1800");
	const char *mm2[] = {"mmio:0x1000-0x1fff=blk", "mmio:0x0-0x1000=x"};
	build_fails(mm2, 2,
		    "route 'mmio:0x0-0x1000=x' overlaps route 'mmio:0x1000-0x1fff=blk' at address "
		    "0x1000");
	const char *mm3[] = {"mmio:0x5000=y", "mmio:0x1000-0x1fff=blk", "mmio:0-0xffffffff=x"};
	build_fails(mm3, 3,
		    "route 'mmio:0x0-0xffffffff=x' overlaps route 'mmio:0x1000-0x1fff=blk' at "
		    "address 0x1000");
	const char *mm4[] = {"mmio:0x1000-0x1fff=blk", "mmio:0x1000-0x1fff=x"};
	build_fails(mm4, 2,
		    "route 'mmio:0x1000-0x1fff=x' overlaps route 'mmio:0x1000-0x1fff=blk' at "
		    "address 0x1000");
	const char *ms[] = {"msr:0x40001000-0x400010ff=mon", "msr:0x400010ff-0x40002000=x"};
	build_fails(ms, 2,
		    "route 'msr:0x400010ff-0x40002000=x' overlaps route "
		    "'msr:0x40001000-0x400010ff=mon' at MSR 0x400010ff");
	const char *ty[] = {"type:io-msr=uart", "type:mmio=x"};
	build_fails(ty, 2,
		    "route 'type:mmio=x' overlaps route 'type:io-msr=uart' at event type mmio");
	const char *ty2[] = {"type:hlt=x", "type:hlt=x"};
	build_fails(ty2, 2, "route 'type:hlt=x' overlaps route 'type:hlt=x' at event type hlt");
	const char *ex[] = {"exception:bp=mon", "exception:0-10=x"};
	build_fails(ex, 2, "route 'exception:0-10=x' overlaps route 'exception:3=mon' at vector 3");
	const char *pl[] = {"platform:reset-poweroff=x", "platform:smi-watchdog=smm"};
	build_fails(pl, 2,
		    "route 'platform:smi-watchdog=smm' overlaps route 'platform:reset-poweroff=x' "
		    "at platform code reset");
	const char *rq[] = {"request:exit=x", "request:exit=main"};
	build_fails(
	    rq, 2,
	    "route 'request:exit=main' overlaps route 'request:exit=x' at request kind exit");

	/* touching ranges, different key spaces: no overlap */
	const char *fine[] = {"io:0x3f8-0x3ff=uart", "io:0x400=x",
			      "io:0x3f7=y",	     "mmio:0x3f8-0x3ff=blk",
			      "msr:0x3f8-0x3ff=mon", "hypercall:0=console",
			      "io:0x4ff=x",	     "io:0x600=x",
			      "mmio:0x400-0x4ff=y",  "mmio:0x300-0x3f7=x",
			      "exception:3=mon",     "platform:smi=smm",
			      "platform:reset=x",    "request:exit=main",
			      "type:hlt=x",	     "type:hypercall=console"};
	struct route_table *t = build_ok(fine, N(fine));
	route_table_free(t);
}

static void test_vmm_names(void **state)
{
	(void)state;
	const char *a[] = {"io:0x60=uart", "io:0x80=nosuch"};
	build_fails(a, 2, "route 'io:0x80=nosuch': no VMM named 'nosuch'");
	const char *b[] = {"io:0x80=uart;fallback=nosuch"};
	build_fails(b, 1,
		    "route 'io:0x80=uart;fallback=nosuch': no VMM named 'nosuch' (its fallback)");
	const char *c[] = {"type:hlt=ghost"};
	build_fails(c, 1, "route 'type:hlt=ghost': no VMM named 'ghost'");
	const char *d[] = {"io:0x80=v64"};
	build_fails(d, 1, "route 'io:0x80=v64': VMM 'v64' has id 64, beyond the limit 63");

	/* fallback and options are compiled */
	const char *f[] = {"io:0x80=uart;posted;fallback=main;timeout=20ms"};
	struct route_table *t = build_ok(f, 1);
	const struct route *r = &t->routes[t->port[0x80]];
	assert_int_equal(r->vmm, 1);
	assert_int_equal(r->fallback, VMM_ID_MAIN);
	assert_int_equal(r->flags, ROUTE_OPT_POSTED | ROUTE_OPT_FALLBACK | ROUTE_OPT_TIMEOUT);
	assert_true(r->timeout_ns == 20000000);
	assert_int_equal(t->routes[t->port[0x80]].spec.kind, ROUTE_IO);
	route_table_free(t);

	/* without a resolver only "main" is known */
	struct route_spec s;
	struct errbuf e;
	assert_int_equal(route_spec_parse("io:0x80=main", &s, &e), 0);
	t = route_table_build(&s, 1, NULL, NULL, &e);
	assert_non_null(t);
	assert_int_equal(t->routes[t->port[0x80]].vmm, VMM_ID_MAIN);
	route_table_free(t);
	assert_int_equal(route_spec_parse("io:0x80=uart", &s, &e), 0);
	assert_null(route_table_build(&s, 1, NULL, NULL, &e));
	assert_string_equal(e.msg, "route 'io:0x80=uart': no VMM named 'uart'");
}

static void test_hand_built_specs(void **state)
{
	(void)state;
	struct errbuf e;
	struct route_spec s;
	memset(&s, 0, sizeof(s));
	s.kind = ROUTE_MSR;
	s.lo = 0x10;
	s.hi = 0x10;
	strcpy(s.vmm, "mon");
	s.opts = ROUTE_OPT_POSTED;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route 'msr:0x10=mon;posted': option 'posted' applies to io "
				   "and mmio routes only");
	s.opts = 0;
	s.lo = 0x20;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_non_null(strstr(e.msg, "range end is below its start"));
	s.kind = ROUTE_IO;
	s.lo = 0x10;
	s.hi = 0x10000;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_non_null(strstr(e.msg, "beyond the io key space"));
	s.hi = 0x10;
	s.kind = (enum route_kind)42;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route of unknown kind 42");
	s.kind = ROUTE_IO;
	memset(s.vmm, 'a', sizeof(s.vmm)); /* not terminated */
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_non_null(strstr(e.msg, "invalid VMM name"));
	strcpy(s.vmm, "uart");
	s.opts = ROUTE_OPT_TIMEOUT;
	s.timeout_ns = 0;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_non_null(strstr(e.msg, "timeout must be greater than 0"));
	/* stale text is replaced by the canonical one */
	s.opts = 0;
	strcpy(s.text, "garbage");
	struct route_table *t = route_table_build(&s, 1, resolve, NULL, &e);
	assert_non_null(t);
	assert_string_equal(t->routes[t->port[0x10]].spec.text, "io:0x10=uart");
	route_table_free(t);
	assert_null(route_table_build(NULL, 3, resolve, NULL, &e));
	/* routes compiled into KVM: the grammar's rules hold for hand-built specs */
	s.opts = ROUTE_OPT_DOORBELL;
	s.lo = 0x11;
	s.hi = 0x12;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route 'io:0x11-0x12=uart;doorbell': option 'doorbell': a "
				   "2-byte access at 0x11 is not naturally aligned");
	s.lo = 0x10;
	s.hi = 0x11;
	s.opts = ROUTE_OPT_DOORBELL | ROUTE_OPT_DATAMATCH;
	s.doorbell_value = 0xbeef;
	t = route_table_build(&s, 1, resolve, NULL, &e);
	assert_non_null(t);
	assert_string_equal(t->routes[t->port[0x10]].spec.text,
			    "io:0x10-0x11=uart;doorbell=0xbeef");
	assert_true(t->routes[t->port[0x10]].flags == (ROUTE_OPT_DOORBELL | ROUTE_OPT_DATAMATCH));
	route_table_free(t);
	s.opts = ROUTE_OPT_COALESCED | ROUTE_OPT_POSTED;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_non_null(strstr(e.msg, "drop 'posted'"));
	s.opts = ROUTE_OPT_COALESCED;
	s.doorbell_value = 7; /* meaningless without a datamatch: cleared */
	t = route_table_build(&s, 1, resolve, NULL, &e);
	assert_non_null(t);
	assert_true(t->routes[t->port[0x11]].spec.doorbell_value == 0);
	assert_true(t->routes[t->port[0x11]].flags == ROUTE_OPT_COALESCED);
	route_table_free(t);
	s.opts = 0x80; /* no such option */
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_non_null(strstr(e.msg, "unknown option bits 0x80"));
}

static void test_too_many(void **state)
{
	(void)state;
	size_t n = ROUTE_MAX - VMMUX_EV__COUNT + 1;
	struct route_spec *s = calloc(n, sizeof(*s));
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		char txt[64];
		struct errbuf e;
		snprintf(txt, sizeof(txt), "io:%zu=uart", i);
		assert_int_equal(route_spec_parse(txt, &s[i], &e), 0);
	}
	struct errbuf e;
	struct route_table *t = route_table_build(s, n, resolve, NULL, &e);
	assert_null(t);
	assert_string_equal(e.msg, "too many routes: 4097 (at most 4096, type defaults included)");
	t = route_table_build(s, n - 1, resolve, NULL, &e);
	assert_non_null(t);
	assert_int_equal(t->nroutes, ROUTE_MAX);
	assert_int_equal(port_vmm(t, (uint16_t)(n - 2)), 1);
	assert_int_equal(port_vmm(t, (uint16_t)(n - 1)), -1);
	route_table_free(t);
	free(s);
}

static void test_port_lookup(void **state)
{
	(void)state;
	const char *specs[] = {"io:0x3f8-0x3ff=uart", "io:0=x", "io:0xffff=y",
			       "hypercall:2-3=console", "io:0x80=mon"};
	struct route_table *t = build_ok(specs, N(specs));
	assert_int_equal(port_vmm(t, 0x3f7), -1);
	assert_int_equal(port_vmm(t, 0x3f8), 1);
	assert_int_equal(port_vmm(t, 0x3fb), 1);
	assert_int_equal(port_vmm(t, 0x3ff), 1);
	assert_int_equal(port_vmm(t, 0x400), -1);
	assert_int_equal(port_vmm(t, 0), 6);
	assert_int_equal(port_vmm(t, 1), -1);
	assert_int_equal(port_vmm(t, 0xfffe), -1);
	assert_int_equal(port_vmm(t, 0xffff), 7);
	assert_int_equal(port_vmm(t, 0x501), -1);
	assert_int_equal(port_vmm(t, 0x502), 5);
	assert_int_equal(port_vmm(t, 0x503), 5);
	assert_int_equal(port_vmm(t, 0x504), -1);
	assert_int_equal(port_vmm(t, 0x7f), -1);
	assert_int_equal(port_vmm(t, 0x80), 2);
	assert_int_equal(port_vmm(t, 0x81), -1);
	assert_int_equal(t->routes[t->port[0x502]].spec.kind, ROUTE_HYPERCALL);
	route_table_free(t);
}

/* Fisher-Yates with a fixed LCG, so failures reproduce. */
static void shuffle(size_t *v, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = n - 1; i > 0; i--) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t j = (size_t)((x >> 33) % (i + 1));
		size_t tmp = v[i];
		v[i] = v[j];
		v[j] = tmp;
	}
}

static void test_mmio_lookup(void **state)
{
	(void)state;
	/* 200 ranges given in random order: the first at 0, the last ending at
	 * the top of the address space, sizes varying, gaps between them. */
	enum { NR = 200 };
	uint64_t lo[NR], hi[NR];
	for (size_t i = 0; i < NR; i++) {
		lo[i] = (uint64_t)i * 0x100000 + (i ? 0x1000 : 0);
		hi[i] = lo[i] + 0x1000 * (i % 7 + 1) - 1;
	}
	lo[NR - 1] = 0xfffffffffff00000ull;
	hi[NR - 1] = UINT64_MAX;
	size_t order[NR];
	for (size_t i = 0; i < NR; i++)
		order[i] = i;
	shuffle(order, NR);
	struct route_spec s[NR];
	for (size_t k = 0; k < NR; k++) {
		size_t i = order[k];
		char txt[96];
		struct errbuf e;
		snprintf(txt, sizeof(txt), "mmio:0x%llx-0x%llx=v%zu", (unsigned long long)lo[i],
			 (unsigned long long)hi[i], i % 60 + 1);
		if (route_spec_parse(txt, &s[k], &e))
			fail_msg("%s", e.msg);
	}
	struct errbuf e;
	struct route_table *t = route_table_build(s, NR, resolve, NULL, &e);
	if (t == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(t->nmmio, NR);
	for (size_t i = 1; i < NR; i++)
		assert_true(t->mmio[i - 1].hi < t->mmio[i].lo);
	for (size_t i = 0; i < NR; i++) {
		int v = (int)(i % 60 + 1);
		if (lo[i] > 0)
			assert_int_equal(mmio_vmm(t, lo[i] - 1), -1);
		assert_int_equal(mmio_vmm(t, lo[i]), v);
		assert_int_equal(mmio_vmm(t, lo[i] + (hi[i] - lo[i]) / 2), v);
		assert_int_equal(mmio_vmm(t, hi[i]), v);
		if (hi[i] < UINT64_MAX)
			assert_int_equal(mmio_vmm(t, hi[i] + 1), -1);
	}
	assert_int_equal(mmio_vmm(t, 0xfffffffffff00000ull - 1), -1);
	route_table_free(t);

	/* adjacent ranges */
	const char *adj[] = {"mmio:0x2000-0x2fff=y", "mmio:0x1000-0x1fff=x", "mmio:0x3000=blk"};
	t = build_ok(adj, 3);
	assert_int_equal(mmio_vmm(t, 0xfff), -1);
	assert_int_equal(mmio_vmm(t, 0x1000), 6);
	assert_int_equal(mmio_vmm(t, 0x1fff), 6);
	assert_int_equal(mmio_vmm(t, 0x2000), 7);
	assert_int_equal(mmio_vmm(t, 0x2fff), 7);
	assert_int_equal(mmio_vmm(t, 0x3000), 3);
	assert_int_equal(mmio_vmm(t, 0x3001), -1);
	route_table_free(t);
}

static void test_msr_lookup(void **state)
{
	(void)state;
	const char *specs[] = {"msr:0x40001000-0x400010ff=mon", "msr:0=x", "msr:0xffffffff=y",
			       "msr:0xc0000080=blk", "msr:0x10+0x10=uart"};
	struct route_table *t = build_ok(specs, N(specs));
	assert_int_equal(t->nmsr, 5);
	assert_int_equal(msr_vmm(t, 0x40000fff), -1);
	assert_int_equal(msr_vmm(t, 0x40001000), 2);
	assert_int_equal(msr_vmm(t, 0x400010ff), 2);
	assert_int_equal(msr_vmm(t, 0x40001100), -1);
	assert_int_equal(msr_vmm(t, 0), 6);
	assert_int_equal(msr_vmm(t, 1), -1);
	assert_int_equal(msr_vmm(t, 0xfffffffe), -1);
	assert_int_equal(msr_vmm(t, 0xffffffff), 7);
	assert_int_equal(msr_vmm(t, 0xc000007f), -1);
	assert_int_equal(msr_vmm(t, 0xc0000080), 3);
	assert_int_equal(msr_vmm(t, 0xc0000081), -1);
	assert_int_equal(msr_vmm(t, 0xf), -1);
	assert_int_equal(msr_vmm(t, 0x10), 1);
	assert_int_equal(msr_vmm(t, 0x1f), 1);
	assert_int_equal(msr_vmm(t, 0x20), -1);
	route_table_free(t);
}

static uint16_t ev_route(const struct route_table *t, uint16_t type, uint64_t key)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.key = key;
	return route_lookup_event(t, &ev);
}

static void test_event_lookup(void **state)
{
	(void)state;
	const char *specs[] = {"io:0x3f8-0x3ff=uart",	 "hypercall:2=console", "io:0x510=x",
			       "mmio:0x1000+0x1000=blk", "msr:0x10=mon",	"exception:bp=mon",
			       "platform:smi=smm",	 "request:exit=y",	"type:hlt=x"};
	struct route_table *t = build_ok(specs, N(specs));
	uint16_t none = ROUTE_NONE;
	assert_int_equal(ev_route(t, VMMUX_EV_IO, 0x3f8), t->port[0x3f8]);
	assert_int_equal(ev_route(t, VMMUX_EV_IO, 0x3f7), none);
	assert_int_equal(ev_route(t, VMMUX_EV_IO, 0x103f8), none);
	assert_int_equal(ev_route(t, VMMUX_EV_HYPERCALL, 2), t->port[0x502]);
	assert_int_equal(ev_route(t, VMMUX_EV_HYPERCALL, 3), none);
	assert_int_equal(ev_route(t, VMMUX_EV_HYPERCALL, 0x10), none); /* an io route's port */
	assert_int_equal(ev_route(t, VMMUX_EV_HYPERCALL, 0x102), none);
	assert_int_equal(ev_route(t, VMMUX_EV_MMIO, 0x1fff), t->mmio[0].route);
	assert_int_equal(ev_route(t, VMMUX_EV_MMIO, 0x2000), none);
	assert_int_equal(ev_route(t, VMMUX_EV_MSR, 0x10), t->msr[0].route);
	assert_int_equal(ev_route(t, VMMUX_EV_MSR, 0x100000010ull), none);
	assert_int_equal(ev_route(t, VMMUX_EV_EXCEPTION, 3), t->exception[3]);
	assert_int_equal(t->routes[t->exception[3]].vmm, 2);
	assert_int_equal(ev_route(t, VMMUX_EV_EXCEPTION, 1), none);
	assert_int_equal(ev_route(t, VMMUX_EV_EXCEPTION, 259), none);
	assert_int_equal(t->routes[ev_route(t, VMMUX_EV_PLATFORM, VMMUX_PLAT_SMI)].vmm, 4);
	assert_int_equal(ev_route(t, VMMUX_EV_PLATFORM, VMMUX_PLAT_RESET), none);
	assert_int_equal(ev_route(t, VMMUX_EV_PLATFORM, 99), none);
	assert_int_equal(t->routes[ev_route(t, VMMUX_EV_REQUEST, VMMUX_REQ_EXIT)].vmm, 7);
	assert_int_equal(ev_route(t, VMMUX_EV_REQUEST, 1), none);
	/* HLT, shutdown, irq, fault have no keyed routes; type: is the default */
	assert_int_equal(ev_route(t, VMMUX_EV_HLT, 0), none);
	assert_int_equal(ev_route(t, VMMUX_EV_SHUTDOWN, 0), none);
	assert_int_equal(ev_route(t, VMMUX_EV_IRQ, 4), none);
	assert_int_equal(ev_route(t, VMMUX_EV_FAULT, 1), none);
	assert_int_equal(ev_route(t, 77, 1), none);
	route_table_free(t);
}

/* Check OUT[0..n) against the table's MSR routes: sorted, disjoint, each at
 * most 0x3000 MSRs, every routed MSR covered. */
static void check_msr_cover(const struct route_table *t, const struct route_range *out, int n)
{
	for (int i = 0; i < n; i++) {
		assert_true(out[i].lo <= out[i].hi);
		assert_true(out[i].hi - out[i].lo < 0x3000);
		assert_int_equal(out[i].route, ROUTE_NONE);
		if (i > 0)
			assert_true(out[i - 1].hi < out[i].lo);
	}
	for (size_t r = 0; r < t->nmsr; r++) {
		/* every MSR of the route lies in some range: walk the ranges */
		uint64_t m = t->msr[r].lo;
		while (m <= t->msr[r].hi) {
			int k = 0;
			while (k < n && !(out[k].lo <= m && m <= out[k].hi))
				k++;
			if (k == n)
				fail_msg("MSR 0x%llx not covered", (unsigned long long)m);
			m = out[k].hi + 1;
		}
	}
}

static struct route_table *msr_table(const uint64_t (*r)[2], size_t n)
{
	struct route_spec *s = calloc(n ? n : 1, sizeof(*s));
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		char txt[96];
		struct errbuf e;
		snprintf(txt, sizeof(txt), "msr:0x%llx-0x%llx=mon", (unsigned long long)r[i][0],
			 (unsigned long long)r[i][1]);
		if (route_spec_parse(txt, &s[i], &e))
			fail_msg("%s", e.msg);
	}
	struct errbuf e;
	struct route_table *t = route_table_build(s, n, resolve, NULL, &e);
	free(s);
	if (t == NULL)
		fail_msg("%s", e.msg);
	return t;
}

static void test_msr_ranges(void **state)
{
	(void)state;
	struct route_range out[16];
	struct errbuf e;

	/* none */
	struct route_table *t = msr_table(NULL, 0);
	assert_int_equal(route_table_msr_ranges(t, out, 16, &e), 0);
	route_table_free(t);

	/* few: kept as they are */
	const uint64_t few[][2] = {
	    {0x10, 0x10}, {0xc0000080, 0xc0000084}, {0x40001000, 0x400010ff}};
	t = msr_table(few, 3);
	assert_int_equal(route_table_msr_ranges(t, out, 16, &e), 3);
	assert_true(out[0].lo == 0x10 && out[0].hi == 0x10);
	assert_true(out[1].lo == 0x40001000 && out[1].hi == 0x400010ff);
	assert_true(out[2].lo == 0xc0000080 && out[2].hi == 0xc0000084);
	check_msr_cover(t, out, 3);
	route_table_free(t);

	/* 17 routes 0x100 apart, except one pair 2 apart: the nearest pair
	 * merges, the rest stay */
	uint64_t r17[17][2];
	for (int i = 0; i < 17; i++)
		r17[i][0] = r17[i][1] = 0x1000 + (uint64_t)i * 0x100;
	r17[9][0] = r17[9][1] = r17[8][0] + 2;
	t = msr_table(r17, 17);
	assert_int_equal(route_table_msr_ranges(t, out, 16, &e), 16);
	check_msr_cover(t, out, 16);
	assert_true(out[8].lo == r17[8][0] && out[8].hi == r17[9][0]);
	for (int i = 0; i < 8; i++)
		assert_true(out[i].lo == r17[i][0] && out[i].hi == r17[i][0]);
	route_table_free(t);

	/* 40 routes spread over 0x20000 MSRs: merged into 16 */
	uint64_t r40[40][2];
	for (int i = 0; i < 40; i++) {
		r40[i][0] = 0x100000 + (uint64_t)i * 0xc00 + (uint64_t)(i % 3) * 0x10;
		r40[i][1] = r40[i][0] + (uint64_t)(i % 5);
	}
	t = msr_table(r40, 40);
	int n = route_table_msr_ranges(t, out, 16, &e);
	assert_true(n > 0 && n <= 16);
	check_msr_cover(t, out, n);
	route_table_free(t);

	/* impossible: 17 routes 0x10000 apart */
	uint64_t far[17][2];
	for (int i = 0; i < 17; i++)
		far[i][0] = far[i][1] = (uint64_t)i * 0x10000;
	t = msr_table(far, 17);
	assert_int_equal(route_table_msr_ranges(t, out, 16, &e), -1);
	assert_string_equal(e.msg, "the MSR routes do not fit KVM's MSR filter: they need more "
				   "than 16 ranges of at most 0x3000 MSRs each");
	assert_int_equal(route_table_msr_ranges(t, out, 0, &e), -1);
	route_table_free(t);

	/* one route wider than a filter range: split */
	const uint64_t wide[][2] = {{0x1000, 0x9fff}};
	t = msr_table(wide, 1);
	assert_int_equal(route_table_msr_ranges(t, out, 16, &e), 3);
	assert_true(out[0].lo == 0x1000 && out[0].hi == 0x3fff);
	assert_true(out[1].lo == 0x4000 && out[1].hi == 0x6fff);
	assert_true(out[2].lo == 0x7000 && out[2].hi == 0x9fff);
	check_msr_cover(t, out, 3);
	assert_int_equal(route_table_msr_ranges(t, out, 2, &e), -1);
	route_table_free(t);

	/* 2.6 billion MSRs cannot be filtered */
	const uint64_t all[][2] = {{0x50000000, 0xffffffff}};
	t = msr_table(all, 1);
	assert_int_equal(route_table_msr_ranges(t, out, 16, &e), -1);
	route_table_free(t);

	/* nearest-first gets stuck (the close middle pair blocks both ends),
	 * yet two ranges suffice: [0, 0x2fff] and [0x3001, 0x6000] */
	const uint64_t stuck[][2] = {{0, 0}, {0x2fff, 0x2fff}, {0x3001, 0x3001}, {0x6000, 0x6000}};
	t = msr_table(stuck, 4);
	assert_int_equal(route_table_msr_ranges(t, out, 2, &e), 2);
	check_msr_cover(t, out, 2);
	assert_int_equal(route_table_msr_ranges(t, out, 1, &e), -1);
	route_table_free(t);
}

static void test_dump(void **state)
{
	(void)state;
	const char *specs[] = {"msr:0x10=mon",
			       "io:0x3f8-0x3ff=uart;posted;fallback=main",
			       "type:hlt=x;timeout=5ms",
			       "io:0x80=v9",
			       "hypercall:2=console",
			       "mmio:0x1000=blk",
			       "io:0x90=group(weighted:uart*2,v9,mon);fallback=main"};
	struct route_table *t = build_ok(specs, N(specs));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	route_table_dump(f, t, vmm_name, NULL);
	fclose(f);
	/* one line per route */
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	assert_int_equal(lines, t->nroutes);
	/* key order, explicit before implicit type routes */
	const char *order[] = {"io:0x80=v9",	      "io:0x3f8-0x3ff=uart;posted;fallback=main",
			       "mmio:0x1000=blk",     "msr:0x10=mon",
			       "hypercall:2=console", "type:hlt=x;timeout=5ms",
			       "type:io=main",	      "type:fault=main"};
	const char *prev = buf;
	for (size_t i = 0; i < N(order); i++) {
		const char *p = strstr(prev, order[i]);
		if (p == NULL)
			fail_msg("'%s' missing or out of order in:\n%s", order[i], buf);
		prev = p;
	}
	const char *line = strstr(buf, "io:0x3f8-0x3ff=uart");
	const char *eol = strchr(line, '\n');
	char l[256];
	snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
	assert_non_null(strstr(l, " uart "));
	assert_non_null(strstr(l, "posted"));
	assert_non_null(strstr(l, "fallback=main"));
	line = strstr(buf, "io:0x80=v9");
	eol = strchr(line, '\n');
	snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
	assert_non_null(strstr(l, "#9")); /* unknown name: the id */
	/* a group: its members' names (or ids) */
	line = strstr(buf, "io:0x90=group(weighted:uart*2,v9,mon);fallback=main");
	assert_non_null(line);
	eol = strchr(line, '\n');
	snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
	assert_non_null(strstr(l, " uart,#9,mon "));
	assert_non_null(strstr(l, "fallback=main"));
	line = strstr(buf, "type:shutdown=main");
	eol = strchr(line, '\n');
	snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
	assert_non_null(strstr(l, "default"));
	line = strstr(buf, "type:hlt=x");
	eol = strchr(line, '\n');
	snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
	assert_non_null(strstr(l, "timeout=5ms"));
	assert_null(strstr(l, "default"));
	free(buf);
	route_table_free(t);
}

/* Compiled groups: member ids and weights in order, the route's VMM
 * VMM_ID_GROUP, the group on type and sourced routes too. */
static void test_groups(void **state)
{
	(void)state;
	const char *specs[] = {
	    "io:0x90=group(least-loaded:uart,mon,blk)", "io:0x91=group(weighted:x*5,y*1,v9*1)",
	    "mmio:0xd0000000+0x1000=group(sticky:mon,uart);fallback=main",
	    "type:hlt=group(round-robin:x,y)", "type:irq=group(round-robin:mon,blk);from=uart"};
	struct route_table *t = build_ok(specs, N(specs));
	const struct route *r = &t->routes[t->port[0x90]];
	assert_int_equal(r->vmm, VMM_ID_GROUP);
	assert_non_null(r->group);
	assert_int_equal(r->group->policy, ROUTE_POLICY_LEAST_LOADED);
	assert_int_equal(r->group->n, 3);
	assert_int_equal(r->group->member[0], 1);
	assert_int_equal(r->group->member[1], 2);
	assert_int_equal(r->group->member[2], 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(r->group->weight[i], 1);
	assert_null(r->group->seq);
	assert_true(r->group->next == 0);
	assert_int_equal((uintptr_t)&r->group->next % 64, 0); /* its own cache line */
	assert_string_equal(r->spec.text, "io:0x90=group(least-loaded:uart,mon,blk)");

	r = &t->routes[t->port[0x91]];
	assert_int_equal(r->group->policy, ROUTE_POLICY_WEIGHTED);
	assert_int_equal(r->group->member[2], 9);
	assert_int_equal(r->group->weight[0], 5);
	/* nginx's example: weights 5, 1, 1 give a a b a c a a */
	static const uint8_t swrr511[] = {0, 0, 1, 0, 2, 0, 0};
	assert_int_equal(r->group->nseq, 7);
	assert_memory_equal(r->group->seq, swrr511, 7);

	r = &t->routes[route_lookup_mmio(t, 0xd0000800)];
	assert_int_equal(r->vmm, VMM_ID_GROUP);
	assert_int_equal(r->group->policy, ROUTE_POLICY_STICKY);
	assert_int_equal(r->fallback, VMM_ID_MAIN);

	r = &t->routes[t->type_route[VMMUX_EV_HLT]];
	assert_int_equal(t->type_default[VMMUX_EV_HLT], VMM_ID_GROUP);
	assert_int_equal(r->group->policy, ROUTE_POLICY_ROUND_ROBIN);
	assert_int_equal(r->group->member[0], 6);
	assert_int_equal(r->group->member[1], 7);

	assert_int_equal(t->nsourced, 1);
	r = &t->routes[t->sourced[0]];
	assert_int_equal(r->vmm, VMM_ID_GROUP);
	assert_int_equal(r->from, 1);
	assert_int_equal(r->group->member[1], 3);

	/* single-VMM routes have no group */
	assert_null(t->routes[t->type_route[VMMUX_EV_IO]].group);
	route_table_free(t);

	/* errors name the member at fault; nothing leaks (ASan) */
	const char *a[] = {"io:0x90=group(least-loaded:uart,nosuch,mon)"};
	build_fails(a, 1,
		    "route 'io:0x90=group(least-loaded:uart,nosuch,mon)': no VMM named 'nosuch' "
		    "(a member of its group)");
	const char *b[] = {"io:0x90=group(round-robin:uart,v1)"};
	build_fails(b, 1,
		    "route 'io:0x90=group(round-robin:uart,v1)': members 'uart' and 'v1' of its "
		    "group are the same VMM");
	const char *c[] = {"io:0x90=group(round-robin:uart,mon);fallback=v2"};
	build_fails(c, 1,
		    "route 'io:0x90=group(round-robin:uart,mon);fallback=v2': its fallback 'v2' "
		    "is a member of its group");
	const char *d[] = {"type:irq=group(round-robin:uart,mon);from=v1"};
	build_fails(d, 1,
		    "route 'type:irq=group(round-robin:uart,mon);from=v1': its source 'v1' is a "
		    "member of its group");
	const char *f[] = {"io:0x90=group(weighted:uart*2,v64)"};
	build_fails(f, 1,
		    "route 'io:0x90=group(weighted:uart*2,v64)': VMM 'v64' has id 64, beyond the "
		    "limit 63");
	/* a group route overlaps like any other */
	const char *g[] = {"io:0x90-0x9f=group(sticky:uart,mon)", "io:0x98=blk"};
	build_fails(g, 2,
		    "route 'io:0x98=blk' overlaps route 'io:0x90-0x9f=group(sticky:uart,mon)' at "
		    "port 0x98");
	/* a failure after a group was compiled frees it */
	const char *h[] = {"io:0x90=group(weighted:uart*7,mon*3)",
			   "io:0x91=group(weighted:uart*7,mon*3);fallback=nosuch"};
	build_fails(h, 2,
		    "route 'io:0x91=group(weighted:uart*7,mon*3);fallback=nosuch': no VMM named "
		    "'nosuch' (its fallback)");
}

/* The smooth weighted round-robin sequence and its period. */
static void test_swrr(void **state)
{
	(void)state;
	uint8_t seq[16 * 1000];
	/* 3, 1: the current weights go (3,1) a (-1,1) (2,2) a (-2,2) (1,3) b
	 * (1,-1) (4,0) a (0,0) */
	static const uint16_t w31[] = {3, 1};
	static const uint8_t s31[] = {0, 0, 1, 0};
	assert_int_equal(route_group_swrr(w31, 2, seq), 4);
	assert_memory_equal(seq, s31, 4);
	/* dividing by the gcd changes nothing */
	static const uint16_t w300[] = {300, 100};
	assert_int_equal(route_group_period(w300, 2), 4);
	assert_int_equal(route_group_swrr(w300, 2, seq), 4);
	assert_memory_equal(seq, s31, 4);
	/* equal weights: plain round-robin */
	static const uint16_t w111[] = {7, 7, 7};
	static const uint8_t s111[] = {0, 1, 2};
	assert_int_equal(route_group_swrr(w111, 3, seq), 3);
	assert_memory_equal(seq, s111, 3);
	/* 1, 2, 3: c b a c b c (current weights by hand) */
	static const uint16_t w123[] = {1, 2, 3};
	static const uint8_t s123[] = {2, 1, 0, 2, 1, 2};
	assert_int_equal(route_group_swrr(w123, 3, seq), 6);
	assert_memory_equal(seq, s123, 6);

	/* every member gets exactly its reduced weight per period, and on any
	 * prefix stays within two turns of its share (smooth: for these weights
	 * the largest gap is 1.08 turns; plain weighted round-robin would give
	 * member 0 its 1000 turns in a row, hundreds ahead) */
	static const uint16_t wm[] = {1000, 999, 1,  500, 3, 250, 17, 1000,
				      2,    64,	 77, 5,	  9, 999, 1,  333};
	uint32_t period = route_group_period(wm, 16);
	uint32_t sum = 0;
	for (unsigned i = 0; i < 16; i++)
		sum += wm[i];
	assert_int_equal(period, sum); /* gcd 1 */
	assert_int_equal(route_group_swrr(wm, 16, seq), period);
	uint32_t count[16] = {0};
	for (uint32_t k = 0; k < period; k++) {
		assert_true(seq[k] < 16);
		count[seq[k]]++;
		for (unsigned i = 0; i < 16; i++) {
			/* share of i after k+1 turns: (k+1) * w / sum */
			int64_t dev = (int64_t)count[i] * sum - (int64_t)(k + 1) * wm[i];
			if (dev <= -2 * (int64_t)sum || dev >= 2 * (int64_t)sum)
				fail_msg("member %u: %u turns after %u, share %.2f", i, count[i],
					 k + 1, (double)(k + 1) * wm[i] / sum);
		}
	}
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(count[i], wm[i]);
	static const uint16_t w16[] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000,
				       1000, 1000, 1000, 1000, 1000, 1000, 1000, 999};
	assert_int_equal(route_group_period(w16, 16), 15999);

	/* refused inputs */
	static const uint16_t w0[] = {3, 0};
	assert_int_equal(route_group_period(w0, 2), 0);
	assert_int_equal(route_group_swrr(w0, 2, seq), 0);
	assert_int_equal(route_group_period(w31, 0), 0);
	assert_int_equal(route_group_period(wm, 17), 0);
	assert_int_equal(route_group_period(NULL, 2), 0);
	assert_int_equal(route_group_swrr(w31, 2, NULL), 0);
}

/* Groups in specs built by hand are checked like parsed ones. */
static void test_hand_built_groups(void **state)
{
	(void)state;
	struct errbuf e;
	struct route_spec s;
	memset(&s, 0, sizeof(s));
	s.kind = ROUTE_IO;
	s.lo = s.hi = 0x90;
	s.group.policy = ROUTE_POLICY_WEIGHTED;
	s.group.n = 2;
	strcpy(s.group.member[0], "mon");
	strcpy(s.group.member[1], "uart");
	s.group.weight[0] = 2;
	s.group.weight[1] = 1;
	/* no vmm field: the first member's name is taken */
	struct route_table *t = route_table_build(&s, 1, resolve, NULL, &e);
	if (t == NULL)
		fail_msg("%s", e.msg);
	const struct route *r = &t->routes[t->port[0x90]];
	assert_string_equal(r->spec.text, "io:0x90=group(weighted:mon*2,uart)");
	assert_string_equal(r->spec.vmm, "mon");
	assert_int_equal(r->group->nseq, 3);
	route_table_free(t);

	s.group.weight[1] = 0;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg,
			    "route of kind io: group member 'uart' has weight 0 (1 to 1000)");
	s.group.weight[1] = 1001;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg,
			    "route of kind io: group member 'uart' has weight 1001 (1 to 1000)");
	s.group.weight[1] = 1;
	s.group.policy = ROUTE_POLICY_STICKY;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg,
			    "route of kind io: group member 'mon' has a weight, but only the "
			    "weighted policy takes weights");
	s.group.weight[0] = 1;
	s.group.policy = (enum route_policy)7;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route of kind io: a group of unknown policy 7");
	s.group.policy = ROUTE_POLICY_STICKY;
	s.group.n = 17;
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route of kind io: a group of 17 members (at most 16)");
	s.group.n = 2;
	strcpy(s.group.member[1], "mon");
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route of kind io: 'mon' is a member of its group twice");
	memset(s.group.member[1], 'a', sizeof(s.group.member[1])); /* not terminated */
	assert_null(route_table_build(&s, 1, resolve, NULL, &e));
	assert_string_equal(e.msg, "route of kind io: invalid name of group member 2");
	/* n == 0: a single VMM; stale group fields are cleared */
	s.group.n = 0;
	strcpy(s.vmm, "blk");
	t = route_table_build(&s, 1, resolve, NULL, &e);
	assert_non_null(t);
	r = &t->routes[t->port[0x90]];
	assert_null(r->group);
	assert_int_equal(r->vmm, 3);
	assert_string_equal(r->spec.text, "io:0x90=blk");
	assert_int_equal(r->spec.group.policy, 0);
	assert_int_equal(r->spec.group.member[1][0], '\0');
	route_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_implicit_types),
	    cmocka_unit_test(test_type_routes),
	    cmocka_unit_test(test_overlaps),
	    cmocka_unit_test(test_vmm_names),
	    cmocka_unit_test(test_hand_built_specs),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_port_lookup),
	    cmocka_unit_test(test_mmio_lookup),
	    cmocka_unit_test(test_msr_kvm_own_refused),
	    cmocka_unit_test(test_sourced_overlaps),
	    cmocka_unit_test(test_msr_lookup),
	    cmocka_unit_test(test_event_lookup),
	    cmocka_unit_test(test_msr_ranges),
	    cmocka_unit_test(test_dump),
	    cmocka_unit_test(test_groups),
	    cmocka_unit_test(test_swrr),
	    cmocka_unit_test(test_hand_built_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
