/*
 * table.c: building, searching and printing a routing table (see table.h).
 *
 * Build order: one route per event type first (the implicit "type:NAME=main"
 * route, or the type: spec that covers the type; a type: range is one route
 * shared by its types), then the keyed specs in the order given. Every
 * keyed spec is inserted into its key space as it comes, so an overlap is
 * reported for the first spec that collides with an earlier one, naming the
 * newcomer first and the lowest key the two share.
 *
 * Key spaces: io and hypercall share the port array (hypercall:N is port
 * 0x500+N); mmio and msr each keep a sorted array of disjoint ranges, built
 * by insertion; exception, platform and request use direct arrays; type:
 * specs fill type_route.
 */
#include "route/table.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A KVM MSR filter range holds KVM_MSR_FILTER_MAX_BITMAP_SIZE (0x600) bytes
 * of bitmap, one bit per MSR. */
#define MSR_FILTER_SPAN (0x600u * 8u)

/* "port 0x3fc", "MSR 0x10", "platform code smi" ... for overlap messages. */
static void key_desc(enum route_kind k, uint64_t v, char *buf, size_t len)
{
	const char *name;
	switch (k) {
	case ROUTE_IO:
	case ROUTE_HYPERCALL:
		if (v >= HYPERCALL_PORT_BASE && v <= HYPERCALL_PORT_BASE + HYPERCALL_MAX)
			snprintf(buf, len, "port 0x%llx (hypercall %llu)", (unsigned long long)v,
				 (unsigned long long)(v - HYPERCALL_PORT_BASE));
		else
			snprintf(buf, len, "port 0x%llx", (unsigned long long)v);
		return;
	case ROUTE_MMIO:
		snprintf(buf, len, "address 0x%llx", (unsigned long long)v);
		return;
	case ROUTE_MSR:
		snprintf(buf, len, "MSR 0x%llx", (unsigned long long)v);
		return;
	case ROUTE_EXCEPTION:
		snprintf(buf, len, "vector %llu", (unsigned long long)v);
		return;
	case ROUTE_PLATFORM:
		name = platform_code_name((unsigned)v);
		snprintf(buf, len, "platform code %s", name ? name : "?");
		return;
	case ROUTE_REQUEST:
		name = request_kind_name((unsigned)v);
		snprintf(buf, len, "request kind %s", name ? name : "?");
		return;
	case ROUTE_TYPE:
		name = event_type_name((unsigned)v);
		snprintf(buf, len, "event type %s", name ? name : "?");
		return;
	default:
		snprintf(buf, len, "key %llu", (unsigned long long)v);
		return;
	}
}

/* A name field of a spec is usable when it is NUL-terminated in place. */
static bool name_field_ok(const char *name)
{
	return memchr(name, '\0', VMMUX_NAME_MAX) != NULL && vmm_name_valid(name);
}

/*
 * The group of a spec built by hand: 1 to ROUTE_GROUP_MAX distinct valid
 * names, a known policy, weights 1..ROUTE_WEIGHT_MAX and other than 1 only
 * for the weighted policy. Sets out->vmm to the first member's name.
 */
static int check_group(const struct route_spec *in, struct route_spec *out, struct errbuf *e)
{
	const struct route_group_spec *g = &in->group;
	const char *kn = route_kind_name(in->kind);
	if (g->n > ROUTE_GROUP_MAX)
		return err_set(e, "route of kind %s: a group of %u members (at most %d)", kn, g->n,
			       ROUTE_GROUP_MAX);
	if ((unsigned)g->policy >= ROUTE_POLICY__COUNT)
		return err_set(e, "route of kind %s: a group of unknown policy %u", kn,
			       (unsigned)g->policy);
	for (unsigned i = 0; i < g->n; i++) {
		if (!name_field_ok(g->member[i]))
			return err_set(e, "route of kind %s: invalid name of group member %u", kn,
				       i + 1);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(g->member[j], g->member[i]) == 0)
				return err_set(
				    e, "route of kind %s: '%s' is a member of its group twice", kn,
				    g->member[i]);
		if (g->weight[i] < 1 || g->weight[i] > ROUTE_WEIGHT_MAX)
			return err_set(
			    e, "route of kind %s: group member '%s' has weight %u (1 to %d)", kn,
			    g->member[i], (unsigned)g->weight[i], ROUTE_WEIGHT_MAX);
		if (g->weight[i] != 1 && g->policy != ROUTE_POLICY_WEIGHTED)
			return err_set(e,
				       "route of kind %s: group member '%s' has a weight, but only "
				       "the weighted policy takes weights",
				       kn, g->member[i]);
	}
	memcpy(out->vmm, g->member[0], sizeof(out->vmm));
	return 0;
}

/*
 * Check a spec that may have been built by hand rather than parsed, and
 * write its canonical text into *out (a copy of *in).
 */
