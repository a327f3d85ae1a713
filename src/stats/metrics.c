/*
 * metrics.c: the metrics of a running machine as JSON (metrics.h).
 *
 * Counts come from the statistics' histograms (relaxed atomic loads, no
 * lock: the event path is never held up by a reader). The previous sample
 * of each object is kept here: per event type and per VMM id in arrays, per
 * route in an array sorted by the address of its statistics record (a
 * record lives for the whole run and is unique per canonical spec text, so
 * a route keeps its history across table updates that keep its text).
 */
#include "stats/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "route/router.h"
#include "route/spec.h"
#include "vmm/vmm.h"

struct route_prev {
	const struct route_stats *rs;
	uint64_t count;
};

static struct {
	pthread_mutex_t lock;
	bool have_src;
	struct metrics_vmm_source src;
	uint64_t start_ns; /* metrics_start */
	uint64_t prev_ns;  /* the previous sample (start_ns before the first) */
	uint64_t type_prev[VMMUX_EV__COUNT];
	uint64_t vmm_prev[VMM_MAX];
	struct route_prev *routes; /* sorted by rs */
	size_t nroutes;
} M = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void forget(void)
{
	memset(M.type_prev, 0, sizeof(M.type_prev));
	memset(M.vmm_prev, 0, sizeof(M.vmm_prev));
	free(M.routes);
	M.routes = NULL;
	M.nroutes = 0;
}

void metrics_start(const struct metrics_vmm_source *src)
{
	pthread_mutex_lock(&M.lock);
	forget();
	M.have_src = src != NULL;
	if (src != NULL)
		M.src = *src;
	M.start_ns = M.prev_ns = stats_now_ns();
	pthread_mutex_unlock(&M.lock);
}

void metrics_stop(void)
{
	pthread_mutex_lock(&M.lock);
	forget();
	M.have_src = false;
	memset(&M.src, 0, sizeof(M.src));
	M.start_ns = M.prev_ns = 0;
	pthread_mutex_unlock(&M.lock);
}

/* Events per second between a count of PREV and one of NOW over DT_S; a
 * count that went down (statistics reset) gives 0. */
static double rate(uint64_t now, uint64_t prev, double dt_s)
{
	return now > prev && dt_s > 0 ? (double)(now - prev) / dt_s : 0.0;
}

/* Set KEY of OBJ to a new value; false when memory is short. */
static bool put(json_t *obj, const char *key, json_t *v)
{
	return v != NULL && json_object_set_new(obj, key, v) == 0;
}

static bool put_u64(json_t *obj, const char *key, uint64_t v)
{
	return put(obj, key, json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? INT64_MAX : v)));
}

/* The latency fields of H (COUNT samples; H may be NULL when COUNT is 0),
 * into OBJ. */
static bool put_latency(json_t *obj, const struct hist *h, uint64_t count)
{
	uint64_t p50 = count ? hist_percentile(h, 50) : 0;
	uint64_t p99 = count ? hist_percentile(h, 99) : 0;
	return put_u64(obj, "latency_p50_ns", p50) && put_u64(obj, "latency_p99_ns", p99) &&
	       put_u64(obj, "latency_max_ns", count ? ld(&h->max_ns) : 0);
}

static int cmp_route_prev(const void *a, const void *b)
{
	const struct route_prev *x = a, *y = b;
	return x->rs < y->rs ? -1 : x->rs > y->rs;
}

static uint64_t route_prev_count(const struct route_stats *rs)
{
	struct route_prev key = {rs, 0};
	const struct route_prev *p =
	    M.nroutes ? bsearch(&key, M.routes, M.nroutes, sizeof(key), cmp_route_prev) : NULL;
	return p ? p->count : 0;
}

static const char *vmm_label(uint16_t id, char *nbuf, size_t nlen, char *where, size_t wlen)
{
	where[0] = '\0';
	const char *n = M.have_src && M.src.name ? M.src.name(id, where, wlen) : NULL;
	where[wlen - 1] = '\0';
	if (n == NULL) {
		snprintf(nbuf, nlen, "vmm%u", (unsigned)id);
		n = nbuf;
	}
	return n;
}

static bool types_json(json_t *root, double dt_s, uint64_t *total, uint64_t *unrouted_total,
		       uint64_t *now_counts)
{
	json_t *types = json_object();
	if (!put(root, "types", types))
		return false;
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		const struct hist *h = stats_type_hist(ty);
		uint64_t c = ld(&h->count);
		uint64_t u = stats_unrouted(ty);
		now_counts[ty] = c;
		*total += c;
		*unrouted_total += u;
		json_t *o = json_object();
		if (!put(types, event_type_name(ty), o) || !put_u64(o, "count", c) ||
		    !put(o, "rate_per_s", json_real(rate(c, M.type_prev[ty], dt_s))) ||
		    !put_latency(o, h, c) || !put_u64(o, "unrouted", u))
			return false;
	}
	return true;
}

/* The routes of the published table; *NEXT gets their samples (sorted),
 * to replace the previous ones once everything succeeded. */
