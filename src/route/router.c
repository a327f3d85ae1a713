/*
 * router.c: the published routing table (liburcu, QSBR flavour) and the
 * routing decision (see router.h).
 *
 * Readers: router_current() is one rcu_dereference; router_resolve() is a few
 * array loads or a binary search. Neither takes a lock nor makes a system
 * call. Writers: router_publish() attaches statistics, swaps the pointer
 * with one atomic exchange under the writers' mutex and hands the old table
 * to call_rcu (deferred reclamation): no writer ever waits for readers.
 */
#include "route/router.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <urcu-qsbr.h>

#include "event/event.h"
#include "stats/stats.h"

/*
 * ThreadSanitizer cannot see liburcu's ordering (inline assembly and an
 * uninstrumented library), so in a TSan build the router tells it what QSBR
 * guarantees, and nothing more: a table's publication happens before any
 * read of it (release at the exchange, acquire in router_current); every
 * reader's quiescent or offline state happens before the reclamation of
 * what it may have read (release on gp_sync, acquire in reclaim); a retired
 * table's hand-off to call_rcu happens before its callback. Compiled out of
 * every other build.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#define TSAN_RELEASE(a) __tsan_release((void *)(a))
#else
#define TSAN_ACQUIRE(a) ((void)(a))
#define TSAN_RELEASE(a) ((void)(a))
#endif
static char gp_sync; /* TSan's stand-in for a grace period */

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

/* A table waiting for its grace period (call_rcu), then freed. */
struct retired_table {
	struct rcu_head head;
	struct route_table *t;
};

static void reclaim(struct rcu_head *head)
{
	struct retired_table *rt = caa_container_of(head, struct retired_table, head);
	TSAN_ACQUIRE(rt);
	TSAN_ACQUIRE(&gp_sync);
	route_table_free(rt->t);
	free(rt);
	atomic_fetch_sub(&gp_waiters, 1);
}

/*
 * Hand OLD to liburcu's call_rcu thread, which frees it after a grace
 * period; nobody waits for that. Readers that block online (vCPUs) are told
 * (gp_waiters, sequentially consistent: a vCPU that clears immediate_exit
 * and then misses the count is kicked out of its next KVM_RUN) and kicked,
 * so that they run offline until the table is freed. The caller is a
 * registered reader (online for the call, as call_rcu requires).
 */
static void retire(struct route_table *old)
{
	if (old == NULL)
		return;
	struct retired_table *rt = malloc(sizeof(*rt));
	atomic_fetch_add(&gp_waiters, 1);
	void (*kick)(void) = atomic_load(&kick_readers);
	if (kick)
		kick();
	if (rt == NULL) {
		/* no memory for the record: wait here instead (never expected) */
		synchronize_rcu();
		route_table_free(old);
		atomic_fetch_sub(&gp_waiters, 1);
		return;
	}
	rt->t = old;
	TSAN_RELEASE(rt);
	call_rcu(&rt->head, reclaim);
}

static void attach_stats(struct route_table *t)
{
	for (size_t i = 0; i < t->nroutes; i++)
		t->routes[i].stats = stats_route(t->routes[i].spec.text);
}

/* Whether this thread is a registered reader (router_thread_register). */
static __thread bool registered;

/*
 * The writers' mutex is held only for the exchange (no grace period under
 * it), so an online reader may take it. call_rcu wants its caller registered
 * and online: a registered thread that is offline comes online for the
 * call; an unregistered one (set-up, tests) registers for it.
 */
static int writer_enter(void)
{
	if (!registered) {
		rcu_register_thread();
		return 2;
	}
	if (rcu_read_ongoing())
		return 0;
	rcu_thread_online();
	return 1;
}

static void writer_leave(int how)
{
	if (how != 0)
		TSAN_RELEASE(&gp_sync);
	if (how == 2)
		rcu_unregister_thread();
	else if (how == 1)
		rcu_thread_offline();
}

void router_init(struct route_table *t)
{
	if (t == NULL)
		return;
	int how = writer_enter();
	attach_stats(t);
	pthread_mutex_lock(&writer_lock);
	struct route_table *old = rcu_dereference(current_table);
	t->generation = old ? old->generation + 1 : 1;
	TSAN_RELEASE(t);
	old = rcu_xchg_pointer(&current_table, t);
	pthread_mutex_unlock(&writer_lock);
	retire(old); /* init called twice: treat it as a publish */
	writer_leave(how);
}