static int check_spec(const struct route_spec *in, struct route_spec *out, struct errbuf *e)
{
	*out = *in;
	if ((unsigned)in->kind >= ROUTE__KINDS)
		return err_set(e, "route of unknown kind %u", (unsigned)in->kind);
	if (in->group.n > 0 && check_group(in, out, e))
		return -1;
	if (in->group.n == 0)
		memset(&out->group, 0, sizeof(out->group));
	if (!name_field_ok(out->vmm))
		return err_set(e, "route of kind %s: invalid VMM name", route_kind_name(in->kind));
	if ((in->opts & ROUTE_OPT_FALLBACK) && !name_field_ok(in->fallback))
		return err_set(e, "route of kind %s to '%s': invalid fallback VMM name",
			       route_kind_name(in->kind), out->vmm);
	if ((in->opts & ROUTE_OPT_FROM) && !name_field_ok(in->from))
		return err_set(e, "route of kind %s to '%s': invalid source VMM name",
			       route_kind_name(in->kind), out->vmm);
	route_spec_format(out, out->text, sizeof(out->text));
	if (in->lo > in->hi)
		return err_set(e, "route '%s': range end is below its start", out->text);
	if (in->hi > route_kind_max(in->kind))
		return err_set(e, "route '%s': key 0x%llx is beyond the %s key space", out->text,
			       (unsigned long long)in->hi, route_kind_name(in->kind));
	if (in->kind == ROUTE_MSR) {
		/* MSRs that KVM handles itself whatever its MSR filter says. */
		static const struct {
			uint32_t lo, hi;
			const char *what;
		} kvm_own[] = {
		    {0x800, 0x8ff, "x2APIC MSRs, which KVM's MSR filter cannot cover"},
		    {0x4b564d00, 0x4b564dff, "KVM's own paravirtual MSRs"},
		};
		for (size_t i = 0; i < sizeof(kvm_own) / sizeof(kvm_own[0]); i++)
			if (in->lo <= kvm_own[i].hi && in->hi >= kvm_own[i].lo)
				return err_set(
				    e,
				    "route '%s': MSRs 0x%x-0x%x are %s: they never leave "
				    "KVM and cannot be routed",
				    out->text, kvm_own[i].lo, kvm_own[i].hi, kvm_own[i].what);
	}
	if (in->opts &
	    ~(uint32_t)(ROUTE_OPT_POSTED | ROUTE_OPT_FALLBACK | ROUTE_OPT_TIMEOUT | ROUTE_OPT_FROM |
			ROUTE_OPT_COALESCED | ROUTE_OPT_DOORBELL | ROUTE_OPT_DATAMATCH))
		return err_set(e, "route '%s': unknown option bits 0x%x", out->text,
			       (unsigned)in->opts);
	char why[200];
	if (route_spec_check_compiled(in, why, sizeof(why)) < 0)
		return err_set(e, "route '%s': %s", out->text, why);
	if (!(in->opts & ROUTE_OPT_DATAMATCH))
		out->doorbell_value = 0;
	if ((in->opts & ROUTE_OPT_POSTED) && in->kind != ROUTE_IO && in->kind != ROUTE_MMIO)
		return err_set(e, "route '%s': option 'posted' applies to io and mmio routes only",
			       out->text);
	if ((in->opts & ROUTE_OPT_TIMEOUT) && in->timeout_ns == 0)
		return err_set(e, "route '%s': timeout must be greater than 0", out->text);
	if (!(in->opts & ROUTE_OPT_TIMEOUT))
		out->timeout_ns = 0;
	if (!(in->opts & ROUTE_OPT_FALLBACK))
		memset(out->fallback, 0, sizeof(out->fallback));
	if (!(in->opts & ROUTE_OPT_FROM))
		memset(out->from, 0, sizeof(out->from));
	return 0;
}

/* VMM name -> id: "main" is always VMM_ID_MAIN, the rest go to RESOLVE. */
static int resolve_vmm(const struct route_spec *s, const char *name, const char *what,
		       vmm_resolve_fn resolve, void *arg, uint16_t *id, struct errbuf *e)
{
	uint16_t v;
	if (strcmp(name, "main") == 0)
		v = VMM_ID_MAIN;
	else if (resolve == NULL)
		v = VMM_ID_NONE;
	else
		v = resolve(arg, name);
	if (v == VMM_ID_NONE)
		return err_set(e, "route '%s': no VMM named '%s'%s", s->text, name, what);
	if (v >= VMM_MAX)
		return err_set(e, "route '%s': VMM '%s' has id %u, beyond the limit %u", s->text,
			       name, (unsigned)v, VMM_MAX - 1);
	*id = v;
	return 0;
}

uint32_t route_group_period(const uint16_t *w, unsigned n)
{
	if (w == NULL || n == 0 || n > ROUTE_GROUP_MAX)
		return 0;
	unsigned g = 0;
	uint32_t sum = 0;
	for (unsigned i = 0; i < n; i++) {
		if (w[i] == 0)
			return 0;
		unsigned a = g, b = w[i];
		while (b != 0) { /* gcd(g, w[i]) */
			unsigned t = a % b;
			a = b;
			b = t;
		}
		g = a;
		sum += w[i];
	}
	return sum / g;
}

