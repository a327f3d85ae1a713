/*
 * metrics.h: the metrics of a running machine as one JSON object (the
 * control API's metrics.get, read by `vmmux top`; docs/observability.md).
 *
 * Every field carries its unit in its name, in the spirit of Firecracker's
 * metrics:
 *
 *   {"uptime_s": 12.5, "interval_s": 1.0, "generation": 1,
 *    "events_total": N, "events_rate_per_s": R, "unrouted_total": U,
 *    "types": {"io": {"count", "rate_per_s", "latency_p50_ns",
 *                     "latency_p99_ns", "latency_max_ns", "unrouted"}, ...
 *              every event type},
 *    "routes": [{"spec", "vmm", "implicit", "count", "rate_per_s",
 *                "latency_p50_ns", "latency_p99_ns", "latency_max_ns"}...
 *               the routes of the published table, in table order],
 *    "vmms": [{"id", "name", "placement" ("in-process" | "parallel"),
 *              "where" ("in-process", "pid N", "down", "failed", "stopped"),
 *              "requests_total", "rate_per_s", "requests_inflight",
 *              "service_time_ewma_ns", "cpu_time_ns", "cpu_permille",
 *              "healthy", "restarts", "latency_p50_ns", "latency_p99_ns",
 *              "latency_max_ns"}... every VMM, by id]}
 *
 * Counts and latencies are those of the statistics (stats.h): events per
 * type, per route and per VMM that handled them (a fallback counts its own),
 * latency being the whole delivery. Rates are count deltas over interval_s:
 * the module keeps the previous sample of every object and the time it was
 * taken; each call measures from the previous call (whoever made it) or,
 * for the first, from metrics_start. A rate is never negative.
 */
#ifndef VMMUX_STATS_METRICS_H
#define VMMUX_STATS_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "stats/stats.h"

struct vmm;

/*
 * Where the VMMs come from (the VMM registry: vmm_count, vmm_get,
 * vmm_stats_name, pvmm_stats_extra), given as functions so that this module
 * depends on the registry's header only. Any member may be NULL: no VMM
 * (count, get), the "vmmN" name and no where, no restarts (extra).
 */
struct metrics_vmm_source {
	size_t (*count)(void);
	struct vmm *(*get)(uint16_t id);
	stats_vmm_name_fn name;
	stats_vmm_extra_fn extra;
};

/*
 * The run starts now: the origin of uptime_s and of the first rate
 * interval; SRC (copied; may be NULL) gives the VMMs. Forgets every previous
 * sample.
 */
void metrics_start(const struct metrics_vmm_source *src);

/*
 * The metrics now, as described above: a new reference, or NULL when memory
 * is short. Must be called on a registered, online router reader (the main
 * loop: it reads the published table); calls are serialised internally.
 */
json_t *metrics_get(void);

/* Forget the source and every previous sample (the run ended). */
void metrics_stop(void);

#endif
