/*
 * router.c: the published routing table (liburcu, QSBR flavour) and the
 * routing decision (see router.h).
 *
 * Readers: router_current() is one rcu_dereference; router_resolve() is a few
 * array loads or a binary search. Neither takes a lock nor makes a system
 * call. Writers: router_publish() attaches statistics, swaps the pointer
 * with one atomic exchange under the writers' mutex, waits for a grace
 * period outside the mutex and frees the old table.
 */
#include "route/router.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <urcu-qsbr.h>

#include "event/event.h"
#include "stats/stats.h"

static struct route_table *current_table;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
/* Writers between their exchange and the end of their grace period. */
static _Atomic unsigned gp_waiters;
static void (*_Atomic kick_readers)(void);

bool router_gp_pending(void)
{
	return atomic_load(&gp_waiters) != 0;
}

void router_set_kick(void (*kick)(void))
{
	atomic_store(&kick_readers, kick);
}

/*
 * Wait for a grace period. Readers that block online (vCPUs) are told first
 * (gp_waiters, sequentially consistent: a vCPU that clears immediate_exit
 * and then misses the count is kicked out of its next KVM_RUN) and kicked,
 * so that they come back and block offline until the wait ends.
 */
static void wait_grace_period(void)
{
	atomic_fetch_add(&gp_waiters, 1);
	void (*kick)(void) = atomic_load(&kick_readers);
	if (kick)
		kick();
	synchronize_rcu();
	atomic_fetch_sub(&gp_waiters, 1);
}

static void attach_stats(struct route_table *t)
{
	for (size_t i = 0; i < t->nroutes; i++)
		t->routes[i].stats = stats_route(t->routes[i].spec.text);
}

/*
 * A registered thread that is online must not block on the writers' mutex or
 * wait for a grace period while online: another writer's synchronize_rcu()
 * would wait for it forever. It goes offline for the duration of the update
 * (it holds no table pointer across router_publish, per router.h).
 */
static bool writer_enter(void)
{
	bool was_online = rcu_read_ongoing();
	if (was_online)
		rcu_thread_offline();
	return was_online;
}

static void writer_leave(bool was_online)
{
	if (was_online)
		rcu_thread_online();
}

void router_init(struct route_table *t)
{
	if (t == NULL)
		return;
	bool was_online = writer_enter();
	attach_stats(t);
	pthread_mutex_lock(&writer_lock);
	struct route_table *old = rcu_dereference(current_table);
	t->generation = old ? old->generation + 1 : 1;
	old = rcu_xchg_pointer(&current_table, t);
	pthread_mutex_unlock(&writer_lock);
	if (old != NULL) { /* init called twice: treat it as a publish */
		wait_grace_period();
		route_table_free(old);
	}
	writer_leave(was_online);
}

void router_publish(struct route_table *t)
{
	if (t == NULL)
		return;
	bool was_online = writer_enter();
	attach_stats(t);
	pthread_mutex_lock(&writer_lock);
	struct route_table *old = rcu_dereference(current_table);
	t->generation = old ? old->generation + 1 : 1;
	old = rcu_xchg_pointer(&current_table, t);
	pthread_mutex_unlock(&writer_lock);
	wait_grace_period();
	route_table_free(old);
	writer_leave(was_online);
}

void router_fini(void)
{
	pthread_mutex_lock(&writer_lock);
	struct route_table *old = rcu_xchg_pointer(&current_table, NULL);
	pthread_mutex_unlock(&writer_lock);
	route_table_free(old);
}

const struct route_table *router_current(void)
{
	return rcu_dereference(current_table);
}

struct route_target router_resolve(const struct route_table *t, struct vmmux_event *ev)
{
	uint16_t ri;
	if (ev->src_kind == VMMUX_SRC_VMM && t->nsourced &&
	    (ri = route_lookup_sourced(t, ev)) != ROUTE_NONE) {
		const struct route *r = &t->routes[ri];
		return (struct route_target){r->vmm, ri, t->generation, r, VMM_ID_NONE};
	}
	if (ev->type == VMMUX_EV_IO) {
		ri = ev->key <= 0xffff ? t->port[ev->key] : ROUTE_NONE;
		bool hyper_out =
		    (ev->flags & (VMMUX_EVF_WRITE | VMMUX_EVF_STRING)) == VMMUX_EVF_WRITE &&
		    ev->size == 4;
		if (hyper_out && ev->key >= HYPERCALL_PORT_BASE &&
		    ev->key <= HYPERCALL_PORT_BASE + HYPERCALL_MAX &&
		    (ri == ROUTE_NONE ? true : t->routes[ri].spec.kind == ROUTE_HYPERCALL)) {
			ev->type = VMMUX_EV_HYPERCALL;
			ev->key -= HYPERCALL_PORT_BASE;
		}
	} else {
		ri = route_lookup_event(t, ev);
	}
	if (ri == ROUTE_NONE) {
		/* An event of a type outside the enumeration (refused upstream)
		 * still gets a route: the main VMM's, through the fault type's. */
		unsigned ty = ev->type < VMMUX_EV__COUNT ? ev->type : VMMUX_EV_FAULT;
		ri = t->type_route[ty];
		/* Unrouted: only the built-in type default (no type: route) applies. */
		if (t->routes[ri].flags & ROUTE_FLAG_IMPLICIT)
			ev->flags |= VMMUX_EVF_UNROUTED;
	}
	const struct route *r = &t->routes[ri];
	uint16_t vmm = ev->type < VMMUX_EV__COUNT ? r->vmm : (uint16_t)VMM_ID_MAIN;
	/* An event a VMM hands on never comes back to it: without a from=
	 * route for it, the main VMM's built-in default takes it; a group's
	 * policy skips it. */
	bool handed_on = ev->src_kind == VMMUX_SRC_VMM && event_is_device(ev->type);
	if (handed_on && vmm == ev->src_id) {
		vmm = VMM_ID_MAIN;
		ev->flags |= VMMUX_EVF_UNROUTED;
	}
	struct route_target rt = {
	    .vmm = vmm,
	    .route = ri,
	    .generation = t->generation,
	    .r = r,
	    .exclude = handed_on && vmm == VMM_ID_GROUP ? ev->src_id : (uint16_t)VMM_ID_NONE,
	};
	return rt;
}

void router_thread_register(void)
{
	rcu_register_thread();
}

void router_thread_unregister(void)
{
	rcu_unregister_thread();
}

void router_thread_offline(void)
{
	rcu_thread_offline();
}

void router_thread_online(void)
{
	rcu_thread_online();
}

void router_quiescent(void)
{
	rcu_quiescent_state();
}
