/*
 * transport_bench: what a synchronous event costs when its VMM is a separate
 * process reached through the shared-memory transport, against a handler
 * called in-process through a function pointer.
 *
 * Variants (the main thread on CPU 0, a forked server process on CPU 1 or
 * on CPU 0 too):
 *   spin, cross-CPU     spin budget SPIN_US (default 50), server on CPU 1
 *   spin, same CPU      spin budget SPIN_US, server on CPU 0
 *   block, cross-CPU    spin budget 0 (futex / eventfd sleep at once)
 *   block, same CPU
 * and the posted ring's throughput with the consumer on CPU 1 (spinning and
 * blocking). Each variant runs ROUNDS rounds of WARMUP + CALLS calls; per
 * round the p50 and p99 of the per-call round trip (clock_gettime around
 * tp_main_call, so the clock's own cost is included, as it is in the
 * in-process line timed the same way). Printed per variant: the median over
 * the rounds of p50 and p99, their min-max spread, and the ratio of the
 * median p50 to the in-process one.
 *
 * Usage: transport_bench [-n CALLS] [-r ROUNDS] [-s SPIN_US] [-p POSTS]
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench_util.h"
#include "transport/transport.h"

#define KEY_QUIT  0xdead
#define KEY_COUNT 0xc0c0 /* reply value: posted events handled so far */
#define WARMUP	  2000u

static unsigned calls_per_round = 20000;
static unsigned rounds = 5;
static uint64_t spin_ns = 50000;
static unsigned posts_per_round = 1000000;

struct server {
	bool quit;
	uint64_t posted;
};

static int bench_handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			 struct vmmux_event *raised, uint32_t *nraised)
{
	(void)raised, (void)nraised;
	struct server *s = arg;
	if (ev->flags & VMMUX_EVF_WRITE) {
		s->posted++;
		return 0;
	}
	if (ev->key == KEY_QUIT)
		s->quit = true;
	else if (ev->key == KEY_COUNT)
		rep->value = s->posted;
	else
		rep->value = ev->key ^ ev->value;
	return 0;
}

static int pin(int cpu)
{
	return bench_pin("transport_bench", cpu);
}

static pid_t start_server(const struct tp_region *r, int cpu)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
	if (getppid() != parent)
		_exit(2);
	if (pin(cpu) != 0)
		_exit(2);
	struct tp_region v;
	if (tp_region_attach(&v, r->memfd, r->vmm_efd, r->async_efd) != 0) {
		fprintf(stderr, "transport_bench: server: attach: %s\n", strerror(errno));
		_exit(2);
	}
	struct server s = {0};
	while (!s.quit) {
		tp_vmm_wait(&v, NULL, 0, 100);
		tp_vmm_serve(&v, bench_handler, &s, NULL);
	}
	_exit(0);
}

static int call(struct tp_region *r, uint64_t key, uint64_t *value)
{
	struct vmmux_event ev = {
	    .type = VMMUX_EV_IO, .size = 1, .count = 1, .key = key, .value = 0x55, .vcpu = 0};
	struct vmmux_reply rep;
	int32_t res;
	enum tp_result t =
	    tp_main_call(r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 2000000000ull, NULL);
	if (t != TP_OK) {
		fprintf(stderr, "transport_bench: call failed (%d)\n", t);
		return -1;
	}
	if (value != NULL)
		*value = rep.value;
	return 0;
}

