/*
 * Unit tests of the group policies (src/vmm/policy.c) on groups compiled by
 * the real routing table from route specs, with members' loads set by the
 * test: the least-loaded score and each of its parameters varied alone
 * (in flight, service time, CPU), its tie-breaks and probes; round-robin
 * and weighted turns, exact with one thread and with two threads picking at
 * once; sticky's vCPU-to-member mapping and its stability; skipped
 * (unhealthy, excluded) members that come back; what happens when no member
 * can take an event.
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

#include "route/table.h"
#include "vmm/policy.h"

/* Members are "vN" with id N (1..15); their loads are set by the tests. */
#define IDS 16
static struct vmm_load loads[IDS];

static const struct vmm_load *test_load(void *arg, uint16_t id)
{
	(void)arg;
	return id < IDS ? &loads[id] : NULL;
}

static uint16_t resolve(void *arg, const char *name)
{
	(void)arg;
	if (name[0] == 'v' && name[1] >= '0' && name[1] <= '9')
		return (uint16_t)atoi(name + 1);
	return VMM_ID_NONE;
}

/* Every VMM healthy and idle, never measured. */
static int reset_loads(void **state)
{
	(void)state;
	for (unsigned i = 0; i < IDS; i++) {
		loads[i].inflight = 0;
		loads[i].served = 0;
		loads[i].ewma_ns = 0;
		loads[i].cpu_ns = 0;
		loads[i].cpu_permille = 0;
		loads[i].healthy = 1;
	}
	return 0;
}

/* A table holding the one route SPEC (io:0x90=...); its route in *r. */
static struct route_table *table(const char *spec, const struct route **r)
{
	struct route_spec s;
	struct errbuf e;
	if (route_spec_parse(spec, &s, &e))
		fail_msg("%s", e.msg);
	struct route_table *t = route_table_build(&s, 1, resolve, NULL, &e);
	if (t == NULL)
		fail_msg("%s", e.msg);
	*r = &t->routes[t->port[0x90]];
	assert_non_null((*r)->group);
	return t;
}

static struct vmmux_event vcpu_event(uint16_t vcpu)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_IO;
	ev.key = 0x90;
	ev.size = 4;
	ev.count = 1;
	ev.flags = VMMUX_EVF_WRITE;
	ev.src_kind = VMMUX_SRC_VCPU;
	ev.src_id = vcpu;
	ev.vcpu = vcpu;
	return ev;
}

/* The member index a pick of route R gives for vCPU 0. */
static int pick(const struct route *r)
{
	struct vmmux_event ev = vcpu_event(0);
	return policy_select(r->group, &ev, VMM_ID_NONE, test_load, NULL);
}

static void set(uint16_t id, uint32_t inflight, uint64_t ewma_ns, uint32_t cpu_permille,
		uint64_t served)
{
	loads[id].inflight = inflight;
	loads[id].ewma_ns = ewma_ns;
	loads[id].cpu_permille = cpu_permille;
	loads[id].served = served;
}

/* ---------------------------------------------------------------------- */

