/*
 * policy.c: choosing a group's member for an event (policy.h).
 *
 * Each pick first reads every member's load once (relaxed atomic loads: a
 * value may be a moment old, which only shifts one decision) and builds the
 * mask of eligible members; the policy then chooses among them. The only
 * shared state written is the route's counter (route_group.next), moved
 * with one atomic add (and, after skipping ineligible members, one
 * compare-and-swap that may fail harmlessly when another thread moved it).
 */
#include "vmm/policy.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "util/log.h"

#define EWMA_CAP (1ull << 60)

uint64_t policy_score(uint32_t inflight, uint64_t ewma_ns, uint32_t cpu_permille)
{
	uint64_t t = ewma_ns < 1000 ? 1000 : ewma_ns > EWMA_CAP ? EWMA_CAP : ewma_ns;
	/* < 2^33 * 2^60 * 2^33: fits 128 bits */
	unsigned __int128 v = (unsigned __int128)((uint64_t)inflight + 1) * t *
			      (1000u + (uint64_t)cpu_permille) / 1000u;
	return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

/* What a pick reads of one member. */
struct member_view {
	uint32_t inflight;
	uint64_t served, ewma_ns;
	uint32_t cpu_permille;
};

/* Read every member's load; returns the mask of eligible members. */
static uint32_t read_members(const struct route_group *g, uint16_t exclude, policy_load_fn load,
			     void *arg, struct member_view *mv)
{
	uint32_t mask = 0;
	for (unsigned i = 0; i < g->n && i < ROUTE_GROUP_MAX; i++) {
		const struct vmm_load *l = load ? load(arg, g->member[i]) : NULL;
		if (l == NULL || g->member[i] == exclude ||
		    atomic_load_explicit(&l->healthy, memory_order_relaxed) == 0)
			continue;
		mask |= 1u << i;
		mv[i].inflight = atomic_load_explicit(&l->inflight, memory_order_relaxed);
		mv[i].served = atomic_load_explicit(&l->served, memory_order_relaxed);
		mv[i].ewma_ns = atomic_load_explicit(&l->ewma_ns, memory_order_relaxed);
		mv[i].cpu_permille = atomic_load_explicit(&l->cpu_permille, memory_order_relaxed);
	}
	return mask;
}

/*
 * Take the counter's next position and the member there in a cycle of
 * PERIOD positions (position p holds member SEQ[p % PERIOD], or p % PERIOD
 * without SEQ), skipping ineligible members; the counter then moves past
 * the skipped positions, so that a single thread sees exactly the cycle
 * with the ineligible members left out.
 */
static int take_turn(struct route_group *g, uint32_t mask, uint32_t period, const uint8_t *seq)
{
	if (mask == 0 || period == 0)
		return -1;
	uint64_t pos = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
	for (uint32_t d = 0; d < period; d++) {
		uint64_t p = pos + d;
		unsigned i = seq ? seq[p % period] : (unsigned)(p % period);
		if (!(mask & (1u << i)))
			continue;
		if (d > 0) {
			uint64_t expected = pos + 1;
			atomic_compare_exchange_strong_explicit(
			    &g->next, &expected, p + 1, memory_order_relaxed, memory_order_relaxed);
		}
		return (int)i;
	}
	return -1;
}

/* The first member at or after START (cyclically) whose bit is in MASK. */
static int next_in(uint32_t mask, unsigned n, unsigned start)
{
	for (unsigned d = 0; d < n; d++) {
		unsigned i = (start + d) % n;
		if (mask & (1u << i))
			return (int)i;
	}
	return -1;
}

static int least_loaded(struct route_group *g, uint32_t mask, const struct member_view *mv)
{
	if (mask == 0)
		return -1;
	uint64_t c = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
	if (c % POLICY_PROBE_PERIOD == POLICY_PROBE_PERIOD - 1) {
		uint32_t idle = 0;
		for (unsigned i = 0; i < g->n; i++)
			if ((mask & (1u << i)) && mv[i].inflight == 0)
				idle |= 1u << i;
		int p = next_in(idle, g->n, (unsigned)((c / POLICY_PROBE_PERIOD) % g->n));
		if (p >= 0)
			return p;
	}
	int best = -1;
	uint64_t best_score = 0, best_served = 0;
	for (unsigned i = 0; i < g->n; i++) {
		if (!(mask & (1u << i)))
			continue;
		uint64_t s = policy_score(mv[i].inflight, mv[i].ewma_ns, mv[i].cpu_permille);
		if (best < 0 || s < best_score || (s == best_score && mv[i].served < best_served)) {
			best = (int)i;
			best_score = s;
			best_served = mv[i].served;
		}
	}
	return best;
}

int policy_select(struct route_group *g, const struct vmmux_event *ev, uint16_t exclude,
		  policy_load_fn load, void *arg)
{
	if (g == NULL || g->n == 0 || g->n > ROUTE_GROUP_MAX)
		return -1;
	struct member_view mv[ROUTE_GROUP_MAX];
	uint32_t mask = read_members(g, exclude, load, arg, mv);
	switch (g->policy) {
	case ROUTE_POLICY_LEAST_LOADED:
		return least_loaded(g, mask, mv);
	case ROUTE_POLICY_ROUND_ROBIN:
		return take_turn(g, mask, g->n, NULL);
	case ROUTE_POLICY_WEIGHTED:
		return take_turn(g, mask, g->nseq, g->seq);
	case ROUTE_POLICY_STICKY: {
		unsigned key = ev->vcpu != VMMUX_NO_VCPU ? ev->vcpu : ev->src_id;
		return next_in(mask, g->n, key % g->n);
	}
	default:
		return -1;
	}
}

uint16_t policy_pick(const struct route *r, struct vmmux_event *ev, uint16_t exclude,
		     policy_load_fn load, void *arg)
{
	struct route_group *g = r->group;
	if (g == NULL)
		return r->vmm;
	int i = policy_select(g, ev, exclude, load, arg);
	if (i >= 0)
		return g->member[i];
	if (r->fallback != VMM_ID_NONE && r->fallback != exclude)
		return r->fallback;
	if (atomic_exchange_explicit(&g->none_logged, 1, memory_order_relaxed) == 0)
		log_warn("route '%s': no member of its group can take events (each one failed, "
			 "stopped or down%s)%s: the built-in default applies until one can (logged "
			 "once)",
			 r->spec.text, exclude != VMM_ID_NONE ? ", or handed the event on" : "",
			 r->fallback == VMM_ID_NONE ? " and it has no fallback"
						    : ", and its fallback handed the event on");
	if (exclude != VMM_ID_NONE)
		ev->flags |= VMMUX_EVF_UNROUTED;
	return VMM_ID_MAIN;
}