uint32_t route_group_swrr(const uint16_t *w, unsigned n, uint8_t *out)
{
	uint32_t period = route_group_period(w, n);
	if (period == 0 || out == NULL)
		return 0;
	uint32_t g = 0;
	for (unsigned i = 0; i < n; i++)
		g += w[i];
	g /= period; /* the weights' gcd */
	int64_t cur[ROUTE_GROUP_MAX] = {0};
	for (uint32_t step = 0; step < period; step++) {
		unsigned best = 0;
		for (unsigned i = 0; i < n; i++) {
			cur[i] += w[i] / g;
			if (cur[i] > cur[best])
				best = i;
		}
		cur[best] -= period;
		out[step] = (uint8_t)best;
	}
	return period;
}

/* Compile S's group into R: member ids (distinct), weights, sequence. */
static int compile_group(struct route *r, const struct route_spec *s, vmm_resolve_fn resolve,
			 void *arg, struct errbuf *e)
{
	const struct route_group_spec *gs = &s->group;
	struct route_group *g = aligned_alloc(_Alignof(struct route_group), sizeof(*g));
	if (g == NULL)
		return err_set(e, "route table: out of memory");
	memset(g, 0, sizeof(*g));
	r->group = g;
	g->policy = gs->policy;
	g->n = gs->n;
	for (unsigned i = 0; i < gs->n; i++) {
		if (resolve_vmm(s, gs->member[i], " (a member of its group)", resolve, arg,
				&g->member[i], e))
			return -1;
		for (unsigned j = 0; j < i; j++)
			if (g->member[j] == g->member[i])
				return err_set(
				    e,
				    "route '%s': members '%s' and '%s' of its group are the "
				    "same VMM",
				    s->text, gs->member[j], gs->member[i]);
		g->weight[i] = gs->weight[i];
	}
	if (g->policy == ROUTE_POLICY_WEIGHTED) {
		g->nseq = route_group_period(g->weight, g->n);
		g->seq = malloc(g->nseq ? g->nseq : 1);
		if (g->seq == NULL)
			return err_set(e, "route table: out of memory");
		route_group_swrr(g->weight, g->n, g->seq);
	}
	r->vmm = VMM_ID_GROUP;
	return 0;
}

/* Free what compile_route allocated for R. */
static void route_release(struct route *r)
{
	if (r->group != NULL) {
		free(r->group->seq);
		free(r->group);
		r->group = NULL;
	}
}

/* ID (the fallback or the source) is a member of R's group. */
static bool group_has(const struct route *r, uint16_t id)
{
	for (unsigned i = 0; r->group != NULL && i < r->group->n; i++)
		if (r->group->member[i] == id)
			return true;
	return false;
}

static int compile_route_inner(struct route *r, const struct route_spec *s, vmm_resolve_fn resolve,
			       void *arg, struct errbuf *e)
{
	if (s->group.n > 0 ? compile_group(r, s, resolve, arg, e)
			   : resolve_vmm(s, s->vmm, "", resolve, arg, &r->vmm, e))
		return -1;
	r->fallback = r->from = VMM_ID_NONE;
	if ((s->opts & ROUTE_OPT_FALLBACK) &&
	    resolve_vmm(s, s->fallback, " (its fallback)", resolve, arg, &r->fallback, e))
		return -1;
	if ((s->opts & ROUTE_OPT_FROM) &&
	    resolve_vmm(s, s->from, " (its source)", resolve, arg, &r->from, e))
		return -1;
	if (group_has(r, r->fallback))
		return err_set(e, "route '%s': its fallback '%s' is a member of its group", s->text,
			       s->fallback);
	if (group_has(r, r->from))
		return err_set(e, "route '%s': its source '%s' is a member of its group", s->text,
			       s->from);
	r->flags = s->opts;
	r->timeout_ns = (s->opts & ROUTE_OPT_TIMEOUT) ? s->timeout_ns : 0;
	r->stats = NULL;
	return 0;
}

static int compile_route(struct route *r, const struct route_spec *s, vmm_resolve_fn resolve,
			 void *arg, struct errbuf *e)
{
	memset(r, 0, sizeof(*r));
	r->spec = *s;
	if (compile_route_inner(r, s, resolve, arg, e)) {
		route_release(r);
		return -1;
	}
	return 0;
}

static int overlap(const struct route_table *t, uint16_t newer, uint16_t older, enum route_kind k,
		   uint64_t at, struct errbuf *e)
{
	char where[64];
	key_desc(k, at, where, sizeof(where));
	return err_set(e, "route '%s' overlaps route '%s' at %s", t->routes[newer].spec.text,
		       t->routes[older].spec.text, where);
}

/*
 * Insert [lo, hi] of route IDX into the sorted disjoint array R (room for one
 * more). On overlap returns -1 with the other route and the first shared key.
 */
static int range_insert(struct route_range *r, size_t *n, uint64_t lo, uint64_t hi, uint16_t idx,
			uint16_t *other, uint64_t *at)
{
	size_t a = 0, b = *n;
	while (a < b) { /* first entry with r.lo > lo */
		size_t m = a + (b - a) / 2;
		if (r[m].lo <= lo)
			a = m + 1;
		else
			b = m;
	}
	if (a > 0 && r[a - 1].hi >= lo) {
		*other = r[a - 1].route;
		*at = lo;
		return -1;
	}
	if (a < *n && r[a].lo <= hi) {
		*other = r[a].route;
		*at = r[a].lo;
		return -1;
	}
	memmove(&r[a + 1], &r[a], (*n - a) * sizeof(*r));
	r[a].lo = lo;
	r[a].hi = hi;
	r[a].route = idx;
	(*n)++;
	return 0;
}