static void test_score_formula(void **state)
{
	(void)state;
	/* (inflight + 1) * max(ewma_ns, 1000) * (1000 + cpu_permille) / 1000 */
	assert_true(policy_score(0, 0, 0) == 1000);
	assert_true(policy_score(0, 999, 0) == 1000); /* at least 1 us */
	assert_true(policy_score(0, 1000, 0) == 1000);
	assert_true(policy_score(0, 5000, 0) == 5000);
	assert_true(policy_score(2, 5000, 0) == 15000);
	assert_true(policy_score(0, 5000, 500) == 7500);
	assert_true(policy_score(1, 2000, 1000) == 8000);
	assert_true(policy_score(3, 12345, 7) == 4 * 12345 * 1007 / 1000);
	assert_true(policy_score(0, 1001, 1) == 1002); /* 1002.001, truncated */
	/* large values: exact, then saturated */
	assert_true(policy_score(0, 1ull << 62, 0) == 1ull << 60); /* service time capped */
	assert_true(policy_score(15, 1ull << 59, 0) == 1ull << 63);
	assert_true(policy_score(31, 1ull << 59, 0) == UINT64_MAX); /* 2^64 */
	assert_true(policy_score(UINT32_MAX, UINT64_MAX, UINT32_MAX) == UINT64_MAX);
	assert_true(policy_score(UINT32_MAX, 1000, 0) == (UINT32_MAX + 1ull) * 1000);

	/* each parameter alone makes the score grow */
	for (uint32_t i = 0; i < 100; i++) {
		assert_true(policy_score(i + 1, 4000, 300) > policy_score(i, 4000, 300));
		assert_true(policy_score(2, 4000 + 10 * i + 10, 300) >
			    policy_score(2, 4000 + 10 * i, 300));
		assert_true(policy_score(2, 4000, 300 + 10 * i + 10) >
			    policy_score(2, 4000, 300 + 10 * i));
	}
}

/* Least-loaded: each parameter varied alone decides. */
static void test_least_loaded_parameters(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(least-loaded:v1,v2,v3)", &r);

	/* in flight: fewer requests ahead wins */
	set(1, 3, 10000, 0, 0);
	set(2, 0, 10000, 0, 0);
	set(3, 1, 10000, 0, 0);
	assert_int_equal(pick(r), 1);
	set(2, 2, 10000, 0, 0);
	assert_int_equal(pick(r), 2); /* v3: 1 in flight */

	/* service time: the shorter EWMA wins */
	set(1, 0, 20000, 0, 0);
	set(2, 0, 10000, 0, 0);
	set(3, 0, 15000, 0, 0);
	assert_int_equal(pick(r), 1);
	set(3, 0, 9999, 0, 0);
	assert_int_equal(pick(r), 2);

	/* CPU: the member whose process uses less CPU wins */
	set(1, 0, 10000, 900, 0);
	set(2, 0, 10000, 100, 0);
	set(3, 0, 10000, 500, 0);
	assert_int_equal(pick(r), 1);
	set(2, 0, 10000, 950, 0);
	assert_int_equal(pick(r), 2);

	/* the parameters weigh against each other through the score: one
	 * request ahead at 10 us (20 us) beats none ahead at 25 us, loses to
	 * none ahead at 15 us; a full CPU counts as twice the time */
	set(1, 1, 10000, 0, 0);
	set(2, 0, 25000, 0, 0);
	set(3, 0, 10000, 1500, 0);
	assert_int_equal(pick(r), 0);
	set(2, 0, 15000, 0, 0);
	assert_int_equal(pick(r), 1);
	set(2, 0, 30000, 0, 0);
	set(3, 0, 10000, 900, 0); /* 19 us */
	assert_int_equal(pick(r), 2);

	/* never measured (EWMA 0) counts as 1 us: a new member is tried */
	set(1, 0, 3000, 0, 100);
	set(2, 0, 0, 0, 0);
	set(3, 0, 2000, 0, 100);
	assert_int_equal(pick(r), 1);
	route_table_free(t);
}

/* Least-loaded: ties, health, exclusion. */
static void test_least_loaded_ties_and_health(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(least-loaded:v1,v2,v3)", &r);
	/* equal scores: the fewest served, then the earliest member */
	set(1, 0, 8000, 0, 50);
	set(2, 0, 8000, 0, 40);
	set(3, 0, 8000, 0, 40);
	assert_int_equal(pick(r), 1);
	loads[2].served = 41;
	assert_int_equal(pick(r), 2);
	loads[1].served = 41;
	loads[3].served = 41;
	assert_int_equal(pick(r), 0);

	/* the best member unhealthy: the next best; back when healthy */
	set(1, 0, 9000, 0, 0);
	set(2, 0, 1000, 0, 0);
	set(3, 0, 5000, 0, 0);
	loads[2].healthy = 0;
	assert_int_equal(pick(r), 2);
	loads[3].healthy = 0;
	assert_int_equal(pick(r), 0);
	loads[1].healthy = 0;
	assert_int_equal(pick(r), -1);
	loads[2].healthy = 1;
	assert_int_equal(pick(r), 1);

	/* the member that handed the event on is skipped */
	loads[1].healthy = loads[3].healthy = 1;
	struct vmmux_event ev = vcpu_event(0);
	assert_int_equal(policy_select(r->group, &ev, 2, test_load, NULL), 2);
	assert_int_equal(policy_select(r->group, &ev, 7, test_load, NULL), 1);
	route_table_free(t);
}

