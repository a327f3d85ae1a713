/*
 * spec.h: the route-spec grammar, shared by the command line, the config file
 * and the control API.
 *
 *   SPEC    := KIND ":" KEY "=" VMM { ";" OPTION }
 *   KIND    := "io" | "mmio" | "msr" | "hypercall" | "exception" | "platform"
 *            | "request" | "type"
 *   KEY     := ITEM | ITEM "-" ITEM | ITEM "+" SIZE    (inclusive range, or
 *              base and size; every kind accepts all three forms)
 *   ITEM    := number (decimal or 0x hex) | a name of the kind:
 *              type:      io mmio msr hlt hypercall exception shutdown
 *                         platform irq request fault
 *              platform:  smi reset poweroff powerbtn watchdog
 *              request:   exit
 *              exception: de db nmi bp of br ud nm df ts np ss gp pf mf ac
 *                         mc xm
 *   VMM     := NAME | "group(" POLICY ":" MEMBER { "," MEMBER } ")"
 *   NAME    := a VMM instance name: [a-z0-9_-], 1 to VMMUX_NAME_MAX-1 chars
 *   POLICY  := "least-loaded" | "round-robin" | "weighted" | "sticky"
 *   MEMBER  := NAME [ "*" WEIGHT ]     (WEIGHT 1..ROUTE_WEIGHT_MAX, default 1;
 *              weighted policy only)
 *   OPTION  := "posted" | "fallback=" NAME | "timeout=" DURATION | "from=" NAME
 *            | "coalesced" | "doorbell" [ "=" VALUE ]
 *
 * Kinds and names are case-insensitive, numbers have no octal form ("010" is
 * ten), VMM names are lower case. No spaces. Each option at most once; the
 * fallback differs from the route's VMM; the timeout (parse_duration) is > 0.
 *
 * A group (the "group(" keyword and the policy are case-insensitive) names 1
 * to ROUTE_GROUP_MAX distinct VMMs, one of which is chosen for each event at
 * dispatch time by the policy (src/vmm/policy.h, docs/routing.md). A group
 * is never a fallback or a source; neither the fallback nor the source may
 * be one of its members. Weights are written for the weighted policy only.
 *
 * Key domains: io 0-0xffff; mmio 64-bit; msr 32-bit; hypercall 0-255 (the
 * route covers port 0x500+nr); exception 0-255; platform, request and type
 * their enumerations. "posted" is valid for io and mmio routes only (it
 * concerns writes whose reply the guest does not wait for). "from=VMM" keys
 * the route by source as well: it matches only events that VMM raised (an
 * interrupt request, a platform event, a request, or an event it hands on),
 * and takes precedence over the routes without it.
 *
 * Routes compiled into KVM (src/vm/ioregion.h, docs/routing.md):
 *   - "coalesced" (io and mmio): the route's writes go to KVM's coalesced
 *     ring (KVM_REGISTER_COALESCED_MMIO, pio for ports) and reach the VMM as
 *     posted writes, values and order kept, with no exit; it implies
 *     "posted" (which it excludes: the canonical text never holds both). An
 *     mmio range holds at most 0xffffffff addresses (KVM's zone size
 *     is 32 bits).
 *   - "doorbell" (io and mmio): the route is exactly one access of 1, 2, 4
 *     (io) or 1, 2, 4, 8 (mmio) bytes, naturally aligned: its key range's
 *     size is the access size. A write of that size at its first key signals
 *     an eventfd (KVM_IOEVENTFD) that the VMM waits on; the value is lost,
 *     except with "doorbell=VALUE" (datamatch: only writes of VALUE, which
 *     must fit the access size, signal; the VMM sees VALUE). Other accesses
 *     to the route exit as usual and go to the same VMM.
 *   A doorbell route's VMM is never a group (an eventfd signals one VMM);
 *   neither option goes with "from=" (KVM never sees raised events), and
 *   "coalesced" and "doorbell" exclude each other.
 */
#ifndef VMMUX_ROUTE_SPEC_H
#define VMMUX_ROUTE_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define VMMUX_NAME_MAX	    32
#define ROUTE_SPEC_TEXT_MAX 256

enum route_kind {
	ROUTE_IO = 0,
	ROUTE_MMIO,
	ROUTE_MSR,
	ROUTE_HYPERCALL,
	ROUTE_EXCEPTION,
	ROUTE_PLATFORM,
	ROUTE_REQUEST,
	ROUTE_TYPE,
	ROUTE__KINDS
};

