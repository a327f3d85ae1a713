/*
 * Unit tests of the router: the routing decision (hypercall retyping, type
 * defaults and type: routes, routes keyed by source and the copies VMMs
 * hand on, which travel only by those), publishing (generations, statistics carried
 * over), and concurrent readers against a writer that publishes a thousand
 * tables (no torn table, generations never go backwards; under ASan a table
 * freed too early shows as a use-after-free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <time.h>

#include "route/router.h"
#include "stats/stats.h"

static const char *const vmm_names[] = {"main", "uart", "mon", "console", "x", "y"};
#define NVMMS (sizeof(vmm_names) / sizeof(vmm_names[0]))
enum { UART = 1, MON, CONSOLE, X, Y };

/* Names above, and "vN" for id N. */
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

static struct route_table *build(const char *const *specs, size_t n)
{
	struct route_spec *s = calloc(n ? n : 1, sizeof(*s));
	struct errbuf e = {{0}};
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (route_spec_parse(specs[i], &s[i], &e)) {
			fprintf(stderr, "%s\n", e.msg);
			free(s);
			return NULL;
		}
	struct route_table *t = route_table_build(s, n, resolve, NULL, &e);
	if (t == NULL)
		fprintf(stderr, "%s\n", e.msg);
	free(s);
	return t;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct vmmux_event io_ev(uint16_t port, uint8_t size, bool write, bool string)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_IO;
	ev.key = port;
	ev.size = size;
	ev.count = 1;
	ev.flags = (uint16_t)((write ? VMMUX_EVF_WRITE : 0) | (string ? VMMUX_EVF_STRING : 0));
	ev.value = 0x12345678;
	return ev;
}

static int teardown(void **state)
{
	(void)state;
	router_fini();
	stats_fini();
	return 0;
}

static const char *const resolve_specs[] = {
    "io:0x3f8-0x3ff=uart", "hypercall:2=console",  "io:0x520=x",
    "type:hlt=mon",	   "mmio:0x1000+0x1000=y", "msr:0x10=mon",
    "exception:bp=mon",	   "platform:smi=x",	   "request:exit=y",
};

static void test_hypercall_retyping(void **state)
{
	(void)state;
	struct route_table *t = build(resolve_specs, N(resolve_specs));
	assert_non_null(t);
	router_init(t);
	const struct route_table *c = router_current();
	assert_ptr_equal(c, t);
	struct route_target rt;
	struct vmmux_event ev;

	/* 32-bit OUT to a hypercall route's port: a hypercall */
	ev = io_ev(0x502, 4, true, false);
	rt = router_resolve(c, &ev);
	assert_int_equal(ev.type, VMMUX_EV_HYPERCALL);
	assert_true(ev.key == 2);
	assert_true(ev.value == 0x12345678);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0);
	assert_int_equal(rt.vmm, CONSOLE);
	assert_ptr_equal(rt.r, &c->routes[rt.route]);
	assert_string_equal(rt.r->spec.text, "hypercall:2=console");
	assert_true(rt.generation == c->generation);

	/* IN, 8-bit OUT, 16-bit OUT and OUTS to that port: IO events for the
	 * route's VMM */
	struct vmmux_event stay[] = {io_ev(0x502, 4, false, false), io_ev(0x502, 1, true, false),
				     io_ev(0x502, 2, true, false), io_ev(0x502, 4, true, true)};
	for (size_t i = 0; i < N(stay); i++) {
		rt = router_resolve(c, &stay[i]);
		assert_int_equal(stay[i].type, VMMUX_EV_IO);
		assert_true(stay[i].key == 0x502);
		assert_int_equal(stay[i].flags & VMMUX_EVF_UNROUTED, 0);
		assert_int_equal(rt.vmm, CONSOLE);
		assert_string_equal(rt.r->spec.text, "hypercall:2=console");
	}

	/* 32-bit OUT to an unrouted port in 0x500-0x5ff: a hypercall, by type
	 * default */
	ev = io_ev(0x510, 4, true, false);
	rt = router_resolve(c, &ev);
	assert_int_equal(ev.type, VMMUX_EV_HYPERCALL);
	assert_true(ev.key == 0x10);
	assert_true(ev.flags & VMMUX_EVF_UNROUTED);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_int_equal(rt.route, c->type_route[VMMUX_EV_HYPERCALL]);
	assert_string_equal(rt.r->spec.text, "type:hypercall=main");
	ev = io_ev(0x5ff, 4, true, false);
	router_resolve(c, &ev);
	assert_int_equal(ev.type, VMMUX_EV_HYPERCALL);
	assert_true(ev.key == 0xff);
	ev = io_ev(0x500, 4, true, false);
	router_resolve(c, &ev);
	assert_int_equal(ev.type, VMMUX_EV_HYPERCALL);
	assert_true(ev.key == 0);

	/* a 32-bit OUT to an io route's port inside 0x500-0x5ff stays IO */
	ev = io_ev(0x520, 4, true, false);
	rt = router_resolve(c, &ev);
	assert_int_equal(ev.type, VMMUX_EV_IO);
	assert_true(ev.key == 0x520);
	assert_int_equal(rt.vmm, X);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0);

	/* unrouted non-qualifying accesses in the window, and OUTs outside it */
	struct vmmux_event io[] = {io_ev(0x510, 4, false, false), io_ev(0x510, 1, true, false),
				   io_ev(0x510, 4, true, true), io_ev(0x4ff, 4, true, false),
				   io_ev(0x600, 4, true, false)};
	for (size_t i = 0; i < N(io); i++) {
		uint64_t port = io[i].key;
		rt = router_resolve(c, &io[i]);
		assert_int_equal(io[i].type, VMMUX_EV_IO);
		assert_true(io[i].key == port);
		assert_true(io[i].flags & VMMUX_EVF_UNROUTED);
		assert_int_equal(rt.vmm, VMM_ID_MAIN);
		assert_string_equal(rt.r->spec.text, "type:io=main");
	}
}