/* Least-loaded: every POLICY_PROBE_PERIOD-th pick probes an idle member in
 * turn, so that a member measured slow gets measured again. */
static void test_least_loaded_probes(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(least-loaded:v1,v2,v3)", &r);
	set(1, 0, 2000000, 0, 0); /* measured slow: 2 ms */
	set(2, 0, 3000000, 0, 0);
	set(3, 0, 20000, 0, 0);
	unsigned got[3] = {0};
	for (unsigned k = 0; k < 3 * POLICY_PROBE_PERIOD; k++) {
		int i = pick(r);
		assert_true(i >= 0 && i < 3);
		got[i]++;
		if (k % POLICY_PROBE_PERIOD != POLICY_PROBE_PERIOD - 1) {
			assert_int_equal(i, 2);
			continue;
		}
		/* probes start at member (k / period) mod n */
		static const int probe[] = {0, 1, 2};
		assert_int_equal(i, probe[k / POLICY_PROBE_PERIOD]);
	}
	assert_int_equal(got[0], 1);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[2], 3 * POLICY_PROBE_PERIOD - 2);

	/* a probe skips members with requests in flight (they will be measured
	 * when those complete; a stalled one is not probed into) */
	loads[1].inflight = 1;
	for (unsigned k = 0; k < POLICY_PROBE_PERIOD - 1; k++)
		assert_int_equal(pick(r), 2);
	assert_int_equal(pick(r), 1); /* the probe due at v1 goes to v2 */
	/* nothing idle: no probe, the best score */
	loads[2].inflight = 1;
	loads[3].inflight = 1;
	for (unsigned k = 0; k < POLICY_PROBE_PERIOD; k++)
		assert_int_equal(pick(r), 2);
	route_table_free(t);
}

/* Round-robin: in turn, exactly; ineligible members skipped evenly. */
static void test_round_robin(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(round-robin:v1,v2,v3)", &r);
	set(1, 5, 90000, 900, 0); /* load plays no part */
	for (unsigned k = 0; k < 9; k++)
		assert_int_equal(pick(r), (int)(k % 3));
	/* v2 stops: v1 and v3 alternate exactly */
	loads[2].healthy = 0;
	static const int two[] = {0, 2, 0, 2, 0, 2};
	for (unsigned k = 0; k < 6; k++)
		assert_int_equal(pick(r), two[k]);
	/* v2 returns: in turn again, from after the last one chosen */
	loads[2].healthy = 1;
	static const int three[] = {0, 1, 2, 0, 1};
	for (unsigned k = 0; k < 5; k++)
		assert_int_equal(pick(r), three[k]);
	/* an excluded member is skipped for that event only */
	struct vmmux_event ev = vcpu_event(1);
	assert_int_equal(policy_select(r->group, &ev, 3, test_load, NULL), 0); /* v3's turn */
	assert_int_equal(pick(r), 1);
	/* nobody healthy: -1, and the counter does not move */
	for (unsigned i = 1; i <= 3; i++)
		loads[i].healthy = 0;
	uint64_t before = r->group->next;
	assert_int_equal(pick(r), -1);
	assert_true(r->group->next == before);
	route_table_free(t);
}