#define ROUTE_OPT_POSTED    0x1u
#define ROUTE_OPT_FALLBACK  0x2u
#define ROUTE_OPT_TIMEOUT   0x4u
#define ROUTE_OPT_FROM	    0x8u
#define ROUTE_OPT_COALESCED 0x10u /* writes through KVM's coalesced ring */
#define ROUTE_OPT_DOORBELL  0x20u /* writes signal a KVM ioeventfd */
#define ROUTE_OPT_DATAMATCH 0x40u /* with DOORBELL: only writes of doorbell_value */

#define ROUTE_GROUP_MAX	 16   /* members of a group */
#define ROUTE_WEIGHT_MAX 1000 /* largest weight of a member */

/* How a group's member is chosen for an event (src/vmm/policy.h). */
enum route_policy {
	ROUTE_POLICY_LEAST_LOADED = 0, /* the smallest load score */
	ROUTE_POLICY_ROUND_ROBIN,      /* the next member, in turn */
	ROUTE_POLICY_WEIGHTED,	       /* smooth weighted round-robin */
	ROUTE_POLICY_STICKY,	       /* one member per vCPU */
	ROUTE_POLICY__COUNT
};

/*
 * The group a route's events go to, when its VMM is a group (n >= 1): the
 * members' names in the order given, no two alike, each with its weight
 * (1..ROUTE_WEIGHT_MAX; always 1 unless the policy is weighted). n == 0:
 * the route's VMM is the single VMM named in route_spec.vmm.
 */
struct route_group_spec {
	enum route_policy policy;
	unsigned n;
	char member[ROUTE_GROUP_MAX][VMMUX_NAME_MAX];
	uint16_t weight[ROUTE_GROUP_MAX];
};

/* One parsed route spec. lo <= hi always; both inside the kind's domain. */
struct route_spec {
	enum route_kind kind;
	uint64_t lo, hi;		/* inclusive key range */
	char vmm[VMMUX_NAME_MAX];	/* target VMM name; for a group, its first
					 * member's (code that knows only single
					 * VMMs still sees a valid name) */
	struct route_group_spec group;	/* group.n > 0: the VMM is this group */
	uint32_t opts;			/* ROUTE_OPT_* present */
	char fallback[VMMUX_NAME_MAX];	/* with ROUTE_OPT_FALLBACK */
	uint64_t timeout_ns;		/* with ROUTE_OPT_TIMEOUT; > 0 */
	char from[VMMUX_NAME_MAX];	/* with ROUTE_OPT_FROM: the raising VMM */
	uint64_t doorbell_value;	/* with ROUTE_OPT_DATAMATCH */
	char text[ROUTE_SPEC_TEXT_MAX]; /* canonical text, see route_spec_format */
};

/*
 * Parse SPEC. On error returns -1 with a message in e that quotes the spec
 * and says what is wrong ("route 'io:0x3f8-0x3f0=uart': range end 0x3f0 is
 * below its start 0x3f8"). On success fills *out, including out->text.
 */
int route_spec_parse(const char *spec, struct route_spec *out, struct errbuf *e);

/*
 * The rules of "coalesced" and "doorbell" (above) for a spec whose kind,
 * keys, VMM and other options are already valid: 0, or -1 with the reason
 * in WHY (no spec quoted: "option 'doorbell' needs a range of 1, 2 or 4
 * ports ..."). Used by the parser and by route_table_build for specs built
 * by hand.
 */
int route_spec_check_compiled(const struct route_spec *s, char *why, size_t len);

/*
 * Canonical text of a spec: lower-case kind, hex keys for io/mmio/msr
 * ("io:0x3f8-0x3ff=uart"), decimal for hypercall and exception, names for
 * type/platform/request, a single key when lo == hi, a group as
 * "group(POLICY:M1,M2*W,...)" (lower-case policy, members in the order given,
 * "*W" only for a weight other than 1), options in the order posted,
 * coalesced, doorbell (";doorbell=0xV" with a datamatch), fallback,
 * timeout, from. Parsing the text gives the same spec.
 */
void route_spec_format(const struct route_spec *s, char *buf, size_t len);

/* Names of kinds, event types, platform codes, request kinds, group
 * policies ("least-loaded" ...), or NULL. */
const char *route_kind_name(enum route_kind k);
const char *route_policy_name(enum route_policy p);
const char *event_type_name(unsigned type);
const char *platform_code_name(unsigned code);
const char *request_kind_name(unsigned kind);

/* Name -> number; return -1 when unknown (policies case-insensitive). */
int event_type_parse(const char *name);
int route_policy_parse(const char *name);

/* The largest key of kind K (0xffff for io, 255 for hypercall ...). */
uint64_t route_kind_max(enum route_kind k);

/* True when NAME is a valid VMM name. */
bool vmm_name_valid(const char *name);

#endif
