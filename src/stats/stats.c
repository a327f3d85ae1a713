/*
 * stats.c: latency histograms and the statistics report (see stats.h).
 *
 * Histogram buckets: values 0-15 ns have one bucket each; above, each power
 * of two [2^e, 2^(e+1)) is cut into HIST_SUB equal sub-buckets, so bucket
 * 16*(e-3)+s holds [(16+s) << (e-4), (17+s) << (e-4)). A percentile reports
 * the upper end of its bucket (capped by the largest sample): never below
 * the true value, and at most 1/16 above it.
 *
 * Every counter is updated with relaxed atomic additions; readers (the
 * report, tests) load them relaxed too and compute totals from the buckets,
 * so a report taken while events flow is consistent within each histogram's
 * buckets.
 */
#include "stats/stats.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/spec.h"
#include "route/table.h"

/* ---------------------------------------------------------------------- */
/* Histograms                                                               */
/* ---------------------------------------------------------------------- */

static unsigned bucket_of(uint64_t ns)
{
	if (ns < HIST_SUB)
		return (unsigned)ns;
	unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* >= 4 */
	unsigned sub = (unsigned)(ns >> (e - 4)) & (HIST_SUB - 1);
	return (e - 3) * HIST_SUB + sub;
}

/* Largest value of bucket B. */
static uint64_t bucket_top(unsigned b)
{
	if (b < HIST_SUB)
		return b;
	unsigned e = b / HIST_SUB + 3;
	uint64_t sub = b % HIST_SUB;
	uint64_t width = 1ull << (e - 4);
	uint64_t low = (HIST_SUB + sub) << (e - 4);
	return low + (width - 1);
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

void hist_add(struct hist *h, uint64_t ns)
{
	add(&h->count, 1);
	add(&h->sum_ns, ns);
	add(&h->bucket[bucket_of(ns)], 1);
	uint64_t m = ld(&h->max_ns);
	while (ns > m && !__atomic_compare_exchange_n(&h->max_ns, &m, ns, true, __ATOMIC_RELAXED,
						      __ATOMIC_RELAXED))
		;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h == NULL)
		return 0;
	uint64_t total = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		total += ld(&h->bucket[b]);
	if (total == 0)
		return 0;
	if (!(p > 0)) /* also NaN */
		p = 0;
	if (p > 100)
		p = 100;
	/* The rank of the sample at percentile p: ceil(p% of total), >= 1. */
	double want = p / 100.0 * (double)total;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	if (rank > total)
		rank = total;
	uint64_t max = ld(&h->max_ns);
	uint64_t seen = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += ld(&h->bucket[b]);
		if (seen >= rank) {
			uint64_t top = bucket_top(b);
			return top < max ? top : max;
		}
	}
	return max;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	dst->count += ld(&src->count);
	dst->sum_ns += ld(&src->sum_ns);
	uint64_t m = ld(&src->max_ns);
	if (m > dst->max_ns)
		dst->max_ns = m;
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		dst->bucket[b] += ld(&src->bucket[b]);
}

/* Samples in H, from its buckets. */
static uint64_t hist_total(const struct hist *h)
{
	uint64_t total = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		total += ld(&h->bucket[b]);
	return total;
}

/* ---------------------------------------------------------------------- */
/* Registry                                                                 */
/* ---------------------------------------------------------------------- */

#define ROUTE_HASH 1024

static struct hist type_hist[VMMUX_EV__COUNT];
static uint64_t unrouted[VMMUX_EV__COUNT];
static struct hist vmm_hist[VMM_MAX];
static uint64_t exit_count[STATS_EXIT_REASONS + 1]; /* the last: other reasons */
static uint64_t compiled_count[STATS_COMPILED__COUNT];
static stats_route_extra_fn route_extra;
static const struct hist empty_hist;
static uint64_t start_ns;

static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route_stats *route_hash[ROUTE_HASH];
static size_t nroute_stats;
/* Stands in for a route whose record could not be allocated, so that a
 * published table never holds a NULL stats pointer. */
static struct route_stats untracked = {.spec = "(untracked routes)"};

static unsigned hash_text(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h % ROUTE_HASH;
}