/* Weighted: the smooth weighted round-robin, exact. */
static void test_weighted(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(weighted:v1*3,v2*1)", &r);
	static const int seq31[] = {0, 0, 1, 0, 0, 0, 1, 0};
	for (unsigned k = 0; k < 8; k++)
		assert_int_equal(pick(r), seq31[k]);
	route_table_free(t);

	t = table("io:0x90=group(weighted:v1*5,v2*1,v3*1)", &r);
	static const int seq511[] = {0, 0, 1, 0, 2, 0, 0};
	unsigned got[3] = {0};
	for (unsigned k = 0; k < 700; k++) {
		int i = pick(r);
		assert_int_equal(i, seq511[k % 7]);
		got[i]++;
	}
	assert_int_equal(got[0], 500);
	assert_int_equal(got[1], 100);
	assert_int_equal(got[2], 100);
	/* v2 down: its turns are skipped, v1 and v3 keep 5:1 exactly */
	loads[2].healthy = 0;
	static const int seq51[] = {0, 0, 0, 2, 0, 0};
	for (unsigned k = 0; k < 60; k++)
		assert_int_equal(pick(r), seq51[k % 6]);
	loads[2].healthy = 1;
	memset(got, 0, sizeof(got));
	for (unsigned k = 0; k < 70; k++)
		got[pick(r)]++;
	assert_int_equal(got[0], 50);
	assert_int_equal(got[1], 10);
	assert_int_equal(got[2], 10);
	route_table_free(t);
}

/* Sticky: vCPU mod n; while its member is out, the next one; back after. */
static void test_sticky(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(sticky:v1,v2,v3)", &r);
	struct vmmux_event ev;
	for (uint16_t vcpu = 0; vcpu < 12; vcpu++) {
		ev = vcpu_event(vcpu);
		for (unsigned k = 0; k < 5; k++) { /* load plays no part */
			set(1 + k % 3, k, 1000 * k, 100 * k, k);
			assert_int_equal(policy_select(r->group, &ev, VMM_ID_NONE, test_load, NULL),
					 vcpu % 3);
		}
	}
	/* v2 out: only its vCPUs move, to v3; the others stay */
	loads[2].healthy = 0;
	static const int moved[] = {0, 2, 2, 0, 2, 2};
	for (uint16_t vcpu = 0; vcpu < 6; vcpu++) {
		ev = vcpu_event(vcpu);
		assert_int_equal(policy_select(r->group, &ev, VMM_ID_NONE, test_load, NULL),
				 moved[vcpu]);
	}
	/* v3 out too: the next after v3 is v1 */
	loads[3].healthy = 0;
	ev = vcpu_event(2);
	assert_int_equal(policy_select(r->group, &ev, VMM_ID_NONE, test_load, NULL), 0);
	/* both back: every vCPU on its own member again */
	loads[2].healthy = loads[3].healthy = 1;
	for (uint16_t vcpu = 0; vcpu < 6; vcpu++) {
		ev = vcpu_event(vcpu);
		assert_int_equal(policy_select(r->group, &ev, VMM_ID_NONE, test_load, NULL),
				 vcpu % 3);
	}
	/* on no vCPU's behalf: by source */
	ev = vcpu_event(0);
	ev.vcpu = VMMUX_NO_VCPU;
	ev.src_kind = VMMUX_SRC_VMM;
	ev.src_id = 5;
	assert_int_equal(policy_select(r->group, &ev, VMM_ID_NONE, test_load, NULL), 2);
	/* the member handing the event on is skipped like an unhealthy one */
	ev = vcpu_event(1);
	assert_int_equal(policy_select(r->group, &ev, 2, test_load, NULL), 2);
	route_table_free(t);
}

