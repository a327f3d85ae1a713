/*
 * live.c: changing a running machine (live.h).
 */
#include "vmm/live.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/router.h"
#include "stats/stats.h"
#include "util/log.h"
#include "vm/ioregion.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"

#define SWAP_DRAIN_NS	 2000000000ull /* how long a swap waits for in-flight events */
#define STATE_MAX	 8192
#define PLATFORM_WAIT_NS 1000000000ull /* platform.raise waits for its delivery */

/* The live route set: the specs the published table was built from. */
static struct {
	struct route_spec *specs;
	size_t n;
} set;

/* Configs of VMMs swapped in (the registry keeps pointers into them). */
static struct vmm_config *swapped[VMM_MAX];
static size_t nswapped;

int live_op_parse(const char *s)
{
	if (strcmp(s, "add") == 0)
		return LIVE_ADD;
	if (strcmp(s, "delete") == 0)
		return LIVE_DELETE;
	if (strcmp(s, "replace") == 0)
		return LIVE_REPLACE;
	return -1;
}

int live_init(const struct route_spec *routes, size_t n, struct errbuf *e)
{
	set.specs = calloc(n ? n : 1, sizeof(*set.specs));
	if (set.specs == NULL)
		return err_set(e, "out of memory");
	memcpy(set.specs, routes, n * sizeof(*routes));
	set.n = n;
	return 0;
}

void live_fini(void)
{
	free(set.specs);
	set.specs = NULL;
	set.n = 0;
	for (size_t i = 0; i < nswapped; i++) {
		config_vmm_clear(swapped[i]);
		free(swapped[i]);
	}
	nswapped = 0;
}

/* Same kind, key range and source: the route a delete or replace names. */
static bool same_key(const struct route_spec *a, const struct route_spec *b)
{
	bool af = a->opts & ROUTE_OPT_FROM, bf = b->opts & ROUTE_OPT_FROM;
	return a->kind == b->kind && a->lo == b->lo && a->hi == b->hi && af == bf &&
	       (!af || strcmp(a->from, b->from) == 0);
}

/* Parse a delete's target: a whole spec, or "KIND:KEY[;from=VMM]". */
static int parse_key(const char *text, struct route_spec *out, struct errbuf *e)
{
	if (route_spec_parse(text, out, NULL) == 0)
		return 0;
	/* no "=VMM": give the parser a placeholder VMM */
	char buf[ROUTE_SPEC_TEXT_MAX + 8];
	const char *semi = strchr(text, ';');
	size_t keylen = semi ? (size_t)(semi - text) : strlen(text);
	int n = snprintf(buf, sizeof(buf), "%.*s=main%s", (int)keylen, text, semi ? semi : "");
	if (n < 0 || (size_t)n >= sizeof(buf))
		return err_set(e, "'%s' is too long", text);
	if (route_spec_parse(buf, out, e) < 0)
		return err_prefix(e, "'%s'", text);
	return 0;
}

static int apply_one(struct route_spec **specs, size_t *n, size_t *cap, const struct live_change *c,
		     struct errbuf *e)
{
	struct route_spec s;
	int rc =
	    c->op == LIVE_DELETE ? parse_key(c->spec, &s, e) : route_spec_parse(c->spec, &s, e);
	if (rc < 0)
		return -1;
	size_t at = SIZE_MAX;
	for (size_t i = 0; i < *n && at == SIZE_MAX; i++)
		if (same_key(&(*specs)[i], &s))
			at = i;
	switch (c->op) {
	case LIVE_ADD:
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 16;
			struct route_spec *p = realloc(*specs, ncap * sizeof(*p));
			if (p == NULL)
				return err_set(e, "out of memory");
			*specs = p;
			*cap = ncap;
		}
		(*specs)[(*n)++] = s; /* an overlap is found when the table is built */
		return 0;
	case LIVE_DELETE:
		if (at == SIZE_MAX)
			return err_set(e, "no route '%s' to delete", c->spec);
		memmove(&(*specs)[at], &(*specs)[at + 1], (*n - at - 1) * sizeof(s));
		(*n)--;
		return 0;
	case LIVE_REPLACE:
		if (at == SIZE_MAX)
			return err_set(e, "no route with the key of '%s' to replace", c->spec);
		(*specs)[at] = s;
		return 0;
	}
	return err_set(e, "unknown operation");
}