/* Insert keyed route IDX into the table's key space of its kind. */
static int insert_keyed(struct route_table *t, uint16_t idx, struct errbuf *e)
{
	const struct route_spec *s = &t->routes[idx].spec;
	uint16_t *direct = NULL;
	uint16_t other;
	uint64_t at;
	switch (s->kind) {
	case ROUTE_IO:
	case ROUTE_HYPERCALL: {
		uint64_t base = s->kind == ROUTE_HYPERCALL ? HYPERCALL_PORT_BASE : 0;
		for (uint64_t p = s->lo + base; p <= s->hi + base; p++) {
			if (t->port[p] != ROUTE_NONE)
				return overlap(t, idx, t->port[p], s->kind, p, e);
			t->port[p] = idx;
		}
		return 0;
	}
	case ROUTE_MMIO:
		if (range_insert(t->mmio, &t->nmmio, s->lo, s->hi, idx, &other, &at))
			return overlap(t, idx, other, s->kind, at, e);
		return 0;
	case ROUTE_MSR:
		if (range_insert(t->msr, &t->nmsr, s->lo, s->hi, idx, &other, &at))
			return overlap(t, idx, other, s->kind, at, e);
		return 0;
	case ROUTE_EXCEPTION:
		direct = t->exception;
		break;
	case ROUTE_PLATFORM:
		direct = t->platform;
		break;
	case ROUTE_REQUEST:
		direct = t->request;
		break;
	default:
		return err_set(e, "route '%s': not a keyed route", s->text);
	}
	for (uint64_t k = s->lo; k <= s->hi; k++) {
		if (direct[k] != ROUTE_NONE)
			return overlap(t, idx, direct[k], s->kind, k, e);
		direct[k] = idx;
	}
	return 0;
}

/* The key space of a spec, for overlaps: io and hypercall share ports. */
static void spec_space(const struct route_spec *s, unsigned *space, uint64_t *lo, uint64_t *hi)
{
	uint64_t base = s->kind == ROUTE_HYPERCALL ? HYPERCALL_PORT_BASE : 0;
	*space = s->kind == ROUTE_HYPERCALL ? ROUTE_IO : (unsigned)s->kind;
	*lo = s->lo + base;
	*hi = s->hi + base;
}

/* Add route IDX (with from=) to the sourced list; the routes of one source
 * may not overlap in a key space. */
static int insert_sourced(struct route_table *t, uint16_t idx, struct errbuf *e)
{
	const struct route *r = &t->routes[idx];
	unsigned sa;
	uint64_t alo, ahi;
	spec_space(&r->spec, &sa, &alo, &ahi);
	for (size_t i = 0; i < t->nsourced; i++) {
		const struct route *o = &t->routes[t->sourced[i]];
		unsigned sb;
		uint64_t blo, bhi;
		spec_space(&o->spec, &sb, &blo, &bhi);
		if (o->from == r->from && sa == sb && alo <= bhi && blo <= ahi)
			return overlap(t, idx, t->sourced[i],
				       r->spec.kind == ROUTE_HYPERCALL ? ROUTE_IO : r->spec.kind,
				       alo > blo ? alo : blo, e);
	}
	t->sourced[t->nsourced++] = idx;
	return 0;
}

static void set_implicit(struct route *r, unsigned type)
{
	memset(r, 0, sizeof(*r));
	r->spec.kind = ROUTE_TYPE;
	r->spec.lo = r->spec.hi = type;
	snprintf(r->spec.vmm, sizeof(r->spec.vmm), "main");
	route_spec_format(&r->spec, r->spec.text, sizeof(r->spec.text));
	r->vmm = VMM_ID_MAIN;
	r->fallback = r->from = VMM_ID_NONE;
	r->flags = ROUTE_FLAG_IMPLICIT;
}