static int stop_server(struct tp_region *r, pid_t pid)
{
	int rc = call(r, KEY_QUIT, NULL);
	int st;
	waitpid(pid, &st, 0);
	return rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* p50 and p99 of N samples (sorted in place), in us. */
static void percentiles(uint64_t *v, unsigned n, double *p50, double *p99)
{
	qsort(v, n, sizeof(v[0]), cmp_u64);
	*p50 = (double)v[n / 2] / 1000.0;
	*p99 = (double)v[(size_t)n * 99 / 100] / 1000.0;
}

struct summary {
	double p50[16], p99[16];
};

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double minimum(const double *v, unsigned n)
{
	double m = v[0];
	for (unsigned i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double maximum(const double *v, unsigned n)
{
	double m = v[0];
	for (unsigned i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* The in-process p50 timed like the transport calls: the ratios' base. */
static double baseline_p50;

/* One row; BASE: this row is the baseline; REF: a row for reference only. */
static void print_row(const char *name, struct summary *s, bool base, bool ref)
{
	double lo50 = minimum(s->p50, rounds), hi50 = maximum(s->p50, rounds);
	double lo99 = minimum(s->p99, rounds), hi99 = maximum(s->p99, rounds);
	double m50 = median(s->p50, rounds), m99 = median(s->p99, rounds);
	if (base)
		baseline_p50 = m50;
	printf("%-32s %8.3f (%7.3f-%7.3f) %8.3f (%7.3f-%7.3f)", name, m50, lo50, hi50, m99, lo99,
	       hi99);
	if (ref)
		printf(" %8s %9s\n", "-", "-");
	else
		printf(" %7.0fx %9.3f\n", m50 / baseline_p50, m50 - baseline_p50);
	fflush(stdout);
}

/* The in-process handler, reached through a pointer the compiler cannot see
 * through. */
static int (*volatile handler_ptr)(void *, struct vmmux_event *, struct vmmux_reply *,
				   struct vmmux_event *, uint32_t *) = bench_handler;

static void bench_inprocess(uint64_t *lat)
{
	struct server s = {0};
	struct summary sum;
	struct vmmux_event raised[TP_RAISE_MAX];
	for (unsigned round = 0; round < rounds; round++) {
		for (unsigned i = 0; i < WARMUP + calls_per_round; i++) {
			struct vmmux_event ev = {
			    .type = VMMUX_EV_IO, .size = 1, .count = 1, .key = i, .value = 0x55};
			struct vmmux_reply rep = {0};
			uint32_t nr = 0;
			uint64_t t0 = tp_now_ns();
			handler_ptr(&s, &ev, &rep, raised, &nr);
			uint64_t t1 = tp_now_ns();
			if (i >= WARMUP)
				lat[i - WARMUP] = t1 - t0;
		}
		percentiles(lat, calls_per_round, &sum.p50[round], &sum.p99[round]);
	}
	print_row("in-process call, timed per call", &sum, true, false);

	/* the call alone: batches of 1000, the clock outside */
	for (unsigned round = 0; round < rounds; round++) {
		for (unsigned b = 0; b < calls_per_round / 100; b++) {
			uint64_t t0 = tp_now_ns();
			for (unsigned i = 0; i < 1000; i++) {
				struct vmmux_event ev = {.type = VMMUX_EV_IO, .key = i};
				struct vmmux_reply rep = {0};
				uint32_t nr = 0;
				handler_ptr(&s, &ev, &rep, raised, &nr);
			}
			lat[b] = tp_now_ns() - t0; /* ns per 1000 calls: ps per call */
		}
		percentiles(lat, calls_per_round / 100, &sum.p50[round], &sum.p99[round]);
		sum.p50[round] /= 1000;
		sum.p99[round] /= 1000;
	}
	print_row("in-process call, batch of 1000", &sum, false, true);
}

static int bench_calls(const char *name, uint64_t spin, int server_cpu, uint64_t *lat)
{
	struct tp_region r;
	if (tp_region_create(&r, 1, spin) != 0) {
		fprintf(stderr, "transport_bench: region: %s\n", strerror(errno));
		return -1;
	}
	pid_t pid = start_server(&r, server_cpu);
	if (pid < 0) {
		tp_region_destroy(&r);
		return -1;
	}
	struct summary sum;
	int rc = 0;
	for (unsigned round = 0; round < rounds && rc == 0; round++) {
		for (unsigned i = 0; i < WARMUP + calls_per_round; i++) {
			uint64_t t0 = tp_now_ns();
			if (call(&r, i & 0xfff, NULL) != 0) {
				rc = -1;
				break;
			}
			uint64_t t1 = tp_now_ns();
			if (i >= WARMUP)
				lat[i - WARMUP] = t1 - t0;
		}
		if (rc == 0)
			percentiles(lat, calls_per_round, &sum.p50[round], &sum.p99[round]);
	}
	if (stop_server(&r, pid) != 0)
		rc = -1;
	tp_region_destroy(&r);
	if (rc == 0)
		print_row(name, &sum, false, false);
	return rc;
}

static int bench_posted(const char *name, uint64_t spin)
{
	struct tp_region r;
	if (tp_region_create(&r, 1, spin) != 0) {
		fprintf(stderr, "transport_bench: region: %s\n", strerror(errno));
		return -1;
	}
	pid_t pid = start_server(&r, 1);
	double rate[16];
	unsigned fulls = 0;
	uint64_t done = 0;
	int rc = 0;
	for (unsigned round = 0; round < rounds && rc == 0; round++) {
		uint64_t t0 = tp_now_ns();
		for (unsigned i = 0; i < posts_per_round; i++) {
			struct vmmux_event ev = {.type = VMMUX_EV_IO,
						 .flags = VMMUX_EVF_WRITE,
						 .size = 1,
						 .count = 1,
						 .key = 0x80,
						 .value = i};
			while (tp_main_post(&r, &ev) == TP_FULL) {
				fulls++;
				__builtin_ia32_pause();
			}
		}
		done += posts_per_round;
		uint64_t seen = 0;
		while (rc == 0 && seen < done)
			rc = call(&r, KEY_COUNT, &seen);
		uint64_t t1 = tp_now_ns();
		rate[round] = (double)posts_per_round / ((double)(t1 - t0) / 1e9);
	}
	if (stop_server(&r, pid) != 0)
		rc = -1;
	tp_region_destroy(&r);
	if (rc != 0)
		return -1;
	double lo = minimum(rate, rounds), hi = maximum(rate, rounds);
	double m = median(rate, rounds);
	printf("%-32s %8.2f M events/s (%.2f-%.2f), %.1f ns per event, producer found the "
	       "ring full %u times\n",
	       name, m / 1e6, lo / 1e6, hi / 1e6, 1e9 / m, fulls);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: transport_bench [-n CALLS] [-r ROUNDS (1-16)] [-s SPIN_US] "
			"[-p POSTS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "n:r:s:p:h")) != -1) {
		long v = optarg ? strtol(optarg, NULL, 0) : 0;
		switch (c) {
		case 'n':
			if (v < 100 || v > 10000000)
				usage();
			calls_per_round = (unsigned)v;
			break;
		case 'r':
			if (v < 1 || v > 16)
				usage();
			rounds = (unsigned)v;
			break;
		case 's':
			if (v < 0 || v * 1000 > TP_SPIN_NS_MAX)
				usage();
			spin_ns = (uint64_t)v * 1000;
			break;
		case 'p':
			if (v < 1000 || v > 100000000)
				usage();
			posts_per_round = (unsigned)v;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2) {
		fprintf(stderr, "transport_bench: needs 2 CPUs, this host has %ld\n", ncpu);
		return 1;
	}
	if (pin(0) != 0)
		return 1;
	uint64_t *lat = calloc(calls_per_round, sizeof(*lat));
	if (lat == NULL)
		return 1;
	printf("transport_bench: %u calls per round after %u warm-up, %u rounds, main on CPU 0; "
	       "spin budget %llu us\n",
	       calls_per_round, WARMUP, rounds, (unsigned long long)(spin_ns / 1000));
	printf("%-32s %27s %27s %8s %9s\n", "round trip, us", "p50: median (min-max)",
	       "p99: median (min-max)", "p50 ratio", "p50 added");
	bench_inprocess(lat);
	char name[64];
	snprintf(name, sizeof(name), "spin %llu us, cross-CPU (0/1)",
		 (unsigned long long)(spin_ns / 1000));
	int rc = bench_calls(name, spin_ns, 1, lat);
	snprintf(name, sizeof(name), "spin %llu us, same CPU (0/0)",
		 (unsigned long long)(spin_ns / 1000));
	rc |= bench_calls(name, spin_ns, 0, lat);
	rc |= bench_calls("block, cross-CPU (0/1)", 0, 1, lat);
	rc |= bench_calls("block, same CPU (0/0)", 0, 0, lat);
	printf("posted ring, %u events per round, consumer on CPU 1:\n", posts_per_round);
	snprintf(name, sizeof(name), "  consumer spins %llu us",
		 (unsigned long long)(spin_ns / 1000));
	rc |= bench_posted(name, spin_ns);
	rc |= bench_posted("  consumer blocks", 0);
	free(lat);
	return rc == 0 ? 0 : 1;
}
