/*
 * route_bench: the cost of the routing decision, router_resolve() on the
 * published table (router_current()), the very call every exit makes, for
 * port, MMIO and MSR keys, with 1, 64, 4096 and 65536 routes, keys that hit
 * a route and keys that miss (the type default applies), on one thread and
 * on one thread per CPU while a writer thread publishes a new table every
 * millisecond.
 *
 * Tables: N routes "KIND:KEY=v", keys spread over the key space with a gap
 * after each (ports: 1 port every 65536/N; MMIO: 4 KiB pages every 8 KiB;
 * MSRs: every other index), so that the gaps are misses. A table holds at
 * most ROUTE_MAX (4096) routes, type routes included; a larger N is the
 * table of as many routes as fit whose index is then widened to N entries
 * (the port array filled, the MMIO/MSR range arrays replaced by N ranges
 * that point to those routes): the lookup walks the index of N keys, the
 * case the table's layout has to make fast.
 *
 * Keys are drawn at random (fixed seed) from 4096 precomputed hits or
 * misses, so that neither the branch predictor nor the cache sees a single
 * key. Every key's result is checked once before timing (a hit resolves to
 * VMM v, a miss to the type default) so that a broken table cannot produce
 * a number. Timing: batches of BATCH lookups between two clock reads; per
 * round the p50 and p99 of ns per lookup over the batches and the rate;
 * printed: the median over the rounds [min-max], and the ratio of the p50
 * to the single-thread 1-route port hit of the same run.
 *
 * Usage: route_bench [-r ROUNDS] [-t MS_PER_CASE] [-q]
 *   -q   quick: 1 and 4096 routes only, 20 ms per case
 * Prints a markdown section on stdout.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench_util.h"
#include "route/router.h"
#include "route/spec.h"
#include "route/table.h"

#define NKEYS		  4096u /* keys per case, a power of two */
#define BATCH		  1024u /* lookups per timed batch */
#define MAX_ROUNDS	  16u
#define MAX_BATCH_SAMPLES 200000u
#define VMM_V		  1u
#define MAX_KEYED	  (ROUTE_MAX - VMMUX_EV__COUNT)

static unsigned rounds = 5;
static unsigned ms_per_case = 60;
static bool quick;

enum kind { K_IO, K_MMIO, K_MSR, K__COUNT };
static const char *const kind_name[K__COUNT] = {"port", "MMIO", "MSR"};
static const uint16_t kind_type[K__COUNT] = {VMMUX_EV_IO, VMMUX_EV_MMIO, VMMUX_EV_MSR};

static uint16_t resolve_v(void *arg, const char *name)
{
	(void)arg;
	return strcmp(name, "v") == 0 ? VMM_V : VMM_ID_NONE;
}

/* The first key of route I of N. */
static uint64_t key_of(enum kind k, unsigned i, unsigned n)
{
	switch (k) {
	case K_IO:
		return (uint64_t)i * (65536u / n);
	case K_MMIO:
		return 0x100000000ull + (uint64_t)i * 0x2000u;
	default:
		return 0x40000000ull + (uint64_t)i * 2u;
	}
}

