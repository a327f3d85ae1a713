/*
 * live.h: changing a running machine, without pausing the guest.
 *
 * The control API (src/api) calls these on the control thread, one at a
 * time; their waits are bounded and offline for the router (route
 * publication never waits for readers: call_rcu), and the supervisor never
 * waits for them (a process is managed by one thread at a time). They never
 * block the vCPUs beyond one event (a VMM being swapped holds its events
 * back while it drains).
 *
 * Routes. The live route set starts as the config's routes. A change is one
 * operation or a batch applied all at once: the new set is checked and
 * compiled into a new table as a whole (any error: nothing changes), then
 * published with one atomic store (router_publish), so that every vCPU's next
 * event sees either the old table or the new one, never a half-applied batch.
 * What KVM holds of the table is updated after the publication, in this
 * order: the MSR filter (KVM_X86_SET_MSR_FILTER), then the irqfd wiring of
 * parallel VMMs' lines. An MSR that newly exits therefore always finds its
 * route already published; an MSR whose route went away stops exiting right
 * after (an exit in between meets the new table: the type default). Each
 * event is routed by exactly one generation of the table.
 *
 * VMMs. A VMM can be added at run time, started, stopped, restarted, and
 * swapped for a new instance (possibly of a new program): the new one is
 * started beside the old, the old one's events are held back, its in-flight
 * requests drained, its saved state moved into the new one, the table
 * republished with the new one in its place (it takes the old name and id),
 * the held events released to it, and the old one stopped.
 */
#ifndef VMMUX_VMM_LIVE_H
#define VMMUX_VMM_LIVE_H

#include <jansson.h>
#include <stdint.h>

#include "route/spec.h"
#include "util/err.h"
#include "vmm/vmm.h"

enum live_op {
	LIVE_ADD,     /* add the route SPEC (an overlap is an error) */
	LIVE_DELETE,  /* delete the route whose kind, key range and source SPEC
		       * gives ("io:0x3f8-0x3ff" or a whole spec; =VMM and the
		       * options other than from= are ignored) */
	LIVE_REPLACE, /* replace the route with SPEC's kind, key range and
		       * source by SPEC */
};

struct live_change {
	enum live_op op;
	char spec[ROUTE_SPEC_TEXT_MAX];
};

/* Parse "add", "delete", "replace"; -1 when unknown. */
int live_op_parse(const char *s);

/* Take the config's routes as the live route set (machine set-up). */
int live_init(const struct route_spec *routes, size_t n, struct errbuf *e);
void live_fini(void);

/*
 * Apply N changes at once. On success returns 0 and *generation is the new
 * table's generation; on error returns -1 and nothing has changed: the
 * message names the change (its index in a batch) when the change itself is
 * wrong (bad spec, no such route), or the conflict (both routes) when the
 * table the changes make is.
 */
int live_routes_apply(const struct live_change *c, size_t n, uint64_t *generation,
		      struct errbuf *e);

/* The published routes: [{"spec", "vmm", "kind", "implicit"}...] and the
 * generation, as {"generation": G, "routes": [...]}. New reference. */
json_t *live_routes_json(void);

/*
 * The VMMs: [{"id", "name", "role", "placement", "state" (up, starting, down,
 * failed, stopped, swapping, in-process), "pid", "restarts",
 * "requests_inflight", "requests_total", "service_time_ewma_ns",
 * "cpu_time_ns", "healthy"}...]. New reference.
 */
json_t *live_vmms_json(void);

/* Add a VMM described by C (its name must be new); a parallel one is started
 * (run --parallel applies to a VMM whose placement C does not give). Its id
 * is returned in *id. */
int live_vmm_add(const struct vmm_config *c, uint16_t *id, struct errbuf *e);

/* Start a stopped VMM, stop a running one (its events then get the route's
 * fallback or the built-in default; a group skips it), restart one. */
int live_vmm_start(const char *name, struct errbuf *e);
int live_vmm_stop(const char *name, struct errbuf *e);
int live_vmm_restart(const char *name, struct errbuf *e);

/* Swap VMM NAME for a new instance described by C (C's name is ignored: the
 * new instance takes NAME). Returns when the old one is stopped. */
int live_vmm_swap(const char *name, const struct vmm_config *c, struct errbuf *e);

/* Raise platform event CODE (smi, reset, poweroff, powerbtn, watchdog) with
 * VALUE, as the host (source "host"), routed like any other. */
int live_platform(unsigned code, uint64_t value, struct errbuf *e);

#endif