struct route_table *route_table_build(const struct route_spec *specs, size_t n,
				      vmm_resolve_fn resolve, void *arg, struct errbuf *e)
{
	if (n > 0 && specs == NULL) {
		err_set(e, "route table: %zu routes given without their specs", n);
		return NULL;
	}
	if (n > ROUTE_MAX) {
		err_set(e, "too many routes: %zu (at most %d, type defaults included)", n,
			ROUTE_MAX);
		return NULL;
	}
	struct route_spec *cs = calloc(n ? n : 1, sizeof(*cs));
	struct route_table *t = calloc(1, sizeof(*t));
	if (cs == NULL || t == NULL) {
		err_set(e, "route table: out of memory");
		goto fail;
	}
	memset(t->port, 0xff, sizeof(t->port));
	memset(t->type_default, 0xff, sizeof(t->type_default));
	memset(t->type_route, 0xff, sizeof(t->type_route));
	memset(t->exception, 0xff, sizeof(t->exception));
	memset(t->platform, 0xff, sizeof(t->platform));
	memset(t->request, 0xff, sizeof(t->request));

	/* Check every spec, find which type: spec covers each type. */
	size_t cover[VMMUX_EV__COUNT];
	for (unsigned i = 0; i < VMMUX_EV__COUNT; i++)
		cover[i] = SIZE_MAX;
	size_t nmmio = 0, nmsr = 0, nsourced = 0;
	for (size_t i = 0; i < n; i++) {
		if (check_spec(&specs[i], &cs[i], e))
			goto fail;
		if (cs[i].opts & ROUTE_OPT_FROM) {
			nsourced++;
			continue; /* keyed by source: a list of their own */
		}
		switch (cs[i].kind) {
		case ROUTE_MMIO:
			nmmio++;
			break;
		case ROUTE_MSR:
			nmsr++;
			break;
		case ROUTE_TYPE:
			for (uint64_t ty = cs[i].lo; ty <= cs[i].hi; ty++) {
				if (cover[ty] != SIZE_MAX) {
					char where[64];
					key_desc(ROUTE_TYPE, ty, where, sizeof(where));
					err_set(e, "route '%s' overlaps route '%s' at %s",
						cs[i].text, cs[cover[ty]].text, where);
					goto fail;
				}
				cover[ty] = i;
			}
			break;
		default:
			break;
		}
	}
	size_t nimplicit = 0;
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++)
		if (cover[ty] == SIZE_MAX)
			nimplicit++;
	size_t total = nimplicit + n;
	if (total > ROUTE_MAX) {
		err_set(e, "too many routes: %zu (at most %d, type defaults included)", total,
			ROUTE_MAX);
		goto fail;
	}
	t->routes = calloc(total, sizeof(*t->routes));
	t->mmio = calloc(nmmio ? nmmio : 1, sizeof(*t->mmio));
	t->msr = calloc(nmsr ? nmsr : 1, sizeof(*t->msr));
	t->sourced = calloc(nsourced ? nsourced : 1, sizeof(*t->sourced));
	if (t->routes == NULL || t->mmio == NULL || t->msr == NULL || t->sourced == NULL) {
		err_set(e, "route table: out of memory");
		goto fail;
	}

	/* Type routes first, in type order. */
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		size_t j = cover[ty];
		if (j != SIZE_MAX && ty > cs[j].lo) {
			t->type_route[ty] = t->type_route[ty - 1]; /* same type: range */
			continue;
		}
		uint16_t idx = (uint16_t)t->nroutes;
		if (j == SIZE_MAX)
			set_implicit(&t->routes[idx], ty);
		else if (compile_route(&t->routes[idx], &cs[j], resolve, arg, e))
			goto fail;
		t->nroutes++;
		t->type_route[ty] = idx;
	}

	/* Keyed routes in the order given; routes keyed by source aside. */
	for (size_t i = 0; i < n; i++) {
		bool sourced = cs[i].opts & ROUTE_OPT_FROM;
		if (cs[i].kind == ROUTE_TYPE && !sourced)
			continue;
		uint16_t idx = (uint16_t)t->nroutes;
		if (compile_route(&t->routes[idx], &cs[i], resolve, arg, e))
			goto fail;
		t->nroutes++;
		if (sourced ? insert_sourced(t, idx, e) : insert_keyed(t, idx, e))
			goto fail;
	}

	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++)
		t->type_default[ty] = t->routes[t->type_route[ty]].vmm;
	if (range_index_build(&t->mmio_ix, t->mmio, t->nmmio) ||
	    range_index_build(&t->msr_ix, t->msr, t->nmsr)) {
		err_set(e, "route table: out of memory");
		goto fail;
	}
	free(cs);
	return t;

fail:
	free(cs);
	route_table_free(t);
	return NULL;
}

void route_table_free(struct route_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; t->routes != NULL && i < t->nroutes; i++)
		route_release(&t->routes[i]);
	free(t->mmio);
	free(t->msr);
	range_index_free(&t->mmio_ix);
	range_index_free(&t->msr_ix);
	free(t->sourced);
	free(t->routes);
	free(t);
}

void range_index_free(struct range_index *ix)
{
	free(ix->keys);
	memset(ix, 0, sizeof(*ix));
}

int range_index_build(struct range_index *ix, const struct route_range *r, size_t n)
{
	range_index_free(ix);
	if (n == 0)
		return 0;
	size_t len[RANGE_LEVELS_MAX], total = 0;
	unsigned levels = 0;
	for (size_t m = n;; m = (m + RANGE_FANOUT - 1) / RANGE_FANOUT) {
		if (levels == RANGE_LEVELS_MAX)
			return -1;
		len[levels++] = m;
		total += (m + RANGE_FANOUT - 1) / RANGE_FANOUT * RANGE_FANOUT;
		if (m <= RANGE_FANOUT)
			break;
	}
	if (total > UINT32_MAX || (ix->keys = malloc(total * sizeof(uint64_t))) == NULL)
		return -1;
	size_t off = 0;
	for (unsigned l = 0; l < levels; l++) {
		size_t padded = (len[l] + RANGE_FANOUT - 1) / RANGE_FANOUT * RANGE_FANOUT;
		uint64_t *k = ix->keys + off;
		for (size_t i = 0; i < padded; i++) {
			if (i >= len[l])
				k[i] = UINT64_MAX;
			else if (l == 0)
				k[i] = r[i].lo;
			else /* the first key of block i of the level below */
				k[i] = ix->keys[ix->off[l - 1] + i * RANGE_FANOUT];
		}
		ix->off[l] = (uint32_t)off;
		ix->len[l] = (uint32_t)len[l];
		off += padded;
	}
	ix->levels = levels;
	return 0;
}

