/*
 * table.h: the routing table, an immutable snapshot.
 *
 * The table is the "resource" whose "fields" name the VMM for an event: one
 * default VMM per event type, and keyed fields (port ranges, MMIO ranges, MSR
 * ranges, hypercall numbers, exception vectors, platform codes, request
 * kinds). A table is built once from a list of route specs and never changed
 * afterwards; the router (router.h) publishes a new table to change routing.
 *
 * Lookups take no lock and make no system call:
 *   - ports and hypercalls: one 64Ki-entry array of route indices (128 KiB),
 *     O(1); a hypercall:N route occupies port 0x500+N, so that overlaps
 *     between io and hypercall routes are caught like any other;
 *   - MMIO and MSR: sorted arrays of non-overlapping ranges, binary search;
 *   - exception vectors, platform codes, request kinds, type defaults:
 *     small direct arrays.
 * Overlapping routes of one kind are refused at build time with an error that
 * names both specs.
 */
#ifndef VMMUX_ROUTE_TABLE_H
#define VMMUX_ROUTE_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "route/spec.h"
#include "util/err.h"
#include <vmmux/vmmux.h>

/* VMM ids are small integers; 0 is always the main VMM. */
#define VMM_ID_MAIN 0
#define VMM_ID_NONE 0xffffu
/* The VMM "id" of a route whose VMM is a group (route.group): no VMM has it;
 * the group's policy picks the member at dispatch time (src/vmm/policy.h). */
#define VMM_ID_GROUP 0xfffeu
#define VMM_MAX	     64

/* Route index in a table; ROUTE_NONE when no keyed route matched. */
#define ROUTE_NONE 0xffffu
#define ROUTE_MAX  4096 /* routes per table, type defaults included */

#define HYPERCALL_PORT_BASE 0x500u
#define HYPERCALL_MAX	    255u

struct route_stats; /* stats.h; per route, shared by every table holding it */

/* Flag of a route (besides ROUTE_OPT_*): the implicit "type:NAME=main" route
 * of a type that no type: spec covers. */
#define ROUTE_FLAG_IMPLICIT 0x80000000u

/*
 * A route's group, compiled: the members' VMM ids and weights in the order
 * the spec gives them, and for the weighted policy one period of its smooth
 * weighted round-robin sequence. Immutable once built, except the two
 * atomics at the end, the policy's running state (src/vmm/policy.c), which
 * do not carry over to a new table.
 */
struct route_group {
	enum route_policy policy;
	unsigned n;			    /* 1..ROUTE_GROUP_MAX */
	uint16_t member[ROUTE_GROUP_MAX];   /* VMM ids, distinct */
	uint16_t weight[ROUTE_GROUP_MAX];   /* 1..ROUTE_WEIGHT_MAX */
	uint32_t nseq;			    /* weighted: the period */
	uint8_t *seq;			    /* weighted: member indices */
	_Alignas(64) _Atomic uint64_t next; /* picks: the turn (round-robin,
					     * weighted), the probes (least-loaded) */
	_Atomic uint32_t none_logged;	    /* no member could take an event */
};

/* One compiled route. */
struct route {
	struct route_spec spec;
	uint16_t vmm;		   /* target VMM id; VMM_ID_GROUP when group != NULL */
	struct route_group *group; /* the group its events go to, or NULL */
	uint16_t fallback;	   /* VMM id, or VMM_ID_NONE */
	uint16_t from;		   /* with from=: the raising VMM's id; else VMM_ID_NONE */
	uint32_t flags;		   /* ROUTE_OPT_*, ROUTE_FLAG_IMPLICIT */
	uint64_t timeout_ns;
	struct route_stats *stats; /* never NULL in a published table */
};

/* A range entry of the MMIO and MSR indices. */
struct route_range {
	uint64_t lo, hi;
	uint16_t route;
};

/*
 * The search index over a sorted range array's lo keys: an implicit static
 * B-tree of fan-out RANGE_FANOUT. Level 0 holds every lo, level l+1 every
 * RANGE_FANOUT-th key of level l, up to a top level of at most RANGE_FANOUT
 * keys; each level is padded to a whole block with UINT64_MAX. A lookup
 * scans one block per level without a branch on the keys (a count of the
 * keys <= the key), so that its cost is a few cache lines, not a chain of
 * mispredicted branches: 3 blocks for 4096 ranges, 4 for 65536.
 */
#define RANGE_FANOUT	 16u
#define RANGE_LEVELS_MAX 6u /* up to 16^6 ranges */
struct range_index {
	uint64_t *keys;			/* the levels, level 0 first; NULL when empty */
	uint32_t off[RANGE_LEVELS_MAX]; /* start of each level in keys */
	uint32_t len[RANGE_LEVELS_MAX]; /* real (unpadded) keys of each level */
	unsigned levels;		/* 0: no ranges */
};

/*
 * Build IX over the N ranges R (sorted by lo, disjoint), replacing what IX
 * held; 0, or -1 on allocation failure or N above 16^RANGE_LEVELS_MAX (IX
 * then empty). route_table_build calls it; a caller that replaces a table's
 * range array calls it again.
 */
int range_index_build(struct range_index *ix, const struct route_range *r, size_t n);
void range_index_free(struct range_index *ix);

struct route_table {
	uint64_t generation;			/* set by the router when published */
	uint16_t port[65536];			/* route index per port, ROUTE_NONE if none */
	uint16_t type_default[VMMUX_EV__COUNT]; /* VMM id per event type */
	uint16_t type_route[VMMUX_EV__COUNT];	/* route index of a type: route */
	uint16_t exception[256];		/* route index per vector */
	uint16_t platform[VMMUX_PLAT__COUNT];
	uint16_t request[VMMUX_REQ__COUNT];
	struct route_range *mmio; /* sorted by lo, non-overlapping */
	size_t nmmio;
	struct route_range *msr;
	size_t nmsr;
	struct range_index mmio_ix; /* over mmio, for route_lookup_mmio */
	struct range_index msr_ix;  /* over msr */
	uint16_t *sourced;	    /* routes with from=, in the order given */
	size_t nsourced;
	size_t nroutes;
	struct route *routes; /* nroutes entries */
};