struct route_stats *stats_route(const char *spec_text)
{
	if (spec_text == NULL)
		return &untracked;
	char key[sizeof(((struct route_stats *)0)->spec)];
	snprintf(key, sizeof(key), "%s", spec_text);
	unsigned h = hash_text(key);
	pthread_mutex_lock(&route_lock);
	struct route_stats *rs;
	for (rs = route_hash[h]; rs != NULL; rs = rs->next)
		if (strcmp(rs->spec, key) == 0)
			break;
	if (rs == NULL) {
		rs = calloc(1, sizeof(*rs));
		if (rs == NULL) {
			rs = &untracked;
		} else {
			memcpy(rs->spec, key, sizeof(key));
			rs->next = route_hash[h];
			route_hash[h] = rs;
			nroute_stats++;
		}
	}
	pthread_mutex_unlock(&route_lock);
	return rs;
}

void stats_record(unsigned type, uint16_t vmm, struct route_stats *rs, uint64_t ns)
{
	if (type < VMMUX_EV__COUNT)
		hist_add(&type_hist[type], ns);
	if (vmm < VMM_MAX)
		hist_add(&vmm_hist[vmm], ns);
	if (rs != NULL)
		hist_add(&rs->lat, ns);
}

void stats_count_exit(unsigned reason)
{
	add(&exit_count[reason < STATS_EXIT_REASONS ? reason : STATS_EXIT_REASONS], 1);
}

void stats_route_origin(struct route_stats *rs, bool exit)
{
	if (rs != NULL)
		add(exit ? &rs->exits : &rs->compiled, 1);
}

void stats_count_compiled(enum stats_compiled_kind k, uint64_t n)
{
	if ((unsigned)k < STATS_COMPILED__COUNT)
		add(&compiled_count[k], n);
}

uint64_t stats_exits(unsigned reason)
{
	if (reason < STATS_EXIT_REASONS)
		return ld(&exit_count[reason]);
	uint64_t total = 0;
	for (unsigned i = 0; i <= STATS_EXIT_REASONS; i++)
		total += ld(&exit_count[i]);
	return total;
}

uint64_t stats_compiled(enum stats_compiled_kind k)
{
	if ((unsigned)k >= STATS_COMPILED__COUNT)
		return 0;
	uint64_t n = ld(&compiled_count[k]);
	if (k == STATS_DOORBELL_VMM && route_extra != NULL)
		n += route_extra(NULL);
	return n;
}

void stats_set_route_extra(stats_route_extra_fn fn)
{
	route_extra = fn;
}

/* The compiled count of RS, with what its VMM reported itself. */
static uint64_t route_compiled(const struct route_stats *rs)
{
	uint64_t n = ld(&rs->compiled);
	if (route_extra != NULL)
		n += route_extra(rs->spec);
	return n;
}

/* The names of the exit reasons a report shows by name (KVM_EXIT_*). */
static const char *exit_reason_label(unsigned r)
{
	static const char *const names[STATS_EXIT_REASONS] = {
	    [2] = "io",
	    [4] = "debug",
	    [5] = "hlt",
	    [6] = "mmio",
	    [7] = "irq_window_open",
	    [8] = "shutdown",
	    [9] = "fail_entry",
	    [10] = "intr",
	    [17] = "internal_error",
	    [24] = "system_event",
	    [29] = "x86_rdmsr",
	    [30] = "x86_wrmsr",
	};
	return r < STATS_EXIT_REASONS ? names[r] : NULL;
}

void stats_count_unrouted(unsigned type)
{
	if (type < VMMUX_EV__COUNT)
		add(&unrouted[type], 1);
}

uint64_t stats_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void stats_start(void)
{
	__atomic_store_n(&start_ns, stats_now_ns(), __ATOMIC_RELAXED);
}

const struct hist *stats_type_hist(unsigned type)
{
	return type < VMMUX_EV__COUNT ? &type_hist[type] : &empty_hist;
}

const struct hist *stats_vmm_hist(uint16_t vmm)
{
	return vmm < VMM_MAX ? &vmm_hist[vmm] : &empty_hist;
}