/* What vmmux run checks of routes that only the whole machine knows. */
static int check_machine(const struct route_table *t, struct errbuf *e)
{
	struct route_range ranges[16];
	if (route_table_msr_ranges(t, ranges, 16, e) < 0)
		return -1;
	if (ioregion_check(t, e) < 0) /* routes compiled into KVM */
		return -1;
	if (machine_vm()->irqchip && t->routes[t->type_route[VMMUX_EV_HLT]].vmm != VMM_ID_MAIN)
		return err_set(e,
			       "route '%s': HLT is handled inside KVM when the in-kernel irqchip "
			       "is on",
			       t->routes[t->type_route[VMMUX_EV_HLT]].spec.text);
	/* A parallel VMM that drives a line through an irqfd keeps doing so:
	 * its interrupts cannot be moved elsewhere without restarting it. */
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		for (unsigned line = 0; v && v->p && line < 256; line++) {
			bool wire, level;
			if (!grant_irq(&v->grants, line, &wire, &level) || !wire ||
			    !pvmm_irq_wired(v, line))
				continue;
			struct vmmux_event ev = {.type = VMMUX_EV_IRQ,
						 .key = line,
						 .value = 1,
						 .count = 1,
						 .src_kind = VMMUX_SRC_VMM,
						 .src_id = (uint16_t)id};
			if (router_resolve(t, &ev).vmm != VMM_ID_MAIN)
				return err_set(e,
					       "vmm '%s' drives IRQ %u through an irqfd: its "
					       "interrupts go to KVM until it is restarted",
					       v->name, line);
		}
	}
	return 0;
}

/* Whether tables A and B make the same MSR filter (vm_set_msr_filter):
 * the same ranges, and in them the same MSRs routed. */
static bool same_msr_filter(const struct route_table *a, const struct route_table *b)
{
	struct route_range ra[16], rb[16];
	struct errbuf e;
	int na = route_table_msr_ranges(a, ra, 16, &e);
	int nb = route_table_msr_ranges(b, rb, 16, &e);
	if (na < 0 || nb < 0 || na != nb)
		return false;
	for (int i = 0; i < na; i++) {
		if (ra[i].lo != rb[i].lo || ra[i].hi != rb[i].hi)
			return false;
		for (uint64_t k = ra[i].lo; k <= ra[i].hi; k++)
			if ((route_lookup_msr(a, (uint32_t)k) != ROUTE_NONE) !=
			    (route_lookup_msr(b, (uint32_t)k) != ROUTE_NONE))
				return false;
	}
	return true;
}

int live_routes_apply(const struct live_change *c, size_t n, uint64_t *generation, struct errbuf *e)
{
	size_t wn = set.n, cap = set.n;
	struct route_spec *work = malloc((cap ? cap : 1) * sizeof(*work));
	if (work == NULL)
		return err_set(e, "out of memory");
	memcpy(work, set.specs, set.n * sizeof(*work));
	for (size_t i = 0; i < n; i++) {
		if (apply_one(&work, &wn, &cap, &c[i], e) < 0) {
			free(work);
			return n > 1 ? err_prefix(e, "change %zu", i) : -1;
		}
	}
	struct route_table *t = route_table_build(work, wn, vmm_resolve, NULL, e);
	if (t == NULL || check_machine(t, e) < 0) {
		route_table_free(t);
		free(work);
		return -1;
	}
	bool same_msrs = same_msr_filter(router_current(), t);
	/* One atomic store: every vCPU's next event meets the new table. */
	router_publish(t);
	const struct route_table *now = router_current();
	if (generation)
		*generation = now->generation;
	/* Then what KVM holds of it: an MSR that newly exits finds its route
	 * (unless the filter would not change: the ioctl waits for KVM's own
	 * readers, for nothing). */
	if (!same_msrs && vm_set_msr_filter(machine_vm(), now, e) < 0)
		log_error("routes changed, but %s", e->msg);
	/* And the routes compiled into KVM: removed registrations first, then
	 * the new ones, then the coalesced ring drained (ioregion.h). */
	ioregion_sync(now);
	free(set.specs);
	set.specs = work;
	set.n = wn;
	log_info("routes changed: table generation %llu", (unsigned long long)now->generation);
	return 0;
}