/* How many of the RANGE_FANOUT keys K are <= KEY (no branch on the keys). */
static inline size_t block_count(const uint64_t *k, uint64_t key)
{
	/* Four independent sums, so that the compares do not wait on each other. */
	size_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
#pragma GCC unroll 4
	for (unsigned i = 0; i < RANGE_FANOUT; i += 4) {
		c0 += k[i] <= key;
		c1 += k[i + 1] <= key;
		c2 += k[i + 2] <= key;
		c3 += k[i + 3] <= key;
	}
	return (c0 + c1) + (c2 + c3);
}

/*
 * The entry of R containing KEY, or ROUTE_NONE, through IX (range_index over
 * R). Top down, POS is the last key <= KEY of each level: the block below it
 * starts with that same key, so the count there is at least 1. Padding
 * counts only for KEY == UINT64_MAX, hence the clamp to the level's length.
 */
static uint16_t range_find(const struct route_range *r, const struct range_index *ix, uint64_t key)
{
	if (ix->levels == 0)
		return ROUTE_NONE;
	unsigned l = ix->levels - 1;
	size_t c = block_count(ix->keys + ix->off[l], key);
	if (c == 0)
		return ROUTE_NONE; /* below the first range */
	size_t pos = c - 1 < ix->len[l] ? c - 1 : ix->len[l] - 1;
	while (l-- > 0) {
		c = block_count(ix->keys + ix->off[l] + pos * RANGE_FANOUT, key);
		pos = pos * RANGE_FANOUT + c - 1;
		pos = pos < ix->len[l] ? pos : ix->len[l] - 1;
	}
	if (key > r[pos].hi)
		return ROUTE_NONE;
	return r[pos].route;
}

uint16_t route_lookup_mmio(const struct route_table *t, uint64_t gpa)
{
	return range_find(t->mmio, &t->mmio_ix, gpa);
}

uint16_t route_lookup_msr(const struct route_table *t, uint32_t index)
{
	return range_find(t->msr, &t->msr_ix, index);
}

/*
 * A HYPERCALL event only matches a hypercall route: an io route that happens
 * to cover port 0x500+key receives port accesses, never hypercalls (the
 * router keeps an OUT to such a port an IO event).
 */
/* Whether route R's key range covers event EV of its kind. */
static bool route_covers(const struct route *r, const struct vmmux_event *ev)
{
	const struct route_spec *s = &r->spec;
	uint64_t k = ev->key;
	switch (s->kind) {
	case ROUTE_TYPE:
		return ev->type >= s->lo && ev->type <= s->hi;
	case ROUTE_IO:
		return ev->type == VMMUX_EV_IO && k >= s->lo && k <= s->hi;
	case ROUTE_HYPERCALL:
		return ev->type == VMMUX_EV_HYPERCALL && k >= s->lo && k <= s->hi;
	case ROUTE_MMIO:
		return ev->type == VMMUX_EV_MMIO && k >= s->lo && k <= s->hi;
	case ROUTE_MSR:
		return ev->type == VMMUX_EV_MSR && k >= s->lo && k <= s->hi;
	case ROUTE_EXCEPTION:
		return ev->type == VMMUX_EV_EXCEPTION && k >= s->lo && k <= s->hi;
	case ROUTE_PLATFORM:
		return ev->type == VMMUX_EV_PLATFORM && k >= s->lo && k <= s->hi;
	case ROUTE_REQUEST:
		return ev->type == VMMUX_EV_REQUEST && k >= s->lo && k <= s->hi;
	default:
		return false;
	}
}

uint16_t route_lookup_sourced(const struct route_table *t, const struct vmmux_event *ev)
{
	if (ev->src_kind != VMMUX_SRC_VMM)
		return ROUTE_NONE;
	uint16_t by_type = ROUTE_NONE;
	for (size_t i = 0; i < t->nsourced; i++) {
		const struct route *r = &t->routes[t->sourced[i]];
		if (r->from != ev->src_id || !route_covers(r, ev))
			continue;
		if (r->spec.kind != ROUTE_TYPE)
			return t->sourced[i]; /* a keyed route beats a type: route */
		by_type = t->sourced[i];
	}
	return by_type;
}