uint64_t stats_unrouted(unsigned type)
{
	return type < VMMUX_EV__COUNT ? ld(&unrouted[type]) : 0;
}

/*
 * Frees every route record and zeroes every counter: the tables that pointed
 * at the records must be gone (router_fini) before this is called.
 */
void stats_fini(void)
{
	pthread_mutex_lock(&route_lock);
	for (unsigned h = 0; h < ROUTE_HASH; h++) {
		struct route_stats *rs = route_hash[h];
		while (rs != NULL) {
			struct route_stats *next = rs->next;
			free(rs);
			rs = next;
		}
		route_hash[h] = NULL;
	}
	nroute_stats = 0;
	memset(&untracked.lat, 0, sizeof(untracked.lat));
	pthread_mutex_unlock(&route_lock);
	memset(type_hist, 0, sizeof(type_hist));
	memset(unrouted, 0, sizeof(unrouted));
	memset(vmm_hist, 0, sizeof(vmm_hist));
	memset(exit_count, 0, sizeof(exit_count));
	memset(compiled_count, 0, sizeof(compiled_count));
	route_extra = NULL;
	start_ns = 0;
}

/* ---------------------------------------------------------------------- */
/* Report                                                                   */
/* ---------------------------------------------------------------------- */

static double duration_s(void)
{
	uint64_t s = __atomic_load_n(&start_ns, __ATOMIC_RELAXED);
	if (s == 0)
		return 0;
	uint64_t now = stats_now_ns();
	return now > s ? (double)(now - s) / 1e9 : 0;
}

/* "850ns", "7.8us", "125us", "1.5ms", "2.0s". */
static const char *fmt_ns(uint64_t ns, char *buf, size_t len)
{
	static const struct {
		uint64_t div;
		const char *unit;
	} units[] = {{1000000000u, "s"}, {1000000u, "ms"}, {1000u, "us"}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ns < units[i].div)
			continue;
		double v = (double)ns / (double)units[i].div;
		if (v < 100)
			snprintf(buf, len, "%.1f%s", v, units[i].unit);
		else
			snprintf(buf, len, "%.0f%s", v, units[i].unit);
		return buf;
	}
	snprintf(buf, len, "%lluns", (unsigned long long)ns);
	return buf;
}

/* The route records with samples, most events first (ties by spec). Caller
 * frees; *n = 0 and NULL when there is none or memory is short. */
static int cmp_routes(const void *a, const void *b)
{
	const struct route_stats *ra = *(const struct route_stats *const *)a;
	const struct route_stats *rb = *(const struct route_stats *const *)b;
	uint64_t ca = hist_total(&ra->lat), cb = hist_total(&rb->lat);
	if (ca != cb)
		return ca > cb ? -1 : 1;
	return strcmp(ra->spec, rb->spec);
}

static struct route_stats **busy_routes(size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&route_lock);
	struct route_stats **v = calloc(nroute_stats + 1, sizeof(*v));
	if (v != NULL) {
		for (unsigned h = 0; h < ROUTE_HASH; h++)
			for (struct route_stats *rs = route_hash[h]; rs != NULL; rs = rs->next)
				if (hist_total(&rs->lat) > 0 || route_compiled(rs) > 0)
					v[(*n)++] = rs;
		if (hist_total(&untracked.lat) > 0)
			v[(*n)++] = &untracked;
	}
	pthread_mutex_unlock(&route_lock);
	if (v != NULL)
		qsort(v, *n, sizeof(*v), cmp_routes);
	return v;
}

static stats_vmm_extra_fn vmm_extra;

void stats_set_vmm_extra(stats_vmm_extra_fn fn)
{
	vmm_extra = fn;
}

static struct stats_vmm_extra extra_of(uint16_t id)
{
	struct stats_vmm_extra x = {0, 0, 0};
	if (vmm_extra)
		vmm_extra(id, &x);
	return x;
}

static const char *vmm_label(stats_vmm_name_fn name, uint16_t id, char *nbuf, size_t nlen,
			     char *where, size_t wlen)
{
	where[0] = '\0';
	const char *n = name ? name(id, where, wlen) : NULL;
	where[wlen - 1] = '\0';
	if (n == NULL) {
		snprintf(nbuf, nlen, "vmm%u", (unsigned)id);
		n = nbuf;
	}
	return n;
}