static void test_keyed_and_defaults(void **state)
{
	(void)state;
	struct route_table *t = build(resolve_specs, N(resolve_specs));
	assert_non_null(t);
	router_init(t);
	const struct route_table *c = router_current();
	struct route_target rt;
	struct vmmux_event ev;

	ev = io_ev(0x3fd, 1, false, false);
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, UART);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0);
	assert_int_equal(ev.type, VMMUX_EV_IO);

	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_MMIO;
	ev.key = 0x1ffc;
	ev.size = 4;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, Y);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0);
	ev.key = 0x2000;
	ev.flags = 0;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_true(ev.flags & VMMUX_EVF_UNROUTED);
	assert_string_equal(rt.r->spec.text, "type:mmio=main");

	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_MSR;
	ev.key = 0x10;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, MON);
	ev.key = 0x11;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_true(ev.flags & VMMUX_EVF_UNROUTED);

	/* HLT has a type: route: its VMM, and a route names it: not unrouted */
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_HLT;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, MON);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0);
	assert_string_equal(rt.r->spec.text, "type:hlt=mon");
	assert_int_equal(rt.route, c->type_route[VMMUX_EV_HLT]);

	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_EXCEPTION;
	ev.key = VMMUX_VEC_BP;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, MON);
	ev.key = VMMUX_VEC_DB;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_string_equal(rt.r->spec.text, "type:exception=main");

	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_PLATFORM;
	ev.key = VMMUX_PLAT_SMI;
	assert_int_equal(router_resolve(c, &ev).vmm, X);
	ev.key = VMMUX_PLAT_RESET;
	assert_int_equal(router_resolve(c, &ev).vmm, VMM_ID_MAIN);

	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_REQUEST;
	ev.key = VMMUX_REQ_EXIT;
	assert_int_equal(router_resolve(c, &ev).vmm, Y);

	/* a raised hypercall event: its route, not the io route on its port */
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_HYPERCALL;
	ev.key = 2;
	assert_int_equal(router_resolve(c, &ev).vmm, CONSOLE);
	ev.key = 0x20;
	ev.flags = 0;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_true(ev.flags & VMMUX_EVF_UNROUTED);

	/* every type without keys: its implicit route */
	unsigned plain[] = {VMMUX_EV_SHUTDOWN, VMMUX_EV_IRQ, VMMUX_EV_FAULT};
	for (size_t i = 0; i < N(plain); i++) {
		memset(&ev, 0, sizeof(ev));
		ev.type = (uint16_t)plain[i];
		rt = router_resolve(c, &ev);
		assert_int_equal(rt.vmm, VMM_ID_MAIN);
		assert_int_equal(rt.route, c->type_route[plain[i]]);
		assert_true(rt.r->flags & ROUTE_FLAG_IMPLICIT);
	}

	/* an event of no known type still gets a route */
	memset(&ev, 0, sizeof(ev));
	ev.type = 999;
	rt = router_resolve(c, &ev);
	assert_non_null(rt.r);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_true(ev.flags & VMMUX_EVF_UNROUTED);
}