/* policy_pick: the member's id; none eligible: the fallback, else main. */
static void test_pick_fallback(void **state)
{
	(void)state;
	const struct route *r;
	struct route_table *t = table("io:0x90=group(round-robin:v1,v2);fallback=v5", &r);
	struct vmmux_event ev = vcpu_event(0);
	assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), 1);
	assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), 2);
	loads[1].healthy = loads[2].healthy = 0;
	assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), 5);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0);
	/* the fallback handed the event on: never back to it */
	ev.src_kind = VMMUX_SRC_VMM;
	ev.src_id = 5;
	assert_int_equal(policy_pick(r, &ev, 5, test_load, NULL), VMM_ID_MAIN);
	assert_true(ev.flags & VMMUX_EVF_UNROUTED);
	assert_int_equal(r->group->none_logged, 1);
	loads[2].healthy = 1;
	ev = vcpu_event(0);
	assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), 2);
	route_table_free(t);

	/* no fallback: the main VMM (its built-in default), logged once */
	t = table("io:0x90=group(sticky:v1,v9)", &r);
	loads[1].healthy = loads[9].healthy = 0;
	ev = vcpu_event(1);
	assert_int_equal(r->group->none_logged, 0);
	assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), VMM_ID_MAIN);
	assert_int_equal(ev.flags & VMMUX_EVF_UNROUTED, 0); /* routed: the group's default */
	assert_int_equal(r->group->none_logged, 1);
	assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), VMM_ID_MAIN);
	/* a member that no VMM has (no load) is never chosen */
	loads[1].healthy = 1;
	route_table_free(t);
	t = table("io:0x90=group(round-robin:v1,v20)", &r);
	for (unsigned k = 0; k < 4; k++)
		assert_int_equal(policy_pick(r, &ev, VMM_ID_NONE, test_load, NULL), 1);
	route_table_free(t);

	/* a route without a group: its VMM */
	struct route plain;
	memset(&plain, 0, sizeof(plain));
	plain.vmm = 4;
	plain.fallback = VMM_ID_NONE;
	assert_int_equal(policy_pick(&plain, &ev, VMM_ID_NONE, test_load, NULL), 4);
}

/* Two threads picking at once: every pick claims its own turn. */
struct picker {
	const struct route *r;
	unsigned n;
	unsigned got[ROUTE_GROUP_MAX];
	int bad;
};

static void *picker_main(void *arg)
{
	struct picker *p = arg;
	struct vmmux_event ev = vcpu_event(1);
	for (unsigned k = 0; k < p->n; k++) {
		int i = policy_select(p->r->group, &ev, VMM_ID_NONE, test_load, NULL);
		if (i < 0 || i >= ROUTE_GROUP_MAX)
			p->bad++;
		else
			p->got[i]++;
	}
	return NULL;
}

static void concurrent(const char *spec, unsigned per_thread, const unsigned *want, unsigned n)
{
	const struct route *r;
	struct route_table *t = table(spec, &r);
	struct picker p[2];
	pthread_t th[2];
	for (unsigned i = 0; i < 2; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].r = r;
		p[i].n = per_thread;
		assert_int_equal(pthread_create(&th[i], NULL, picker_main, &p[i]), 0);
	}
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(p[0].bad + p[1].bad, 0);
	for (unsigned m = 0; m < n; m++)
		assert_int_equal(p[0].got[m] + p[1].got[m], want[m]);
	route_table_free(t);
}

static void test_concurrent_turns(void **state)
{
	(void)state;
	static const unsigned rr[] = {40000, 40000, 40000};
	concurrent("io:0x90=group(round-robin:v1,v2,v3)", 60000, rr, 3);
	static const unsigned w[] = {50000, 10000, 10000};
	concurrent("io:0x90=group(weighted:v1*5,v2,v3)", 35000, w, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_score_formula, reset_loads),
	    cmocka_unit_test_setup(test_least_loaded_parameters, reset_loads),
	    cmocka_unit_test_setup(test_least_loaded_ties_and_health, reset_loads),
	    cmocka_unit_test_setup(test_least_loaded_probes, reset_loads),
	    cmocka_unit_test_setup(test_round_robin, reset_loads),
	    cmocka_unit_test_setup(test_weighted, reset_loads),
	    cmocka_unit_test_setup(test_sticky, reset_loads),
	    cmocka_unit_test_setup(test_pick_fallback, reset_loads),
	    cmocka_unit_test_setup(test_concurrent_turns, reset_loads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
