/*
 * policy.h: which member of a group takes an event.
 *
 * A route whose VMM is a group (route.group, route/table.h) leaves the choice
 * of the VMM to dispatch time: vmm_route_deliver calls policy_pick for each
 * event, which evaluates the members' resource usage as the main VMM itself
 * measures it (struct vmm_load in vmm/vmm.h: requests in flight, requests
 * served, service time, CPU share, health; never asked of the VMMs). It
 * takes no lock and makes no system call: a few relaxed atomic loads per
 * member, and for round-robin, weighted and the probes of least-loaded one
 * atomic add on the route's counter.
 *
 * Eligible members: those whose load says healthy (a failed, down or
 * stopped parallel VMM is not) and that did not hand the event on (EXCLUDE).
 * A member that is healthy again is eligible again at once.
 *
 * Policies (docs/routing.md states the same rules):
 *   least-loaded  the eligible member with the smallest policy_score;
 *                 ties: the fewer requests served, then the earlier member.
 *                 Every POLICY_PROBE_PERIOD-th pick of the route (its
 *                 counter) is a probe instead: the next eligible member in
 *                 turn that has nothing in flight, so that a member whose
 *                 service time was measured high while it was slow gets new
 *                 measurements and can win again once it is fast (without
 *                 probes its EWMA, updated only by its own requests, would
 *                 keep it out for good). No such member: no probe.
 *   round-robin   members in turn: each pick takes the route counter's next
 *                 position and the member there, skipping ineligible members
 *                 (the counter then moves past them, so that the eligible
 *                 ones share the events exactly evenly).
 *   weighted      the same over one period of the smooth weighted
 *                 round-robin sequence (route_group_swrr, nginx's
 *                 algorithm), fixed when the table is built: with every
 *                 member eligible, exactly nginx's order; an ineligible
 *                 member's turns are skipped, so the others keep their
 *                 exact proportions among themselves.
 *   sticky        the member at index key mod n, key being the event's vCPU
 *                 (an event on no vCPU's behalf: its source's id); when that
 *                 one is ineligible, the next eligible member after it in
 *                 group order. vCPU indices are small and dense, so mod n
 *                 spreads them evenly (vCPUs 0..n-1 each get their own
 *                 member), and a vCPU changes member only while its own is
 *                 ineligible.
 */
#ifndef VMMUX_VMM_POLICY_H
#define VMMUX_VMM_POLICY_H

#include <stdint.h>

#include "route/table.h"
#include "vmm/vmm.h"
#include <vmmux/vmmux.h>

/* One least-loaded pick in this many is a probe (see above). */
#define POLICY_PROBE_PERIOD 64u

/*
 * The load of VMM ID (NULL when there is no such VMM: never eligible).
 * vmm.c passes the registry's; tests pass their own vmm_load values.
 */
typedef const struct vmm_load *(*policy_load_fn)(void *arg, uint16_t id);

/*
 * The least-loaded score of a member (smaller is better): the expected time
 * a new request waits and is served, in ns,
 *
 *   (inflight + 1) * max(ewma_ns, 1000) * (1000 + cpu_permille) / 1000
 *
 * the requests ahead of it and itself, each taking the measured service
 * time (at least 1 us, so that a member not yet measured counts as fast
 * and one measured below the clock's resolution does not reduce the
 * product to zero), stretched by the CPU the member's process already uses
 * (a member at one full CPU counts as twice as slow). Exact (128-bit
 * arithmetic, ewma_ns capped at 2^60), saturated at UINT64_MAX.
 */
uint64_t policy_score(uint32_t inflight, uint64_t ewma_ns, uint32_t cpu_permille);

/*
 * The index (0..g->n-1) of the member of G that takes EV, by G's policy,
 * among the eligible members (healthy per LOAD, and not the VMM EXCLUDE);
 * -1 when none is eligible. Moves G's counter (round-robin, weighted,
 * least-loaded).
 */
int policy_select(struct route_group *g, const struct vmmux_event *ev, uint16_t exclude,
		  policy_load_fn load, void *arg);

/*
 * The VMM that takes EV on route R, whose VMM is a group (R->group not
 * NULL; EXCLUDE as router_resolve gave it): the selected member's id. When
 * no member is eligible: R's fallback (unless it is EXCLUDE), else the main
 * VMM, whose built-in default handles the event; that is logged once per
 * route and table, and an event handed on (EXCLUDE set) is then flagged
 * VMMUX_EVF_UNROUTED, as router_resolve flags one it would send back.
 * R without a group: R->vmm.
 */
uint16_t policy_pick(const struct route *r, struct vmmux_event *ev, uint16_t exclude,
		     policy_load_fn load, void *arg);

#endif