uint16_t route_lookup_event(const struct route_table *t, const struct vmmux_event *ev)
{
	uint64_t k = ev->key;
	switch (ev->type) {
	case VMMUX_EV_IO:
		return k <= 0xffff ? t->port[k] : ROUTE_NONE;
	case VMMUX_EV_HYPERCALL: {
		if (k > HYPERCALL_MAX)
			return ROUTE_NONE;
		uint16_t r = t->port[HYPERCALL_PORT_BASE + k];
		if (r == ROUTE_NONE || t->routes[r].spec.kind != ROUTE_HYPERCALL)
			return ROUTE_NONE;
		return r;
	}
	case VMMUX_EV_MMIO:
		return range_find(t->mmio, &t->mmio_ix, k);
	case VMMUX_EV_MSR:
		return k <= 0xffffffffu ? range_find(t->msr, &t->msr_ix, k) : ROUTE_NONE;
	case VMMUX_EV_EXCEPTION:
		return k < 256 ? t->exception[k] : ROUTE_NONE;
	case VMMUX_EV_PLATFORM:
		return k < VMMUX_PLAT__COUNT ? t->platform[k] : ROUTE_NONE;
	case VMMUX_EV_REQUEST:
		return k < VMMUX_REQ__COUNT ? t->request[k] : ROUTE_NONE;
	default:
		return ROUTE_NONE;
	}
}

/* ---------------------------------------------------------------------- */
/* MSR filter ranges                                                        */
/* ---------------------------------------------------------------------- */

/*
 * Cover the routed MSRs with the fewest windows of at most MSR_FILTER_SPAN
 * MSRs (left to right, each window starting at the first uncovered routed
 * MSR: optimal for covering intervals with bounded windows). Writes at most
 * MAX windows into OUT (when not NULL) and returns how many are needed,
 * stopping at MAX + 1.
 */
static size_t msr_windows(const struct route_range *r, size_t n, struct route_range *out,
			  size_t max)
{
	size_t count = 0;
	size_t i = 0;
	uint64_t pos = n ? r[0].lo : 0; /* first routed MSR not yet covered */
	while (i < n) {
		if (count > max)
			return count;
		uint64_t start = pos;
		uint64_t end = start + MSR_FILTER_SPAN - 1;
		uint64_t last = start;
		while (i < n && r[i].lo <= end) {
			if (r[i].hi > end) { /* the route continues past this window */
				last = end;
				pos = end + 1;
				break;
			}
			last = r[i].hi;
			i++;
			if (i < n)
				pos = r[i].lo;
		}
		if (out != NULL && count < max) {
			out[count].lo = start;
			out[count].hi = last;
			out[count].route = ROUTE_NONE;
		}
		count++;
	}
	return count;
}

/*
 * The returned ranges have route == ROUTE_NONE (a filter range may hold the
 * MSRs of several routes, and MSRs of none: the VM allows those in the
 * filter's bitmap). Strategy: split routes longer than a filter range, then
 * merge the two nearest neighbours (smallest gap) while there are too many
 * ranges; when nearest-first merging gets stuck although a cover exists,
 * the optimal left-to-right cover is returned instead.
 */
int route_table_msr_ranges(const struct route_table *t, struct route_range *out, size_t max_ranges,
			   struct errbuf *e)
{
	if (t == NULL)
		return err_set(e, "MSR filter: no routing table");
	if (t->nmsr == 0)
		return 0;
	size_t need = msr_windows(t->msr, t->nmsr, NULL, max_ranges);
	if (need > max_ranges)
		return err_set(e,
			       "the MSR routes do not fit KVM's MSR filter: they need more than "
			       "%zu ranges of at most 0x%x MSRs each",
			       max_ranges, (unsigned)MSR_FILTER_SPAN);
	if (out == NULL)
		return err_set(e, "MSR filter: no room for the ranges");