json_t *live_routes_json(void)
{
	const struct route_table *t = router_current();
	json_t *routes = json_array();
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct route *r = &t->routes[i];
		struct vmm *v = vmm_get(r->vmm);
		json_array_append_new(routes,
				      json_pack("{s:s, s:s, s:s, s:b}", "spec", r->spec.text, "vmm",
						v ? v->name : r->spec.vmm, "kind",
						route_kind_name(r->spec.kind), "implicit",
						(r->flags & ROUTE_FLAG_IMPLICIT) != 0));
	}
	return json_pack("{s:I, s:o}", "generation", (json_int_t)t->generation, "routes", routes);
}

static const char *state_name(const struct vmm *v)
{
	if (v->placement == VMM_IN_PROCESS)
		return atomic_load(&v->stopped) ? "stopped" : "in-process";
	if (atomic_load(&v->swapping))
		return "swapping";
	return pvmm_state_name(v);
}

json_t *live_vmms_json(void)
{
	json_t *a = json_array();
	for (size_t id = 0; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v == NULL)
			continue;
		const char *role = v->role ? v->role->name : (id == 0 ? "main" : "external");
		json_t *o = json_pack(
		    "{s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:i, s:b}", "id",
		    (int)id, "name", v->name, "role", role, "placement",
		    v->placement == VMM_PARALLEL ? "parallel" : "main", "state", state_name(v),
		    "pid", (int)pvmm_pid(v), "restarts", (int)pvmm_restarts(v), "requests_inflight",
		    (int)atomic_load(&v->load.inflight), "requests_total",
		    (json_int_t)atomic_load(&v->load.served), "service_time_ewma_ns",
		    (json_int_t)atomic_load(&v->load.ewma_ns), "cpu_time_ns",
		    (json_int_t)atomic_load(&v->load.cpu_ns), "cpu_permille",
		    (int)atomic_load(&v->load.cpu_permille), "healthy",
		    atomic_load(&v->load.healthy) != 0);
		json_array_append_new(a, o);
	}
	return a;
}