static bool routes_json(json_t *root, double dt_s, struct route_prev **next, size_t *nnext)
{
	json_t *routes = json_array();
	if (!put(root, "routes", routes))
		return false;
	const struct route_table *t = router_current();
	if (t == NULL || t->nroutes == 0)
		return true;
	struct route_prev *v = calloc(t->nroutes, sizeof(*v));
	if (v == NULL)
		return false;
	*next = v;
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct route *r = &t->routes[i];
		const struct route_stats *rs = r->stats;
		uint64_t c = rs ? ld(&rs->lat.count) : 0;
		char nbuf[32], where[64];
		json_t *o = json_object();
		if (json_array_append_new(routes, o) != 0 ||
		    !put(o, "spec", json_string(rs ? rs->spec : r->spec.text)) ||
		    !put(
			o, "vmm",
			json_string(vmm_label(r->vmm, nbuf, sizeof(nbuf), where, sizeof(where)))) ||
		    !put(o, "implicit", json_boolean(r->flags & ROUTE_FLAG_IMPLICIT)) ||
		    !put_u64(o, "count", c) ||
		    !put(o, "rate_per_s", json_real(rs ? rate(c, route_prev_count(rs), dt_s) : 0)))
			return false;
		if (!put_latency(o, rs ? &rs->lat : NULL, c))
			return false;
		if (rs != NULL)
			v[(*nnext)++] = (struct route_prev){rs, c};
	}
	qsort(v, *nnext, sizeof(*v), cmp_route_prev);
	return true;
}

static bool vmms_json(json_t *root, double dt_s, uint64_t *now_counts)
{
	json_t *vmms = json_array();
	if (!put(root, "vmms", vmms))
		return false;
	size_t n = M.have_src && M.src.count && M.src.get ? M.src.count() : 0;
	for (size_t id = 0; id < n && id < VMM_MAX; id++) {
		const struct vmm *v = M.src.get((uint16_t)id);
		if (v == NULL)
			continue;
		const struct hist *h = stats_vmm_hist((uint16_t)id);
		uint64_t c = ld(&h->count);
		now_counts[id] = c;
		char nbuf[32], where[64];
		const char *name =
		    vmm_label((uint16_t)id, nbuf, sizeof(nbuf), where, sizeof(where));
		struct stats_vmm_extra x = {0, 0, 0};
		if (M.src.extra)
			M.src.extra((uint16_t)id, &x);
		const struct vmm_load *l = &v->load;
		json_t *o = json_object();
		if (json_array_append_new(vmms, o) != 0 || !put_u64(o, "id", id) ||
		    !put(o, "name", json_string(name)) ||
		    !put(o, "placement",
			 json_string(v->placement == VMM_PARALLEL ? "parallel" : "in-process")) ||
		    !put(o, "where", json_string(where)) || !put_u64(o, "requests_total", c) ||
		    !put(o, "rate_per_s", json_real(rate(c, M.vmm_prev[id], dt_s))) ||
		    !put_u64(o, "requests_inflight",
			     atomic_load_explicit(&l->inflight, memory_order_relaxed)) ||
		    !put_u64(o, "service_time_ewma_ns",
			     atomic_load_explicit(&l->ewma_ns, memory_order_relaxed)) ||
		    !put_u64(o, "cpu_time_ns",
			     atomic_load_explicit(&l->cpu_ns, memory_order_relaxed)) ||
		    !put_u64(o, "cpu_permille",
			     atomic_load_explicit(&l->cpu_permille, memory_order_relaxed)) ||
		    !put(o, "healthy",
			 json_boolean(atomic_load_explicit(&l->healthy, memory_order_relaxed))) ||
		    !put_u64(o, "restarts", x.restarts) || !put_latency(o, h, c))
			return false;
	}
	return true;
}

json_t *metrics_get(void)
{
	pthread_mutex_lock(&M.lock);
	uint64_t now = stats_now_ns();
	if (M.start_ns == 0) /* never started: measure from now on */
		M.start_ns = M.prev_ns = now;
	double dt_s = now > M.prev_ns ? (double)(now - M.prev_ns) / 1e9 : 0;
	double up_s = now > M.start_ns ? (double)(now - M.start_ns) / 1e9 : 0;
	const struct route_table *t = router_current();

	uint64_t total = 0, unrouted_total = 0;
	uint64_t type_now[VMMUX_EV__COUNT] = {0};
	uint64_t vmm_now[VMM_MAX] = {0};
	struct route_prev *next = NULL;
	size_t nnext = 0;
	json_t *root = json_object();
	/* The totals come first in the object; their values once known. */
	bool ok = root != NULL && put(root, "uptime_s", json_real(up_s)) &&
		  put(root, "interval_s", json_real(dt_s)) &&
		  put_u64(root, "generation", t ? t->generation : 0) &&
		  put_u64(root, "events_total", 0) &&
		  put(root, "events_rate_per_s", json_real(0)) &&
		  put_u64(root, "unrouted_total", 0) &&
		  types_json(root, dt_s, &total, &unrouted_total, type_now) &&
		  routes_json(root, dt_s, &next, &nnext) && vmms_json(root, dt_s, vmm_now);
	if (ok) {
		uint64_t prev_total = 0;
		for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++)
			prev_total += M.type_prev[ty];
		ok = put_u64(root, "events_total", total) &&
		     put(root, "events_rate_per_s", json_real(rate(total, prev_total, dt_s))) &&
		     put_u64(root, "unrouted_total", unrouted_total);
	}
	if (!ok) {
		json_decref(root);
		free(next);
		pthread_mutex_unlock(&M.lock);
		return NULL;
	}
	/* This sample becomes the previous one. */
	memcpy(M.type_prev, type_now, sizeof(type_now));
	memcpy(M.vmm_prev, vmm_now, sizeof(vmm_now));
	free(M.routes);
	M.routes = next;
	M.nroutes = nnext;
	M.prev_ns = now;
	pthread_mutex_unlock(&M.lock);
	return root;
}