	/* Pieces: the routes, split into filter-sized parts. Once a cover of
	 * max_ranges windows exists, every window but the two at a route's ends
	 * lies inside that route alone, so there are at most
	 * max_ranges + 2 * nmsr pieces. */
	size_t cap = 0;
	for (size_t i = 0; i < t->nmsr; i++)
		cap += (size_t)((t->msr[i].hi - t->msr[i].lo) / MSR_FILTER_SPAN + 1);
	struct route_range *p = calloc(cap, sizeof(*p));
	if (p == NULL)
		return err_set(e, "MSR filter: out of memory");
	size_t np = 0;
	for (size_t i = 0; i < t->nmsr; i++) {
		uint64_t lo = t->msr[i].lo;
		for (;;) {
			uint64_t hi = t->msr[i].hi;
			if (hi - lo >= MSR_FILTER_SPAN)
				hi = lo + MSR_FILTER_SPAN - 1;
			p[np].lo = lo;
			p[np].hi = hi;
			p[np].route = ROUTE_NONE;
			np++;
			if (hi == t->msr[i].hi)
				break;
			lo = hi + 1;
		}
	}
	while (np > max_ranges) {
		size_t best = SIZE_MAX;
		uint64_t best_gap = UINT64_MAX;
		for (size_t i = 0; i + 1 < np; i++) {
			if (p[i + 1].hi - p[i].lo >= MSR_FILTER_SPAN)
				continue; /* the merge would not fit one filter range */
			uint64_t gap = p[i + 1].lo - p[i].hi - 1;
			if (gap < best_gap) {
				best_gap = gap;
				best = i;
			}
		}
		if (best == SIZE_MAX)
			break;
		p[best].hi = p[best + 1].hi;
		memmove(&p[best + 1], &p[best + 2], (np - best - 2) * sizeof(*p));
		np--;
	}
	int ret;
	if (np <= max_ranges) {
		memcpy(out, p, np * sizeof(*p));
		ret = (int)np;
	} else {
		ret = (int)msr_windows(t->msr, t->nmsr, out, max_ranges);
	}
	free(p);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Printing                                                                 */
/* ---------------------------------------------------------------------- */

static int cmp_route_key(const void *a, const void *b, void *arg)
{
	const struct route_table *t = arg;
	const struct route *ra = &t->routes[*(const uint16_t *)a];
	const struct route *rb = &t->routes[*(const uint16_t *)b];
	bool ia = ra->flags & ROUTE_FLAG_IMPLICIT, ib = rb->flags & ROUTE_FLAG_IMPLICIT;
	if (ia != ib)
		return ia ? 1 : -1;
	if (ra->spec.kind != rb->spec.kind)
		return ra->spec.kind < rb->spec.kind ? -1 : 1;
	if (ra->spec.lo != rb->spec.lo)
		return ra->spec.lo < rb->spec.lo ? -1 : 1;
	return 0;
}

void route_table_key_order(const struct route_table *t, uint16_t *order)
{
	for (size_t i = 0; i < t->nroutes; i++)
		order[i] = (uint16_t)i;
	qsort_r(order, t->nroutes, sizeof(*order), cmp_route_key, (void *)t);
}

/* The columns of route_table_dump: spec, VMM, options. */
#define DUMP_SPEC_WIDTH 40
#define DUMP_VMM_WIDTH	16

void route_table_dump_header(FILE *f)
{
	fprintf(f, "%-*s %-*s %s\n", DUMP_SPEC_WIDTH, "SPEC", DUMP_VMM_WIDTH, "VMM", "OPTIONS");
}

void route_table_dump(FILE *f, const struct route_table *t, route_vmm_name_fn name, void *arg)
{
	if (f == NULL || t == NULL || t->nroutes == 0)
		return;
	uint16_t *order = malloc(t->nroutes * sizeof(*order));
	if (order == NULL) {
		fprintf(f, "(out of memory)\n");
		return;
	}
	route_table_key_order(t, order);

	for (size_t i = 0; i < t->nroutes; i++) {
		const struct route *r = &t->routes[order[i]];
		const char *vn = name && r->group == NULL ? name(arg, r->vmm) : NULL;
		char vbuf[ROUTE_GROUP_MAX * (VMMUX_NAME_MAX + 1) + 16];
		if (r->group != NULL) {
			size_t off = 0;
			vbuf[0] = '\0';
			for (unsigned m = 0; m < r->group->n && off < sizeof(vbuf); m++) {
				const char *mn = name ? name(arg, r->group->member[m]) : NULL;
				int w = mn ? snprintf(vbuf + off, sizeof(vbuf) - off, "%s%s",
						      m ? "," : "", mn)
					   : snprintf(vbuf + off, sizeof(vbuf) - off, "%s#%u",
						      m ? "," : "", (unsigned)r->group->member[m]);
				off += w > 0 ? (size_t)w : 0;
			}
			vn = vbuf;
		} else if (vn == NULL) {
			snprintf(vbuf, sizeof(vbuf), "#%u", (unsigned)r->vmm);
			vn = vbuf;
		}
		char opts[160];
		size_t off = 0;
		opts[0] = '\0';
		if (r->flags & ROUTE_FLAG_IMPLICIT)
			off += (size_t)snprintf(opts + off, sizeof(opts) - off, " default");
		if (r->flags & ROUTE_OPT_POSTED)
			off += (size_t)snprintf(opts + off, sizeof(opts) - off, " posted");
		if (r->flags & ROUTE_OPT_COALESCED)
			off += (size_t)snprintf(opts + off, sizeof(opts) - off, " coalesced");
		if (r->flags & ROUTE_OPT_DOORBELL)
			off += (size_t)snprintf(opts + off, sizeof(opts) - off, " doorbell");
		if (r->flags & ROUTE_OPT_FALLBACK) {
			const char *fn = name ? name(arg, r->fallback) : NULL;
			off += (size_t)snprintf(opts + off, sizeof(opts) - off, " fallback=%s",
						fn ? fn : r->spec.fallback);
		}
		if (r->flags & ROUTE_OPT_FROM) {
			const char *fn = name ? name(arg, r->from) : NULL;
			off += (size_t)snprintf(opts + off, sizeof(opts) - off, " from=%s",
						fn ? fn : r->spec.from);
		}
		if (r->flags & ROUTE_OPT_TIMEOUT) {
			char tx[32];
			const char *at = strstr(r->spec.text, ";timeout=");
			size_t n = at ? strcspn(at + 9, ";") : 1;
			snprintf(tx, sizeof(tx), "%.*s", (int)n, at ? at + 9 : "?");
			snprintf(opts + off, sizeof(opts) - off, " timeout=%s", tx);
		}
		fprintf(f, "%-*s %-*s%s\n", DUMP_SPEC_WIDTH, r->spec.text, DUMP_VMM_WIDTH, vn,
			opts[0] ? opts : " -");
	}
	free(order);
}