/* The p50, p99 and max columns of H ("-" when it has no sample). */
struct lat_cols {
	char p50[24], p99[24], max[24];
};

static void lat_cols(const struct hist *h, struct lat_cols *c)
{
	if (hist_total(h) == 0) {
		snprintf(c->p50, sizeof(c->p50), "-");
		snprintf(c->p99, sizeof(c->p99), "-");
		snprintf(c->max, sizeof(c->max), "-");
		return;
	}
	fmt_ns(hist_percentile(h, 50), c->p50, sizeof(c->p50));
	fmt_ns(hist_percentile(h, 99), c->p99, sizeof(c->p99));
	fmt_ns(ld(&h->max_ns), c->max, sizeof(c->max));
}

void stats_print(FILE *f, stats_vmm_name_fn name)
{
	if (f == NULL)
		return;
	double secs = duration_s();
	fprintf(f, "vmmux statistics over %.3f s (event latencies)\n", secs);

	fprintf(f, "  %-12s %10s %9s %9s %9s %10s %10s\n", "type", "count", "p50", "p99", "max",
		"events/s", "unrouted");
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		const struct hist *h = &type_hist[ty];
		uint64_t c = hist_total(h);
		struct lat_cols lc;
		lat_cols(h, &lc);
		fprintf(f, "  %-12s %10llu %9s %9s %9s %10.0f %10llu\n", event_type_name(ty),
			(unsigned long long)c, lc.p50, lc.p99, lc.max,
			secs > 0 ? (double)c / secs : 0.0, (unsigned long long)stats_unrouted(ty));
	}

	fprintf(f, "\n  KVM exits to vmmux: %llu",
		(unsigned long long)stats_exits(STATS_EXIT_REASONS));
	for (unsigned r = 0; r <= STATS_EXIT_REASONS; r++) {
		uint64_t c = ld(&exit_count[r]);
		const char *nm = exit_reason_label(r);
		if (c == 0)
			continue;
		if (nm != NULL)
			fprintf(f, ", %s %llu", nm, (unsigned long long)c);
		else if (r < STATS_EXIT_REASONS)
			fprintf(f, ", reason %u %llu", r, (unsigned long long)c);
		else
			fprintf(f, ", other %llu", (unsigned long long)c);
	}
	fprintf(f,
		"\n  routed inside KVM (no exit): coalesced %llu, doorbell %llu, doorbell read "
		"by parallel VMMs %llu\n",
		(unsigned long long)stats_compiled(STATS_COALESCED),
		(unsigned long long)stats_compiled(STATS_DOORBELL),
		(unsigned long long)stats_compiled(STATS_DOORBELL_VMM));

	size_t n;
	struct route_stats **v = busy_routes(&n);
	if (n > 0) {
		int width = 24;
		for (size_t i = 0; i < n; i++)
			if ((int)strlen(v[i]->spec) > width)
				width = (int)strlen(v[i]->spec);
		fprintf(f, "\n  %-*s %10s %9s %9s %9s %10s %10s\n", width, "route", "count", "p50",
			"p99", "max", "exits", "no-exit");
		for (size_t i = 0; i < n; i++) {
			struct lat_cols c;
			lat_cols(&v[i]->lat, &c);
			fprintf(f, "  %-*s %10llu %9s %9s %9s %10llu %10llu\n", width, v[i]->spec,
				(unsigned long long)hist_total(&v[i]->lat), c.p50, c.p99, c.max,
				(unsigned long long)ld(&v[i]->exits),
				(unsigned long long)route_compiled(v[i]));
		}
	}
	free(v);

	bool header = false;
	for (uint16_t id = 0; id < VMM_MAX; id++) {
		if (hist_total(&vmm_hist[id]) == 0)
			continue;
		if (!header) {
			fprintf(f, "\n  %-24s %10s %9s %9s %9s %9s\n", "vmm (where)", "count",
				"p50", "p99", "max", "restarts");
			header = true;
		}
		char nbuf[32], where[64], label[128];
		const char *nm = vmm_label(name, id, nbuf, sizeof(nbuf), where, sizeof(where));
		if (where[0])
			snprintf(label, sizeof(label), "%s (%s)", nm, where);
		else
			snprintf(label, sizeof(label), "%s", nm);
		struct lat_cols c;
		lat_cols(&vmm_hist[id], &c);
		fprintf(f, "  %-24s %10llu %9s %9s %9s %9u\n", label,
			(unsigned long long)hist_total(&vmm_hist[id]), c.p50, c.p99, c.max,
			extra_of(id).restarts);
	}
}