/* A deep copy of C, owned by live.c (the registry points into it). */
static struct vmm_config *keep_config(const struct vmm_config *c, struct errbuf *e)
{
	if (nswapped >= VMM_MAX) {
		err_set(e, "too many VMMs added or swapped in at run time (at most %d)", VMM_MAX);
		return NULL;
	}
	struct vmmux_config *tmp = calloc(1, sizeof(*tmp));
	if (tmp == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	config_init(tmp);
	struct vmm_config *out = calloc(1, sizeof(*out));
	if (out == NULL || config_add_vmm(tmp, c, e) < 0) {
		free(out);
		config_free(tmp);
		free(tmp);
		return NULL;
	}
	*out = tmp->vmms[0]; /* take the copied strings over */
	tmp->nvmms = 0;
	config_free(tmp);
	free(tmp);
	swapped[nswapped++] = out;
	return out;
}

/* A VMM described at run time: its windows must fall on guest RAM's pieces
 * (they were cut at start) for a parallel one, and lie inside RAM. */
static int check_new_vmm(const struct vmm_config *c, struct errbuf *e)
{
	const struct guest_mem *m = &machine_vm()->mem;
	for (size_t i = 0; i < c->nwindows; i++) {
		const struct vmm_window *w = &c->windows[i];
		if (!gm_range_ok(m, w->gpa, w->size))
			return err_set(
			    e, "vmm '%s': memory window 0x%llx+0x%llx lies outside guest RAM",
			    c->name, (unsigned long long)w->gpa, (unsigned long long)w->size);
		bool lo = false, hi = false;
		for (unsigned p = 0; p < m->npieces; p++) {
			lo |= m->pieces[p].gpa == w->gpa;
			hi |= m->pieces[p].gpa + m->pieces[p].size == w->gpa + w->size;
		}
		if ((c->placement == VMM_PARALLEL || c->program) && !(lo && hi))
			return err_set(e,
				       "vmm '%s': memory window 0x%llx+0x%llx does not fall on the "
				       "pieces guest RAM was cut into at start (use \"all\" or the "
				       "edges of configured windows)",
				       c->name, (unsigned long long)w->gpa,
				       (unsigned long long)w->size);
	}
	if (strcmp(c->role, "external") == 0 && c->program == NULL)
		return err_set(e, "vmm '%s': role 'external' needs a program", c->name);
	return 0;
}

int live_vmm_add(const struct vmm_config *c, uint16_t *id, struct errbuf *e)
{
	if (vmm_lookup(c->name) != VMM_ID_NONE)
		return err_set(e, "vmm '%s' exists already", c->name);
	struct vmm_config placed = *c;
	const struct vmmux_config *mc = machine_config();
	if (!placed.placement_set && mc && mc->all_parallel)
		placed.placement = VMM_PARALLEL;
	if (check_new_vmm(&placed, e) < 0)
		return -1;
	struct vmm_config *kept = keep_config(&placed, e);
	if (kept == NULL)
		return -1;
	if (vmm_registry_add(kept, id, e) < 0)
		return -1;
	log_info("vmm '%s' added", c->name);
	return 0;
}

static struct vmm *find(const char *name, struct errbuf *e)
{
	uint16_t id = vmm_lookup(name);
	if (id == VMM_ID_NONE) {
		err_set(e, "no VMM named '%s'", name);
		return NULL;
	}
	if (id == VMM_ID_MAIN) {
		err_set(e, "the main VMM cannot be stopped, started or swapped");
		return NULL;
	}
	return vmm_get(id);
}

int live_vmm_stop(const char *name, struct errbuf *e)
{
	struct vmm *v = find(name, e);
	if (v == NULL)
		return -1;
	if (v->placement == VMM_PARALLEL)
		return pvmm_halt(v, e);
	if (atomic_exchange(&v->stopped, true))
		return err_set(e, "vmm '%s' is stopped already", name);
	atomic_store(&v->load.healthy, 0);
	log_info("vmm '%s': stopped", name);
	return 0;
}

int live_vmm_start(const char *name, struct errbuf *e)
{
	struct vmm *v = find(name, e);
	if (v == NULL)
		return -1;
	if (v->placement == VMM_PARALLEL)
		return pvmm_resume(v, e);
	if (!atomic_exchange(&v->stopped, false))
		return err_set(e, "vmm '%s' is running already", name);
	atomic_store(&v->load.healthy, 1);
	log_info("vmm '%s': started", name);
	return 0;
}

int live_vmm_restart(const char *name, struct errbuf *e)
{
	struct vmm *v = find(name, e);
	if (v == NULL)
		return -1;
	if (v->placement == VMM_PARALLEL)
		return pvmm_restart(v, e);
	/* In-process: the role starts over, its guest-visible state kept. */
	static uint8_t state[STATE_MAX];
	pthread_mutex_lock(&v->lock);
	long len = v->role->save ? v->role->save(&v->ctx, state, sizeof(state)) : -1;
	if (v->role->fini)
		v->role->fini(&v->ctx);
	memset(v->priv, 0, v->role->priv_size ? v->role->priv_size : 1);
	int rc = v->role->init ? v->role->init(&v->ctx) : 0;
	if (rc == 0 && len > 0 && v->role->restore)
		rc = v->role->restore(&v->ctx, state, (size_t)len);
	pthread_mutex_unlock(&v->lock);
	atomic_store(&v->stopped, false);
	atomic_store(&v->load.healthy, rc == 0 ? 1u : 0u);
	if (rc < 0)
		return err_set(e, "vmm '%s' failed to start again", name);
	log_info("vmm '%s': restarted", name);
	return 0;
}

/* The guest-visible state of V, as its role exports it. */
static long take_state(struct vmm *v, uint8_t *buf, size_t cap)
{
	if (v->placement == VMM_PARALLEL)
		return pvmm_state_save(v, buf, cap);
	if (v->role->save == NULL)
		return 0;
	pthread_mutex_lock(&v->lock);
	long len = v->role->save(&v->ctx, buf, cap);
	pthread_mutex_unlock(&v->lock);
	return len;
}

static int give_state(struct vmm *v, const uint8_t *buf, size_t len, struct errbuf *e)
{
	if (len == 0)
		return 0;
	if (v->placement == VMM_PARALLEL)
		return pvmm_state_restore(v, buf, len, e);
	if (v->role->restore == NULL)
		return err_set(e, "role '%s' cannot take a state", v->role->name);
	pthread_mutex_lock(&v->lock);
	int rc = v->role->restore(&v->ctx, buf, len);
	pthread_mutex_unlock(&v->lock);
	return rc < 0 ? err_set(e,
				"vmm '%s' refused the state of the instance it replaces "
				"(another role, or another version of its state)",
				v->name)
		      : 0;
}

int live_vmm_swap(const char *name, const struct vmm_config *c, struct errbuf *e)
{
	struct vmm *old = find(name, e);
	if (old == NULL)
		return -1;
	struct vmm_config copy = *c;
	snprintf(copy.name, sizeof(copy.name), "%s", old->name);
	if (check_new_vmm(&copy, e) < 0)
		return -1;
	struct vmm_config *kept = keep_config(&copy, e);
	if (kept == NULL)
		return -1;

	/* 1. The new instance, beside the old one. */
	struct vmm *nw = vmm_create(kept, old->id, e);
	if (nw == NULL)
		return err_prefix(e, "swap of '%s'", name);
	/* 2. Hold the old one's events back; let its in-flight ones finish. */
	if (vmm_swap_begin(old, SWAP_DRAIN_NS) < 0) {
		vmm_swap_end(old);
		vmm_destroy(nw);
		return err_set(e, "swap of '%s': its in-flight events did not finish within 2 s",
			       name);
	}
	/* 3. Nothing more reaches it behind the held-back events: its doorbells
	 * leave KVM (what its process has not read goes to the new one), and
	 * what it raised on its own and nobody took yet is routed. Then its
	 * state, into the new one. */
	ioregion_vmm_quiesce(old);
	if (old->placement == VMM_PARALLEL)
		pvmm_async_handoff(old);
	static uint8_t state[STATE_MAX];
	long len = take_state(old, state, sizeof(state));
	if (len > 0 && nw->role != NULL && nw->role->restore == NULL) {
		/* a role that keeps no state (a sink in place of a monitor): the
		 * old one's has nowhere to go */
		log_info("swap of '%s': role '%s' takes no state; the old instance's is dropped",
			 name, nw->role->name);
		len = 0;
	}
	if (len < 0 || give_state(nw, state, len > 0 ? (size_t)len : 0, e) < 0) {
		ioregion_vmm_unquiesce(old);
		vmm_swap_end(old);
		vmm_destroy(nw);
		if (len < 0)
			return err_set(e, "swap of '%s': its state could not be read", name);
		return err_prefix(e, "swap of '%s'", name);
	}
	/* 4. The new one in its place (same name, same id: the routes that name
	 * it now reach the new instance); the held events go there. */
	vmm_replace(old->id, nw);
	vmm_swap_end(old);
	/* Its doorbells move to the new instance (ioregion.h). */
	ioregion_sync(router_current());
	/* 5. The old one stopped. */
	if (old->placement == VMM_PARALLEL) {
		pvmm_retire(old);	 /* its region is freed with the registry */
		pvmm_async_handoff(old); /* what it raised before it stopped */
	} else if (old->role->fini) {
		/* not while a delivery still holds it (a fallback, a reset that
		 * took it before the replacement): bounded */
		uint64_t until = stats_now_ns() + SWAP_DRAIN_NS;
		bool on = router_wait_begin();
		while (atomic_load(&old->load.inflight) != 0 && stats_now_ns() < until &&
		       !machine_stopping()) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		router_wait_end(on);
		if (atomic_load(&old->load.inflight) != 0) {
			log_warn("vmm '%s': the replaced instance is still in use after 2 s: its "
				 "role is not finalised",
				 name);
		} else {
			pthread_mutex_lock(&old->lock);
			old->role->fini(&old->ctx);
			pthread_mutex_unlock(&old->lock);
		}
	}
	log_info("vmm '%s' swapped for a new instance (%s)", name,
		 kept->program ? kept->program : kept->role);
	return 0;
}

int live_platform(unsigned code, uint64_t value, struct errbuf *e)
{
	if (code >= VMMUX_PLAT__COUNT)
		return err_set(e, "unknown platform event %u", code);
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_PLATFORM;
	ev.key = code;
	ev.value = value;
	ev.count = 1;
	ev.vcpu = VMMUX_NO_VCPU;
	/* Delivered by the dispatcher (it may wait for a parallel VMM); the
	 * answer waits for it up to 1 s, then goes anyway. */
	uint64_t ticket = machine_post_event(&ev);
	if (ticket == 0)
		return err_set(e, "the host's event queue is full (or the run is ending)");
	if (!machine_wait_event(ticket, PLATFORM_WAIT_NS))
		log_info("platform event %u: still being delivered", code);
	return 0;
}