/*
 * Resolve a VMM name to its id; returns VMM_ID_NONE when no VMM has that
 * name. Supplied by whoever builds a table (the VMM registry, a test).
 */
typedef uint16_t (*vmm_resolve_fn)(void *arg, const char *name);

/*
 * Build a table from specs. The table first holds one implicit route per
 * event type, "type:NAME=main" (so every event has a route for statistics
 * and type_route[t] is always a valid index; those routes carry
 * ROUTE_FLAG_IMPLICIT); a type: spec replaces the
 * implicit route of its types (a type: range such as type:io-msr=x covers
 * several). Keyed specs follow in the order given. A spec whose VMM is a
 * group compiles to a route with vmm == VMM_ID_GROUP and its group (member
 * ids, weights, policy; for weighted, the sequence, see route_group_swrr).
 * Fails (-1, message in e) on an unknown VMM name (fallback, source and
 * every group member included; the message names it), a malformed group in
 * a hand-built spec, an overlap (naming both specs and the first key they
 * share), a posted option on a kind that has no writes, more than ROUTE_MAX
 * routes, or out of memory. The returned table is owned by the caller
 * (route_table_free) and has stats == NULL in every route until
 * the router attaches them. The name "main" always resolves to VMM_ID_MAIN
 * without asking RESOLVE (which may be NULL: then "main" is the only name);
 * an id of VMM_MAX or more is refused.
 */
struct route_table *route_table_build(const struct route_spec *specs, size_t n,
				      vmm_resolve_fn resolve, void *arg, struct errbuf *e);

void route_table_free(struct route_table *t);

/*
 * The smooth weighted round-robin of a weighted group (nginx's algorithm):
 * each step, every member's current weight grows by its weight, the member
 * with the largest current weight is chosen (the first one on a tie), and
 * its current weight drops by the sum of the weights. The sequence repeats
 * every sum-of-the-weights steps; dividing the weights by their greatest
 * common divisor leaves it unchanged and shortens that period.
 *
 * route_group_period: the period for the N weights W (the sum of the
 * reduced weights), or 0 when N is 0 or above ROUTE_GROUP_MAX or a weight
 * is 0. route_group_swrr: writes one period of member indices to OUT (room
 * for route_group_period(W, N) entries) and returns the period.
 */
uint32_t route_group_period(const uint16_t *w, unsigned n);
uint32_t route_group_swrr(const uint16_t *w, unsigned n, uint8_t *out);

/* Keyed lookups: the matching route's index, or ROUTE_NONE. */
static inline uint16_t route_lookup_port(const struct route_table *t, uint16_t port)
{
	return t->port[port];
}
uint16_t route_lookup_mmio(const struct route_table *t, uint64_t gpa);
uint16_t route_lookup_msr(const struct route_table *t, uint32_t index);

/*
 * The keyed route for an event: for VMMUX_EV_IO the port's route, for
 * VMMUX_EV_HYPERCALL the hypercall route at port 0x500+key (an io route on
 * that port does not take hypercall events), for MMIO/MSR the range
 * containing the key, for EXCEPTION/PLATFORM/REQUEST the key's entry.
 * Returns ROUTE_NONE when no keyed route matches (the type default applies).
 */
uint16_t route_lookup_event(const struct route_table *t, const struct vmmux_event *ev);

/*
 * The route keyed by source for an event a VMM raised (ev->src_kind ==
 * VMMUX_SRC_VMM): a from= route of that VMM whose key covers the event (a
 * keyed route before a type: one), or ROUTE_NONE. Linear in the number of
 * from= routes, which are few and only consulted for raised events.
 */
uint16_t route_lookup_sourced(const struct route_table *t, const struct vmmux_event *ev);

/*
 * The routes of kind MSR merged into at most max_ranges disjoint [lo, hi]
 * ranges (adjacent and nearby ranges merged as needed, so the result covers
 * at least every routed MSR). Returns the number of ranges, or -1 when even
 * merging cannot make them fit in a KVM MSR filter range each
 * (KVM_MSR_FILTER_MAX_BITMAP_SIZE bytes of bitmap, i.e. 0x3000 MSRs).
 * Used by the VM to program KVM_X86_SET_MSR_FILTER. The ranges are sorted;
 * their route field is ROUTE_NONE (a range may hold several routes' MSRs and
 * unrouted ones, which the filter's bitmap lets KVM handle).
 */
int route_table_msr_ranges(const struct route_table *t, struct route_range *out, size_t max_ranges,
			   struct errbuf *e);

/*
 * Print T as `vmmux routes` shows it: one line per route in key order (the
 * implicit type defaults last), with the VMM name from NAME (may return
 * NULL for an unknown id); a group's column lists its members' names,
 * separated by commas.
 */
typedef const char *(*route_vmm_name_fn)(void *arg, uint16_t id);
void route_table_dump(FILE *f, const struct route_table *t, route_vmm_name_fn name, void *arg);

/* The header row of route_table_dump's columns: "SPEC  VMM  OPTIONS". */
void route_table_dump_header(FILE *f);

/* The indices of T's routes in route_table_dump's order (key order, the
 * implicit type defaults last) into ORDER (room for t->nroutes). */
void route_table_key_order(const struct route_table *t, uint16_t *order);

#endif