static uint64_t key_size(enum kind k)
{
	return k == K_MMIO ? 0x1000u : 1u;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Build the table of N routes of kind K (see the header); NULL on error. */
static struct route_table *build(enum kind k, unsigned n)
{
	unsigned real = n < MAX_KEYED ? n : MAX_KEYED;
	struct route_spec *specs = calloc(real, sizeof(*specs));
	if (specs == NULL)
		return NULL;
	struct errbuf e = {0};
	for (unsigned i = 0; i < real; i++) {
		char text[96];
		uint64_t lo = key_of(k, i, n);
		snprintf(text, sizeof(text), "%s:0x%llx+0x%llx=v",
			 k == K_IO     ? "io"
			 : k == K_MMIO ? "mmio"
				       : "msr",
			 (unsigned long long)lo, (unsigned long long)key_size(k));
		if (route_spec_parse(text, &specs[i], &e) != 0) {
			fprintf(stderr, "route_bench: %s\n", e.msg);
			free(specs);
			return NULL;
		}
	}
	struct route_table *t = route_table_build(specs, real, resolve_v, NULL, &e);
	free(specs);
	if (t == NULL) {
		fprintf(stderr, "route_bench: %u %s routes: %s\n", n, kind_name[k], e.msg);
		return NULL;
	}
	if (real == n)
		return t;
	/* Widen the index to N keys over the REAL routes. */
	uint16_t first = (uint16_t)(t->nroutes - real); /* keyed routes follow the type routes */
	if (k == K_IO) {
		for (unsigned i = 0; i < n; i++)
			t->port[key_of(k, i, n)] = (uint16_t)(first + i % real);
		return t;
	}
	struct route_range *r = calloc(n, sizeof(*r));
	if (r == NULL) {
		route_table_free(t);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		r[i].lo = key_of(k, i, n);
		r[i].hi = r[i].lo + key_size(k) - 1;
		r[i].route = (uint16_t)(first + i % real);
	}
	int rc;
	if (k == K_MMIO) {
		free(t->mmio);
		t->mmio = r;
		t->nmmio = n;
		rc = range_index_build(&t->mmio_ix, t->mmio, t->nmmio);
	} else {
		free(t->msr);
		t->msr = r;
		t->nmsr = n;
		rc = range_index_build(&t->msr_ix, t->msr, t->nmsr);
	}
	if (rc) {
		route_table_free(t);
		return NULL;
	}
	return t;
}

/* NKEYS random keys of kind K for a table of N routes: hits or misses.
 * Returns false when there are no misses (every port routed). */
static bool make_keys(enum kind k, unsigned n, bool hit, uint64_t *keys)
{
	if (!hit && k == K_IO && n >= 65536u)
		return false;
	for (unsigned i = 0; i < NKEYS; i++) {
		unsigned r = (unsigned)(rng() % n);
		uint64_t lo = key_of(k, r, n);
		if (hit) {
			keys[i] = lo + rng() % key_size(k);
		} else if (k == K_IO) {
			unsigned stride = 65536u / n;
			keys[i] = lo + 1 + rng() % (stride - 1);
		} else {
			keys[i] = lo + key_size(k) + rng() % key_size(k);
		}
	}
	return true;
}

/* ---- the timed part -------------------------------------------------- */

struct worker {
	pthread_t th;
	int cpu;
	enum kind kind;
	const uint64_t *keys;
	uint64_t ms;
	/* results */
	double *ns; /* ns per lookup per batch */
	unsigned nsamples;
	uint64_t lookups, elapsed_ns;
	uint64_t sum; /* the VMM ids, so the compiler cannot drop a lookup */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pin(int cpu)
{
	return bench_pin(NULL, cpu);
}

static _Atomic bool go;

static void *reader(void *arg)
{
	struct worker *w = arg;
	if (w->cpu >= 0)
		pin(w->cpu);
	router_thread_register();
	while (!atomic_load(&go))
		;
	struct vmmux_event ev = {.type = kind_type[w->kind], .size = 1, .count = 1};
	uint64_t t_start = now_ns(), deadline = t_start + w->ms * 1000000ull;
	unsigned pos = (unsigned)(uintptr_t)w & (NKEYS - 1);
	w->nsamples = 0;
	w->lookups = 0;
	uint64_t t = t_start;
	while (t < deadline && w->nsamples < MAX_BATCH_SAMPLES) {
		const struct route_table *tab = router_current();
		for (unsigned i = 0; i < BATCH; i++) {
			ev.key = w->keys[pos++ & (NKEYS - 1)];
			ev.flags = 0;
			struct route_target tg = router_resolve(tab, &ev);
			w->sum += tg.vmm;
		}
		uint64_t t1 = now_ns();
		w->ns[w->nsamples++] = (double)(t1 - t) / BATCH;
		w->lookups += BATCH;
		t = t1;
		router_quiescent();
	}
	w->elapsed_ns = t - t_start;
	router_thread_unregister();
	return NULL;
}

struct writer {
	pthread_t th;
	enum kind kind;
	unsigned n;
	_Atomic bool stop;
	unsigned published;
	bool failed;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	while (!atomic_load(&w->stop)) {
		struct route_table *t = build(w->kind, w->n);
		if (t == NULL) {
			w->failed = true;
			return NULL;
		}
		router_publish(t);
		w->published++;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, unsigned n, unsigned p)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
	return v[(size_t)n * p / 100 < n ? (size_t)n * p / 100 : n - 1];
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct result {
	double p50[MAX_ROUNDS], p99[MAX_ROUNDS], rate[MAX_ROUNDS];
	unsigned published;
};

/* One case: THREADS readers (0: one, unpinned... 1: one; 2: one per CPU
 * with a writer). */
static int run_case(enum kind k, unsigned n, const uint64_t *keys, unsigned threads,
		    struct result *res)
{
	struct worker w[2];
	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < threads; i++) {
		w[i].ns = malloc(MAX_BATCH_SAMPLES * sizeof(double));
		if (w[i].ns == NULL)
			return -1;
	}
	res->published = 0;
	for (unsigned r = 0; r < rounds; r++) {
		struct writer wr = {.kind = k, .n = n};
		atomic_store(&go, false);
		for (unsigned i = 0; i < threads; i++) {
			w[i].cpu = threads > 1 ? (int)i : 0;
			w[i].kind = k;
			w[i].keys = keys;
			w[i].ms = ms_per_case;
			if (pthread_create(&w[i].th, NULL, reader, &w[i]) != 0)
				return -1;
		}
		if (threads > 1 && pthread_create(&wr.th, NULL, writer_main, &wr) != 0)
			return -1;
		atomic_store(&go, true);
		for (unsigned i = 0; i < threads; i++)
			pthread_join(w[i].th, NULL);
		if (threads > 1) {
			atomic_store(&wr.stop, true);
			pthread_join(wr.th, NULL);
			if (wr.failed)
				return -1;
			res->published += wr.published;
		}
		/* merge the samples of the threads */
		unsigned total = 0;
		double rate = 0;
		for (unsigned i = 0; i < threads; i++) {
			total += w[i].nsamples;
			rate += (double)w[i].lookups * 1e9 / (double)w[i].elapsed_ns;
		}
		double *all = malloc((total ? total : 1) * sizeof(double));
		if (all == NULL || total == 0) {
			free(all);
			return -1;
		}
		unsigned at = 0;
		for (unsigned i = 0; i < threads; i++) {
			memcpy(all + at, w[i].ns, w[i].nsamples * sizeof(double));
			at += w[i].nsamples;
		}
		res->p50[r] = pct(all, total, 50);
		res->p99[r] = pct(all, total, 99);
		res->rate[r] = rate;
		free(all);
	}
	for (unsigned i = 0; i < threads; i++)
		free(w[i].ns);
	return 0;
}

/* Check every key once: hits go to v, misses to the type default. */
static int check_keys(enum kind k, const uint64_t *keys, bool hit)
{
	router_thread_register();
	const struct route_table *t = router_current();
	int rc = 0;
	for (unsigned i = 0; i < NKEYS && rc == 0; i++) {
		struct vmmux_event ev = {
		    .type = kind_type[k], .size = 1, .count = 1, .key = keys[i]};
		struct route_target tg = router_resolve(t, &ev);
		bool is_hit = tg.vmm == VMM_V && !(ev.flags & VMMUX_EVF_UNROUTED);
		if (is_hit != hit) {
			fprintf(stderr, "route_bench: %s key 0x%llx: expected a %s, got VMM %u\n",
				kind_name[k], (unsigned long long)keys[i], hit ? "hit" : "miss",
				tg.vmm);
			rc = -1;
		}
	}
	router_thread_unregister();
	return rc;
}

static double mid(const double *v)
{
	double c[MAX_ROUNDS];
	memcpy(c, v, rounds * sizeof(double));
	return median(c, rounds);
}

static double lo_of(const double *v)
{
	double m = v[0];
	for (unsigned i = 1; i < rounds; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double hi_of(const double *v)
{
	double m = v[0];
	for (unsigned i = 1; i < rounds; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static void usage(void)
{
	fprintf(stderr, "usage: route_bench [-r ROUNDS (1-16)] [-t MS_PER_CASE (1-10000)] [-q]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int c;
	bool t_given = false;
	while ((c = getopt(argc, argv, "r:t:qh")) != -1) {
		long v = optarg ? strtol(optarg, NULL, 0) : 0;
		switch (c) {
		case 'r':
			if (v < 1 || v > (long)MAX_ROUNDS)
				usage();
			rounds = (unsigned)v;
			break;
		case 't':
			if (v < 1 || v > 10000)
				usage();
			ms_per_case = (unsigned)v;
			t_given = true;
			break;
		case 'q':
			quick = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (quick && !t_given)
		ms_per_case = 20;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned mt = ncpu >= 2 ? 2 : 0;

	static const unsigned counts_all[] = {1, 64, 4096, 65536};
	static const unsigned counts_quick[] = {1, 4096};
	const unsigned *counts = quick ? counts_quick : counts_all;
	unsigned ncounts = quick ? 2 : 4;

	printf("## Routing decision\n\n");
	printf("`router_resolve()` on the published table, the call every exit makes, "
	       "timed in batches of %u lookups of random keys (4096 distinct per case); "
	       "%u rounds of %u ms per case; p50/p99 of ns per lookup over the batches, "
	       "median over the rounds [min-max]; ratio: p50 against the single-thread "
	       "1-route port hit of this run. Single thread: pinned to CPU 0. Per CPU: "
	       "one reader pinned on each of the %ld CPUs while a writer thread builds and "
	       "publishes a new table every millisecond (rate: all readers together). "
	       "A table holds at most %u routes (ROUTE_MAX, its %u type routes "
	       "included); with 4096 and 65536 keys the index (port array, MMIO/MSR "
	       "ranges) has that many entries over the %u routes that fit.\n\n",
	       BATCH, rounds, ms_per_case, ncpu, ROUTE_MAX, VMMUX_EV__COUNT, MAX_KEYED);
	printf("| key | routes | lookup | threads | ns/lookup p50 | ns/lookup p99 | "
	       "M lookups/s | ratio |\n|---|---|---|---|---|---|---|---|\n");

	uint64_t *keys = malloc(NKEYS * sizeof(*keys));
	if (keys == NULL)
		return 1;
	double base = 0;
	int rc = 0;
	double worst4096 = 0, port1 = 0, port4096 = 0;
	for (int k = 0; k < K__COUNT && rc == 0; k++) {
		for (unsigned ci = 0; ci < ncounts && rc == 0; ci++) {
			unsigned n = counts[ci];
			struct route_table *t = build((enum kind)k, n);
			if (t == NULL) {
				rc = 1;
				break;
			}
			router_init(t);
			for (int hit = 1; hit >= 0 && rc == 0; hit--) {
				if (!make_keys((enum kind)k, n, hit, keys)) {
					printf("| %s | %u | miss | - | every port is routed | - | "
					       "- | - "
					       "|\n",
					       kind_name[k], n);
					continue;
				}
				if (check_keys((enum kind)k, keys, hit) != 0) {
					rc = 1;
					break;
				}
				for (unsigned th = 1; th <= (mt ? mt : 1) && rc == 0; th += 1) {
					if (th == 2 && !mt)
						break;
					struct result res;
					if (run_case((enum kind)k, n, keys, th, &res) != 0) {
						fprintf(stderr, "route_bench: case failed\n");
						rc = 1;
						break;
					}
					double m50 = mid(res.p50);
					if (base == 0)
						base = m50;
					if (n == 4096 && th == 1 && m50 > worst4096)
						worst4096 = m50;
					if (k == K_IO && hit && th == 1 && n == 1)
						port1 = m50;
					if (k == K_IO && hit && th == 1 && n == 4096)
						port4096 = m50;
					char thr[64];
					if (th == 1)
						snprintf(thr, sizeof(thr), "1");
					else
						snprintf(thr, sizeof(thr),
							 "%u + writer (%u tables)", th,
							 res.published);
					printf("| %s | %u | %s | %s | %.1f [%.1f-%.1f] | %.1f "
					       "[%.1f-%.1f] "
					       "| %.1f [%.1f-%.1f] | %.2fx |\n",
					       kind_name[k], n, hit ? "hit" : "miss", thr, m50,
					       lo_of(res.p50), hi_of(res.p50), mid(res.p99),
					       lo_of(res.p99), hi_of(res.p99), mid(res.rate) / 1e6,
					       lo_of(res.rate) / 1e6, hi_of(res.rate) / 1e6,
					       m50 / base);
					fflush(stdout);
				}
			}
			router_fini();
		}
	}
	free(keys);
	if (rc != 0)
		return rc;
	printf("\nTargets: at most 20 ns median per lookup at 4096 routes (worst single-thread "
	       "p50 over the three key kinds, hit and miss: %.1f ns): %s; ports flat from 1 to "
	       "4096 routes (hit p50 %.1f ns at 1, %.1f ns at 4096: %+.0f%%): %s.\n\n",
	       worst4096, worst4096 <= 20.0 ? "**met**" : "**missed**", port1, port4096,
	       100.0 * (port4096 / port1 - 1.0),
	       port4096 <= port1 * 1.25 + 1.0 ? "**met**" : "**missed**");
	return 0;
}