/* Routes keyed by source: events a VMM raises, and events it hands on. */
static void test_sourced_routes(void **state)
{
	(void)state;
	const char *specs[] = {"platform:reset=main",	"platform:reset=mon;from=uart",
			       "io:0x3f8-0x3ff=uart",	"io:0x3f8-0x3ff=console;from=uart",
			       "type:mmio=x;from=uart", "mmio:0x1000+0x1000=y;from=uart"};
	struct route_table *t = build(specs, N(specs));
	assert_non_null(t);
	router_init(t);
	const struct route_table *c = router_current();
	assert_int_equal(c->nsourced, 4);

	/* a reset raised by uart goes to mon; by another VMM, to main */
	struct vmmux_event ev = {.type = VMMUX_EV_PLATFORM,
				 .key = VMMUX_PLAT_RESET,
				 .src_kind = VMMUX_SRC_VMM,
				 .src_id = UART};
	assert_int_equal(router_resolve(c, &ev).vmm, MON);
	ev.src_id = CONSOLE;
	assert_int_equal(router_resolve(c, &ev).vmm, VMM_ID_MAIN);
	ev.src_kind = VMMUX_SRC_VCPU;
	ev.src_id = UART; /* vCPU 1: not the VMM with id 1 */
	assert_int_equal(router_resolve(c, &ev).vmm, VMM_ID_MAIN);

	/* uart hands its port writes on: to console; a vCPU's go to uart */
	struct vmmux_event io = io_ev(0x3f8, 1, true, false);
	assert_int_equal(router_resolve(c, &io).vmm, UART);
	io = io_ev(0x3f8, 1, true, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = UART;
	struct route_target rt = router_resolve(c, &io);
	assert_int_equal(rt.vmm, CONSOLE);
	assert_string_equal(rt.r->spec.text, "io:0x3f8-0x3ff=console;from=uart");

	/* a keyed from= route beats the type: one of the same source */
	struct vmmux_event mm = {
	    .type = VMMUX_EV_MMIO, .key = 0x1800, .src_kind = VMMUX_SRC_VMM, .src_id = UART};
	assert_int_equal(router_resolve(c, &mm).vmm, Y);
	mm.key = 0x5000;
	assert_int_equal(router_resolve(c, &mm).vmm, X);

	/* handed on with no route of its source: a copy travels only by
	 * from= routes, so not to the device VMM that the plain route names
	 * (a copy made up to look like the guest's would reach it), but to
	 * the main VMM, unrouted */
	io = io_ev(0x3f8, 1, true, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = MON;
	rt = router_resolve(c, &io);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_true(io.flags & VMMUX_EVF_UNROUTED);
	assert_int_equal(rt.exclude, VMM_ID_NONE);
	/* every device type alike; a hypercall port is not retyped */
	for (unsigned ty = VMMUX_EV_IO; ty <= VMMUX_EV_SHUTDOWN; ty++) {
		if (ty == VMMUX_EV_EXCEPTION)
			continue;
		struct vmmux_event d = {.type = (uint16_t)ty,
					.key = ty == VMMUX_EV_IO ? 0x3f8 : 0x1800,
					.size = 1,
					.count = 1,
					.src_kind = VMMUX_SRC_VMM,
					.src_id = CONSOLE};
		assert_int_equal(router_resolve(c, &d).vmm, VMM_ID_MAIN);
		assert_true(d.flags & VMMUX_EVF_UNROUTED);
	}
	io = io_ev(0x502, 4, true, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = MON;
	assert_int_equal(router_resolve(c, &io).vmm, VMM_ID_MAIN);
	assert_int_equal(io.type, VMMUX_EV_IO);
	/* the same copy from uart, whose from= routes take it */
	io = io_ev(0x3f9, 1, true, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = UART;
	assert_int_equal(router_resolve(c, &io).vmm, CONSOLE);
	assert_int_equal(io.flags & VMMUX_EVF_UNROUTED, 0);
	const char *loop[] = {"io:0x80=mon"};
	struct route_table *t2 = build(loop, N(loop));
	router_publish(t2);
	c = router_current();
	io = io_ev(0x80, 1, true, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = MON;
	rt = router_resolve(c, &io);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_true(io.flags & VMMUX_EVF_UNROUTED);
	/* ... but a platform event may return to its raiser (an SMI handler
	 * that decodes its port and services the SMI itself) */
	const char *smi[] = {"platform:smi=mon"};
	router_publish(build(smi, N(smi)));
	c = router_current();
	ev = (struct vmmux_event){.type = VMMUX_EV_PLATFORM,
				  .key = VMMUX_PLAT_SMI,
				  .src_kind = VMMUX_SRC_VMM,
				  .src_id = MON};
	assert_int_equal(router_resolve(c, &ev).vmm, MON);
}

/* A group route leaves the VMM to the group's policy (VMM_ID_GROUP) and
 * tells it which member an event handed on must not return to. */
static void test_group_routes(void **state)
{
	(void)state;
	const char *specs[] = {"io:0x90-0x91=group(least-loaded:uart,mon,x)",
			       "type:irq=group(sticky:mon,x)",
			       "platform:reset=group(sticky:x,y);from=uart"};
	struct route_table *t = build(specs, N(specs));
	assert_non_null(t);
	router_init(t);
	const struct route_table *c = router_current();

	/* from a vCPU: nothing excluded */
	struct vmmux_event io = io_ev(0x90, 4, true, false);
	io.src_kind = VMMUX_SRC_VCPU;
	struct route_target rt = router_resolve(c, &io);
	assert_int_equal(rt.vmm, VMM_ID_GROUP);
	assert_int_equal(rt.exclude, VMM_ID_NONE);
	assert_non_null(rt.r->group);
	assert_string_equal(rt.r->spec.text, "io:0x90-0x91=group(least-loaded:uart,mon,x)");
	assert_int_equal(io.flags & VMMUX_EVF_UNROUTED, 0);

	/* handed on by a member: a copy does not travel by a route without
	 * from=, the group's included: the main VMM, unrouted */
	io = io_ev(0x91, 1, false, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = MON;
	rt = router_resolve(c, &io);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_int_equal(rt.exclude, VMM_ID_NONE);
	assert_true(io.flags & VMMUX_EVF_UNROUTED);

	/* an interrupt request is not a device event: nothing excluded */
	struct vmmux_event irq = {
	    .type = VMMUX_EV_IRQ, .key = 4, .src_kind = VMMUX_SRC_VMM, .src_id = MON};
	rt = router_resolve(c, &irq);
	assert_int_equal(rt.vmm, VMM_ID_GROUP);
	assert_int_equal(rt.exclude, VMM_ID_NONE);
	assert_int_equal(rt.r->group->policy, ROUTE_POLICY_STICKY);

	/* a sourced group route */
	struct vmmux_event ev = {.type = VMMUX_EV_PLATFORM,
				 .key = VMMUX_PLAT_RESET,
				 .src_kind = VMMUX_SRC_VMM,
				 .src_id = UART};
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, VMM_ID_GROUP);
	assert_int_equal(rt.exclude, VMM_ID_NONE);
	assert_int_equal(rt.r->group->member[1], Y);
	ev.src_id = CONSOLE;
	rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, VMM_ID_MAIN);
	assert_null(rt.r->group);

	/* a copy on a from= route to a group: the group's policy picks, with
	 * the source excluded (never one of its members: spec.c) */
	const char *fwd[] = {"io:0x90-0x91=uart",
			     "io:0x90-0x91=group(round-robin:mon,x);from=uart"};
	router_publish(build(fwd, N(fwd)));
	c = router_current();
	io = io_ev(0x90, 1, true, false);
	io.src_kind = VMMUX_SRC_VMM;
	io.src_id = UART;
	rt = router_resolve(c, &io);
	assert_int_equal(rt.vmm, VMM_ID_GROUP);
	assert_int_equal(rt.exclude, UART);
	assert_int_equal(io.flags & VMMUX_EVF_UNROUTED, 0);
}

static void test_type_route_defaults(void **state)
{
	(void)state;
	const char *specs[] = {"type:io-mmio=x", "type:hypercall=console", "io:0x60=uart"};
	struct route_table *t = build(specs, N(specs));
	assert_non_null(t);
	router_init(t);
	const struct route_table *c = router_current();
	struct vmmux_event ev = io_ev(0x61, 1, true, false);
	struct route_target rt = router_resolve(c, &ev);
	assert_int_equal(rt.vmm, X);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0); /* a type: route names it */
	assert_string_equal(rt.r->spec.text, "type:io-mmio=x");
	ev = io_ev(0x60, 1, true, false);
	assert_int_equal(router_resolve(c, &ev).vmm, UART);
	ev = io_ev(0x533, 4, true, false);
	rt = router_resolve(c, &ev);
	assert_int_equal(ev.type, VMMUX_EV_HYPERCALL);
	assert_int_equal(rt.vmm, CONSOLE);
	assert_string_equal(rt.r->spec.text, "type:hypercall=console");
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_MMIO;
	ev.key = 0xfee00000;
	assert_int_equal(router_resolve(c, &ev).vmm, X);
	ev.type = VMMUX_EV_MSR;
	ev.key = 0x1b;
	assert_int_equal(router_resolve(c, &ev).vmm, VMM_ID_MAIN);
}

static void test_publish(void **state)
{
	(void)state;
	const char *a[] = {"io:0x3f8-0x3ff=uart", "mmio:0x1000=x"};
	const char *b[] = {"io:0x3f8-0x3ff=uart", "mmio:0x1000=y"};
	struct route_table *ta = build(a, 2);
	assert_non_null(ta);
	router_init(ta);
	const struct route_table *c = router_current();
	assert_true(c->generation == 1);
	for (size_t i = 0; i < c->nroutes; i++)
		assert_non_null(c->routes[i].stats);
	struct route_stats *uart_stats = c->routes[c->port[0x3f8]].stats;
	struct route_stats *x_stats = c->routes[c->mmio[0].route].stats;
	struct route_stats *io_type = c->routes[c->type_route[VMMUX_EV_IO]].stats;
	assert_string_equal(uart_stats->spec, "io:0x3f8-0x3ff=uart");

	struct route_table *tb = build(b, 2);
	assert_non_null(tb);
	router_publish(tb);
	c = router_current();
	assert_ptr_equal(c, tb);
	assert_true(c->generation == 2);
	/* unchanged spec text: the same statistics */
	assert_ptr_equal(c->routes[c->port[0x3f8]].stats, uart_stats);
	assert_ptr_equal(c->routes[c->type_route[VMMUX_EV_IO]].stats, io_type);
	/* changed route: its own */
	assert_ptr_not_equal(c->routes[c->mmio[0].route].stats, x_stats);
	assert_string_equal(c->routes[c->mmio[0].route].stats->spec, "mmio:0x1000=y");

	/* publish from a registered thread that is online */
	router_thread_register();
	struct route_table *tc = build(a, 2);
	assert_non_null(tc);
	router_publish(tc);
	c = router_current();
	assert_true(c->generation == 3);
	assert_ptr_equal(c->routes[c->mmio[0].route].stats, x_stats);
	router_quiescent();
	router_thread_offline();
	router_thread_online();
	router_thread_unregister();
	router_publish(NULL); /* ignored */
	assert_true(router_current()->generation == 3);
}

/* ---------------------------------------------------------------------- */
/* Concurrency                                                              */
/* ---------------------------------------------------------------------- */

#define K	  5	  /* VMM ids v0..v4 */
#define PORT_LO	  0x1000u /* the ports every table maps */
#define PORT_HI	  0x10ffu
#define MMIO_BASE 0x80000000ull
#define PUBLISHES 1000
#define READERS	  3

struct reader {
	pthread_t thread;
	unsigned long sections, lookups, torn, backwards, changes;
	uint64_t last_gen;
};

static volatile int stop_readers;

/* A table whose every route goes to VMM (gen % K); also a few ranges so that
 * binary search runs. */
static struct route_table *gen_table(uint64_t gen)
{
	char io[64], mm[64], ms[64], hc[64];
	unsigned v = (unsigned)(gen % K);
	snprintf(io, sizeof(io), "io:0x%x-0x%x=v%u", PORT_LO, PORT_HI, v);
	snprintf(mm, sizeof(mm), "mmio:0x%llx+0x1000=v%u", (unsigned long long)MMIO_BASE, v);
	snprintf(ms, sizeof(ms), "msr:0x40000000-0x4000ffff=v%u", v);
	snprintf(hc, sizeof(hc), "hypercall:0-7=v%u", v);
	const char *specs[] = {io, mm, ms, hc, "mmio:0x1000=main", "mmio:0x3000=main"};
	return build(specs, N(specs));
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	router_thread_register();
	unsigned long iter = 0;
	while (!__atomic_load_n(&stop_readers, __ATOMIC_RELAXED)) {
		/* one read-side section */
		const struct route_table *t = router_current();
		uint64_t g = t->generation;
		uint16_t want = (uint16_t)(g % K);
		if (g < r->last_gen)
			r->backwards++;
		if (g != r->last_gen) /* read by the writer while this runs */
			__atomic_fetch_add(&r->changes, 1, __ATOMIC_RELAXED);
		r->last_gen = g;
		for (unsigned p = PORT_LO; p <= PORT_HI; p += 7) {
			uint16_t ri = route_lookup_port(t, (uint16_t)p);
			if (ri == ROUTE_NONE || t->routes[ri].vmm != want)
				r->torn++;
			r->lookups++;
		}
		struct vmmux_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.type = VMMUX_EV_MMIO;
		ev.key = MMIO_BASE + (iter & 0xfff);
		struct route_target rt = router_resolve(t, &ev);
		if (rt.vmm != want || rt.generation != g || (ev.flags & VMMUX_EVF_UNROUTED))
			r->torn++;
		memset(&ev, 0, sizeof(ev));
		ev.type = VMMUX_EV_IO;
		ev.key = 0x503;
		ev.size = 4;
		ev.flags = VMMUX_EVF_WRITE;
		rt = router_resolve(t, &ev);
		if (rt.vmm != want || ev.type != VMMUX_EV_HYPERCALL)
			r->torn++;
		if (route_lookup_msr(t, 0x40000000u + (uint32_t)(iter & 0xffff)) == ROUTE_NONE ||
		    t->routes[route_lookup_msr(t, 0x40008000u)].vmm != want)
			r->torn++;
		if (t->generation != g || router_current()->generation < g)
			r->torn++;
		r->lookups += 3;
		r->sections++;
		iter++;
		/* like a vCPU: mostly a quiescent state between exits, and now
		 * and then offline around a blocking KVM_RUN */
		if (iter % 16 == 0) {
			router_thread_offline();
			if (iter % 64 == 0)
				sched_yield();
			router_thread_online();
		} else {
			router_quiescent();
		}
	}
	router_thread_unregister();
	return NULL;
}

/* Whether every reader has seen the table change at least twice (on a loaded
 * host the scheduler may keep a reader off the CPUs for a while). */
static int readers_saw_changes(struct reader *rd)
{
	for (int i = 0; i < READERS; i++)
		if (__atomic_load_n(&rd[i].changes, __ATOMIC_RELAXED) < 2)
			return 0;
	return 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_concurrent_readers(void **state)
{
	(void)state;
	struct route_table *t0 = gen_table(1);
	assert_non_null(t0);
	router_init(t0);
	assert_true(router_current()->generation == 1);

	struct reader rd[READERS];
	memset(rd, 0, sizeof(rd));
	stop_readers = 0;
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&rd[i].thread, NULL, reader_main, &rd[i]), 0);

	/* PUBLISHES tables, and more until every reader has seen the table
	 * change under it (at most 30 s) */
	uint64_t gen = 1, start = now_ms();
	unsigned long published = 0;
	while (published < PUBLISHES || (!readers_saw_changes(rd) && now_ms() - start < 30000)) {
		struct route_table *t = gen_table(gen + 1);
		assert_non_null(t);
		router_publish(t);
		gen++;
		/* the writer is the only publisher: T is still current */
		assert_true(t->generation == gen);
		if (published++ % 100 == 0) { /* let the readers run on a two-CPU host */
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
		}
	}
	__atomic_store_n(&stop_readers, 1, __ATOMIC_RELAXED);
	unsigned long changes = 0;
	for (int i = 0; i < READERS; i++) {
		assert_int_equal(pthread_join(rd[i].thread, NULL), 0);
		fprintf(stderr, "reader %d: %lu sections, %lu lookups, %lu generation changes\n", i,
			rd[i].sections, rd[i].lookups, rd[i].changes);
		assert_int_equal(rd[i].torn, 0);
		assert_int_equal(rd[i].backwards, 0);
		assert_true(rd[i].sections > 0);
		assert_true(rd[i].last_gen <= gen);
		changes += rd[i].changes;
	}
	/* the readers did see the tables change under them */
	assert_true(changes > READERS);
	assert_true(router_current()->generation == 1 + published);
}

/*
 * The grace period, deterministically: a reader holds the current table
 * (online, no quiescent state) while a writer publishes another. The writer
 * returns at once (reclamation is deferred: nobody waits for readers) and
 * kicks the readers; the table the reader holds must not be freed until the
 * reader passes a quiescent state, and must be freed after it (by liburcu's
 * call_rcu thread). route_table_free is wrapped (-Wl,--wrap, meson.build) to
 * see exactly when the held table is freed.
 */
void __real_route_table_free(struct route_table *t);
void __wrap_route_table_free(struct route_table *t);

static const struct route_table *_Atomic held_table;
static _Atomic int held_freed, kicked, published, reader_go, reader_ready;
static _Atomic int freed_while_held;

void __wrap_route_table_free(struct route_table *t)
{
	if (t != NULL && t == held_table)
		__atomic_store_n(&held_freed, 1, __ATOMIC_SEQ_CST);
	__real_route_table_free(t);
}

static void on_kick(void)
{
	__atomic_store_n(&kicked, 1, __ATOMIC_SEQ_CST);
}

static void *holding_reader(void *arg)
{
	uint64_t *gen = arg;
	router_thread_register(); /* online */
	held_table = router_current();
	__atomic_store_n(&reader_ready, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&reader_go, __ATOMIC_SEQ_CST))
		sched_yield();
	/* still inside the read-side section that loaded the table */
	freed_while_held = __atomic_load_n(&held_freed, __ATOMIC_SEQ_CST);
	if (!freed_while_held) /* (a wrong router freed it: the test fails) */
		*gen = held_table->generation;
	router_quiescent();
	router_thread_unregister();
	return NULL;
}

static void *publishing_writer(void *arg)
{
	router_publish(arg);
	__atomic_store_n(&published, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_grace_period_before_free(void **state)
{
	(void)state;
	held_table = NULL;
	/* the call_rcu thread may still free an earlier test's tables (and
	 * read held_freed's neighbours in __wrap_route_table_free) */
	__atomic_store_n(&held_freed, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&kicked, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&published, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&reader_go, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&reader_ready, 0, __ATOMIC_SEQ_CST);
	freed_while_held = -1;
	struct route_table *t0 = gen_table(1);
	assert_non_null(t0);
	router_init(t0);
	router_set_kick(on_kick);
	uint64_t gen = 0;
	pthread_t r, w;
	assert_int_equal(pthread_create(&r, NULL, holding_reader, &gen), 0);
	while (!__atomic_load_n(&reader_ready, __ATOMIC_SEQ_CST))
		sched_yield();
	assert_ptr_equal(held_table, t0);
	struct route_table *t1 = gen_table(2);
	assert_non_null(t1);
	assert_int_equal(pthread_create(&w, NULL, publishing_writer, t1), 0);
	/* the writer returns without waiting for the reader, having kicked it */
	for (int i = 0; i < 20000 && !published; i++)
		sleep_ms(1);
	int published_at_once = published, kicked_first = kicked;
	/* the held table stays while the reader holds it */
	for (int i = 0; i < 100 && !held_freed; i++)
		sleep_ms(1);
	int freed_early = held_freed;
	/* let the reader go before any check, so that a failure leaves no
	 * thread behind online (the call_rcu thread would wait for it forever) */
	__atomic_store_n(&reader_go, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(r, NULL), 0);
	assert_int_equal(pthread_join(w, NULL), 0);
	router_set_kick(NULL);
	assert_true(published_at_once);
	assert_true(kicked_first);
	assert_false(freed_early);
	assert_ptr_equal(router_current(), t1);
	assert_int_equal(freed_while_held, 0);
	assert_true(gen == 1);
	/* after the reader's quiescent state the call_rcu thread frees it */
	for (int i = 0; i < 20000 && !held_freed; i++)
		sleep_ms(1);
	assert_true(held_freed);
	held_table = NULL;
}

/* Two writers, each registered and online between its publishes, and a
 * reader: the writers' mutex and the grace periods must not deadlock, and
 * every publish counts once. */
struct writer_arg {
	int n;
};

static void *writer_main(void *arg)
{
	struct writer_arg *w = arg;
	router_thread_register();
	for (int i = 0; i < w->n; i++) {
		const struct route_table *t = router_current(); /* online reader too */
		(void)t->generation;
		struct route_table *nt = gen_table(0);
		if (nt == NULL)
			break;
		router_publish(nt);
		router_quiescent();
	}
	router_thread_unregister();
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	(void)state;
	struct route_table *t0 = gen_table(0);
	assert_non_null(t0);
	router_init(t0);
	stop_readers = 0;
	struct reader rd;
	memset(&rd, 0, sizeof(rd));
	assert_int_equal(pthread_create(&rd.thread, NULL, reader_main, &rd), 0);
	struct writer_arg wa = {200};
	pthread_t w[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&w[i], NULL, writer_main, &wa), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(w[i], NULL), 0);
	__atomic_store_n(&stop_readers, 1, __ATOMIC_RELAXED);
	assert_int_equal(pthread_join(rd.thread, NULL), 0);
	assert_int_equal(rd.backwards, 0);
	assert_true(router_current()->generation == 1 + 2 * 200);
}

/* A reader that stays online (a vCPU held in a delivery, a long hypercall)
 * holds no writer: router_publish returns without waiting for it (the old
 * tables are reclaimed by call_rcu once it passes a quiescent state), and
 * the readers are told a reclamation is pending until then. */
static _Atomic int stuck_state; /* 0 starting, 1 online with a table, 2 let go */

static void *stuck_reader_main(void *arg)
{
	(void)arg;
	router_thread_register();
	const struct route_table *t = router_current();
	atomic_store(&stuck_state, 1);
	while (atomic_load(&stuck_state) != 2)
		sched_yield();
	/* the table it held is still readable: not freed under it */
	assert_true(t->generation >= 1);
	router_thread_unregister();
	return NULL;
}

static void test_publish_never_waits_for_readers(void **state)
{
	(void)state;
	router_init(gen_table(1));
	atomic_store(&stuck_state, 0);
	pthread_t r;
	assert_int_equal(pthread_create(&r, NULL, stuck_reader_main, NULL), 0);
	while (atomic_load(&stuck_state) != 1)
		sched_yield();
	/* would never return if a publish waited for a grace period */
	for (int i = 0; i < 3; i++)
		router_publish(gen_table(0));
	assert_true(router_current()->generation == 4);
	assert_true(router_gp_pending());
	atomic_store(&stuck_state, 2);
	assert_int_equal(pthread_join(r, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_hypercall_retyping, teardown),
	    cmocka_unit_test_teardown(test_keyed_and_defaults, teardown),
	    cmocka_unit_test_teardown(test_type_route_defaults, teardown),
	    cmocka_unit_test_teardown(test_sourced_routes, teardown),
	    cmocka_unit_test_teardown(test_group_routes, teardown),
	    cmocka_unit_test_teardown(test_publish, teardown),
	    cmocka_unit_test_teardown(test_publish_never_waits_for_readers, teardown),
	    cmocka_unit_test_teardown(test_concurrent_readers, teardown),
	    cmocka_unit_test_teardown(test_grace_period_before_free, teardown),
	    cmocka_unit_test_teardown(test_concurrent_writers, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