void stats_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_hist(FILE *f, const struct hist *h)
{
	fprintf(f, "\"count\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"max_ns\":%llu",
		(unsigned long long)hist_total(h), (unsigned long long)hist_percentile(h, 50),
		(unsigned long long)hist_percentile(h, 99), (unsigned long long)ld(&h->max_ns));
}

void stats_print_json(FILE *f, stats_vmm_name_fn name)
{
	if (f == NULL)
		return;
	fprintf(f, "{\"duration_s\":%.6f,\"types\":{", duration_s());
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		fprintf(f, "%s", ty ? "," : "");
		stats_json_str(f, event_type_name(ty));
		fputs(":{", f);
		json_hist(f, &type_hist[ty]);
		fprintf(f, ",\"unrouted\":%llu}", (unsigned long long)stats_unrouted(ty));
	}
	fprintf(f, "},\"exits\":{\"total\":%llu,\"reasons\":{",
		(unsigned long long)stats_exits(STATS_EXIT_REASONS));
	bool any = false;
	for (unsigned r = 0; r <= STATS_EXIT_REASONS; r++) {
		uint64_t c = ld(&exit_count[r]);
		const char *nm = exit_reason_label(r);
		if (c == 0)
			continue;
		if (nm != NULL)
			fprintf(f, "%s\"%s\":%llu", any ? "," : "", nm, (unsigned long long)c);
		else if (r < STATS_EXIT_REASONS)
			fprintf(f, "%s\"reason_%u\":%llu", any ? "," : "", r,
				(unsigned long long)c);
		else
			fprintf(f, "%s\"other\":%llu", any ? "," : "", (unsigned long long)c);
		any = true;
	}
	fprintf(f, "}},\"compiled\":{\"coalesced\":%llu,\"doorbell\":%llu,\"doorbell_vmm\":%llu}",
		(unsigned long long)stats_compiled(STATS_COALESCED),
		(unsigned long long)stats_compiled(STATS_DOORBELL),
		(unsigned long long)stats_compiled(STATS_DOORBELL_VMM));
	fputs(",\"routes\":[", f);
	size_t n;
	struct route_stats **v = busy_routes(&n);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s{\"spec\":", i ? "," : "");
		stats_json_str(f, v[i]->spec);
		fputc(',', f);
		json_hist(f, &v[i]->lat);
		fprintf(f, ",\"exits\":%llu,\"compiled\":%llu}",
			(unsigned long long)ld(&v[i]->exits),
			(unsigned long long)route_compiled(v[i]));
	}
	free(v);
	fputs("],\"vmms\":[", f);
	bool first = true;
	for (uint16_t id = 0; id < VMM_MAX; id++) {
		if (hist_total(&vmm_hist[id]) == 0)
			continue;
		char nbuf[32], where[64];
		const char *nm = vmm_label(name, id, nbuf, sizeof(nbuf), where, sizeof(where));
		fprintf(f, "%s{\"id\":%u,\"name\":", first ? "" : ",", (unsigned)id);
		stats_json_str(f, nm);
		fputs(",\"where\":", f);
		stats_json_str(f, where);
		fputc(',', f);
		json_hist(f, &vmm_hist[id]);
		struct stats_vmm_extra x = extra_of(id);
		fprintf(f, ",\"restarts\":%u,\"redelivered\":%llu,\"maybe_duplicated\":%llu}",
			x.restarts, (unsigned long long)x.redelivered,
			(unsigned long long)x.maybe_duplicated);
		first = false;
	}
	fputs("]}\n", f);
}
