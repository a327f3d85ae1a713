/*
 * stats.h: event statistics with latency percentiles.
 *
 * Counters are updated with relaxed atomics from any thread; no lock and no
 * system call on the event path. A histogram has log-linear buckets (16 per
 * power of two of nanoseconds), so a percentile is exact to within 1/16.
 * Statistics are kept per event type, per route (by canonical spec text, so a
 * route keeps its counts across table updates) and per VMM.
 */
#ifndef VMMUX_STATS_STATS_H
#define VMMUX_STATS_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vmmux/vmmux.h>

#define HIST_SUB     16
#define HIST_BUCKETS (64 * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t bucket[HIST_BUCKETS];
};

/* Add one sample (thread-safe, relaxed atomics). */
void hist_add(struct hist *h, uint64_t ns);
/* Percentile P (0-100) of the samples, in ns; 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
/* Merge SRC into DST (not atomic with respect to concurrent adds to DST). */
void hist_merge(struct hist *dst, const struct hist *src);

struct route_stats {
	char spec[256];
	struct hist lat;
	/* where the route's vCPU events came from (stats_route_origin) */
	uint64_t exits;	   /* a userspace exit (KVM_RUN returned to vmmux) */
	uint64_t compiled; /* KVM without an exit: a coalesced ring entry, a doorbell */
	struct route_stats *next;
};

/* The route_stats for a canonical spec text, created on first use; lives
 * until stats_fini. Thread-safe (writers are rare: table builds). Never
 * NULL: when memory is short, a shared "(untracked routes)" record. */
struct route_stats *stats_route(const char *spec_text);

/* Per type and per VMM statistics (VMM ids below VMM_MAX). */
void stats_record(unsigned type, uint16_t vmm, struct route_stats *rs, uint64_t ns);
/* Count an event that no route names (VMMUX_EVF_UNROUTED): it got its
 * type's built-in default from the main VMM. */
void stats_count_unrouted(unsigned type);

/*
 * Exits and what KVM delivered without one. stats_count_exit counts one
 * return of KVM_RUN to vmmux with its exit reason (KVM_EXIT_*; reasons from
 * STATS_EXIT_REASONS on are counted as "other"). stats_route_origin counts a
 * vCPU's event of route RS by origin: EXIT true when a userspace exit
 * produced it, false when KVM recorded it without one (routes compiled into
 * KVM: a coalesced ring entry, a doorbell ring). stats_count_compiled counts
 * what the compiled routes delivered, by kind.
 */
#define STATS_EXIT_REASONS 64
enum stats_compiled_kind {
	STATS_COALESCED = 0, /* coalesced ring entries vmmux drained */
	STATS_DOORBELL,	     /* doorbell rings vmmux read (in-process VMMs) */
	STATS_DOORBELL_VMM,  /* doorbell rings a parallel VMM read itself (reported) */
	STATS_COMPILED__COUNT
};
void stats_count_exit(unsigned reason);
void stats_route_origin(struct route_stats *rs, bool exit);
void stats_count_compiled(enum stats_compiled_kind k, uint64_t n);
uint64_t stats_exits(unsigned reason); /* one reason; STATS_EXIT_REASONS: all */
uint64_t stats_compiled(enum stats_compiled_kind k);

/*
 * Events a route's VMM received from KVM that vmmux never saw (a parallel
 * VMM's doorbells), by canonical route text: the report adds them to the
 * route's "compiled" count, and FN(NULL), their total over every route, to
 * STATS_DOORBELL_VMM. NULL: none. Called while the report is written.
 */
typedef uint64_t (*stats_route_extra_fn)(const char *spec);
void stats_set_route_extra(stats_route_extra_fn fn);

/* Time source for latencies: CLOCK_MONOTONIC in ns (vDSO, no system call). */
uint64_t stats_now_ns(void);

/* The start of the run, for events/s in the report. */
void stats_start(void);

/* Print the report to F: per type, per route, per VMM (name via callback). */
typedef const char *(*stats_vmm_name_fn)(uint16_t id, char *where, size_t wlen);

/* What the supervisor knows of a parallel VMM, for the VMM table. */
struct stats_vmm_extra {
	unsigned restarts;
	uint64_t redelivered;	   /* requests handled again after a restart */
	uint64_t maybe_duplicated; /* of those, the ones whose handler had started */
};
typedef void (*stats_vmm_extra_fn)(uint16_t id, struct stats_vmm_extra *x);
/* Set the source of those counters (NULL: all zero). */
void stats_set_vmm_extra(stats_vmm_extra_fn fn);
void stats_print(FILE *f, stats_vmm_name_fn name);
/* Write the same as one JSON object to F. */
void stats_print_json(FILE *f, stats_vmm_name_fn name);
/* Write S to F as a JSON string literal (quotes and backslashes escaped,
 * control characters as \u00XX); for the statistics and the trace. */
void stats_json_str(FILE *f, const char *s);

/* Read-only access for tests and the demo summary. */
const struct hist *stats_type_hist(unsigned type);
const struct hist *stats_vmm_hist(uint16_t vmm);
uint64_t stats_unrouted(unsigned type);

/* Free the route records and zero every counter (no table may still point
 * at a record). */
void stats_fini(void);

#endif