void router_publish(struct route_table *t)
{
	if (t == NULL)
		return;
	int how = writer_enter();
	attach_stats(t);
	pthread_mutex_lock(&writer_lock);
	struct route_table *old = rcu_dereference(current_table);
	t->generation = old ? old->generation + 1 : 1;
	TSAN_RELEASE(t);
	old = rcu_xchg_pointer(&current_table, t);
	pthread_mutex_unlock(&writer_lock);
	retire(old);
	writer_leave(how);
}

struct reclaimer_job {
	struct rcu_head head;
	void (*fn)(void);
};

static void reclaimer_job_run(struct rcu_head *h)
{
	struct reclaimer_job *j = caa_container_of(h, struct reclaimer_job, head);
	j->fn();
}

void router_reclaimer_run(void (*fn)(void))
{
	static struct reclaimer_job job;
	job.fn = fn;
	int how = writer_enter();
	call_rcu(&job.head, reclaimer_job_run);
	writer_leave(how);
	bool online = registered && rcu_read_ongoing();
	if (online)
		rcu_thread_offline();
	rcu_barrier(); /* JOB has run */
	if (online)
		rcu_thread_online();
}

void router_fini(void)
{
	/* the tables retired so far are freed first (no reader runs any more) */
	rcu_barrier();
	pthread_mutex_lock(&writer_lock);
	struct route_table *old = rcu_xchg_pointer(&current_table, NULL);
	pthread_mutex_unlock(&writer_lock);
	route_table_free(old);
}

const struct route_table *router_current(void)
{
	struct route_table *t = rcu_dereference(current_table);
	TSAN_ACQUIRE(t);
	return t;
}

struct route_target router_resolve(const struct route_table *t, struct vmmux_event *ev)
{
	uint16_t ri;
	/* A device event a VMM raised is a copy of one it served (grants.h). */
	bool handed_on = ev->src_kind == VMMUX_SRC_VMM && event_is_device(ev->type);
	if (ev->src_kind == VMMUX_SRC_VMM && t->nsourced &&
	    (ri = route_lookup_sourced(t, ev)) != ROUTE_NONE) {
		const struct route *r = &t->routes[ri];
		return (struct route_target){
		    .vmm = r->vmm,
		    .route = ri,
		    .generation = t->generation,
		    .r = r,
		    /* a from= route's group never holds its source (spec.c); kept
		     * for the policy all the same */
		    .exclude =
			handed_on && r->vmm == VMM_ID_GROUP ? ev->src_id : (uint16_t)VMM_ID_NONE,
		};
	}
	if (handed_on) {
		/* A copy travels only by the routes keyed by its source: without
		 * one, the main VMM's built-in handling of copies (dropped), never
		 * the device VMM that the routes without from= name. */
		ri = t->type_route[ev->type];
		ev->flags |= VMMUX_EVF_UNROUTED;
		return (struct route_target){
		    .vmm = VMM_ID_MAIN,
		    .route = ri,
		    .generation = t->generation,
		    .r = &t->routes[ri],
		    .exclude = VMM_ID_NONE,
		};
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
	struct route_target rt = {
	    .vmm = vmm,
	    .route = ri,
	    .generation = t->generation,
	    .r = r,
	    .exclude = VMM_ID_NONE,
	};
	return rt;
}

void router_thread_register(void)
{
	rcu_register_thread();
	registered = true;
}

void router_thread_unregister(void)
{
	TSAN_RELEASE(&gp_sync);
	registered = false;
	rcu_unregister_thread();
}

void router_thread_offline(void)
{
	TSAN_RELEASE(&gp_sync);
	rcu_thread_offline();
}

void router_thread_online(void)
{
	rcu_thread_online();
}

bool router_wait_begin(void)
{
	bool was_online = rcu_read_ongoing();
	if (was_online) {
		TSAN_RELEASE(&gp_sync);
		rcu_thread_offline();
	}
	return was_online;
}

void router_wait_end(bool was_online)
{
	if (was_online)
		rcu_thread_online();
}

void router_quiescent(void)
{
	TSAN_RELEASE(&gp_sync);
	rcu_quiescent_state();
}
