/*
 * router.h: the published routing table and the routing decision.
 *
 * Readers (vCPU threads, the main loop, anything that routes) read the
 * current table through router_current() without a lock; a writer builds a
 * new table, router_publish() swaps it in with one atomic store, and the old
 * table is freed (by liburcu's call_rcu thread; no writer waits for it) once
 * every registered reader thread has passed a quiescent state (liburcu's
 * QSBR flavour). A reader thread must:
 *   - call router_thread_register() once before its first read and
 *     router_thread_unregister() before it exits;
 *   - call router_thread_offline() before it blocks for an unbounded time
 *     (KVM_RUN, poll) and router_thread_online() afterwards, so that a halted
 *     guest never stalls an update; or, where that costs too much on every
 *     pass (a vCPU: three memory fences per exit), stay online, announce a
 *     quiescent state before each block (router_quiescent), and go offline
 *     only while router_gp_pending() says a writer waits, the writer making
 *     sure with the kick of router_set_kick that the block ends;
 *   - not keep a table or route pointer across an offline period: a thread
 *     that waits (for a parallel VMM, a lock held by a delivery) copies the
 *     route fields it needs and waits between router_wait_begin() and
 *     router_wait_end().
 */
#ifndef VMMUX_ROUTE_ROUTER_H
#define VMMUX_ROUTE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "route/table.h"
#include "util/err.h"

/* The routing decision for one event. */
struct route_target {
	uint16_t vmm;	       /* VMM id that handles the event; VMM_ID_GROUP when
				* r->group is to pick it (policy_pick, at dispatch) */
	uint16_t route;	       /* index of r in the table */
	uint64_t generation;   /* the table generation that decided */
	const struct route *r; /* the keyed route, or the type's route */
	uint16_t exclude;      /* with VMM_ID_GROUP: the member the event must not
				* go to (the VMM that handed it on), or VMM_ID_NONE */
};

/* Publish the first table; must be called before any reader runs. */
void router_init(struct route_table *t);

/*
 * Replace the current table with T (ownership passes to the router; stats of
 * routes whose spec text is unchanged carry over). Never waits for readers:
 * the old table is freed after a grace period by liburcu's call_rcu thread.
 * T's generation is set to the old one plus 1. The caller is a registered
 * reader thread (online or offline); writers are serialised.
 */
void router_publish(struct route_table *t);

/* Free the last table at exit (no reader may run any more). */
void router_fini(void);

/*
 * Run FN once on liburcu's reclamation thread (call_rcu's, created now if
 * it does not exist yet), after a grace period, and return when it has
 * run. The caller is unregistered or registered (online or offline), and
 * holds no read-side section that FN's grace period would wait for.
 */
void router_reclaimer_run(void (*fn)(void));

/* The current table; only inside an online read-side period. */
const struct route_table *router_current(void);

/*
 * Decide who handles EV, in table T:
 *   - an IO event whose port has a hypercall route, or has no route and lies
 *     in 0x500-0x5ff, and that is a non-string 32-bit OUT, becomes a
 *     HYPERCALL event (type, key = port - 0x500; value stays EAX, the
 *     argument's GPA); other accesses to a hypercall route's port stay IO
 *     events and go to that route's VMM;
 *   - a keyed route match gives its VMM; otherwise the type default applies
 *     and the route is the type's (implicit or type:) route; ev->flags gets
 *     VMMUX_EVF_UNROUTED when that route is the implicit one (no route names
 *     the event at all).
 *   - an event a VMM raised is first looked up among the routes keyed by
 *     source (from=VMM, route_lookup_sourced; when the route's VMM is a
 *     group, vmm is VMM_ID_GROUP and, for a copy, exclude names the
 *     source); an event it hands on (a device type: io, mmio, msr, hlt,
 *     hypercall, shutdown: a copy of one it served, grants.h) travels only
 *     by those routes: without one it goes to the main VMM, flagged
 *     VMMUX_EVF_UNROUTED, through its type's route (which the main VMM
 *     drops: main_vmm.h), never to the VMM of a route without from=, and
 *     so never back to the VMM that handed it on (from= never names its
 *     own route's VMM, nor a member of its group: spec.h).
 * The result's r is never NULL.
 */
struct route_target router_resolve(const struct route_table *t, struct vmmux_event *ev);

void router_thread_register(void);
void router_thread_unregister(void);
void router_thread_offline(void);
void router_thread_online(void);
/* Announce a quiescent state without going offline. */
void router_quiescent(void);
/* Around a wait that may be long: offline when the thread was online (the
 * result, for router_wait_end); a no-op for an offline or unregistered
 * thread. */
bool router_wait_begin(void);
void router_wait_end(bool was_online);

/*
 * Whether a retired table waits for its grace period (from router_publish
 * until call_rcu frees it). One atomic load.
 */
bool router_gp_pending(void);

/*
 * KICK, called by every writer after router_gp_pending() became true (its
 * table retired), must make each reader that blocks
 * while online (a vCPU in KVM_RUN) return to its loop, where it sees
 * router_gp_pending() and blocks offline until the writer is done (vCPUs:
 * vcpu_kick, immediate_exit and a signal). NULL: no such readers. The kick
 * is a hint that hastens the free; a missed one only delays it.
 */
void router_set_kick(void (*kick)(void));

#endif
