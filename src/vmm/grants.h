/*
 * grants.h: what a VMM may raise.
 *
 * A VMM raises events to ask for what only the main VMM can do (vmmux_raise):
 * an interrupt line, a platform event, a request, or a guest-reported
 * exception. Each VMM holds a set of grants, from its config ("raise") or,
 * when the config gives none, from its built-in role's declared defaults
 * (struct vmmux_role.raises). The main VMM checks every raised event against
 * them, whatever the VMM's placement; a parallel VMM that raises what it was
 * not granted is at fault.
 *
 * Grant syntax (config "raise" lists, --vmm raise=GRANT, role defaults):
 *   irq:LINE           the interrupt line LINE (0-255); its requests go
 *                      through the main VMM (KVM_IRQ_LINE), which follows
 *                      the line exactly whatever the guest programs
 *   irq:LINE:edge      the same, and a parallel VMM may drive the line
 *   irq:LINE:level     itself through an irqfd (a pulse per request, or
 *                      asserted until the guest's EOI): faster, but the
 *                      trigger must match how the guest programs the line
 *   platform:NAME      smi, reset, poweroff, powerbtn or watchdog
 *   request:NAME       exit
 *   exception          guest-reported exceptions (any vector)
 *   forward            hand on the device event it is serving (io, mmio,
 *                      msr, hlt, hypercall, shutdown): a copy goes where the
 *                      routes keyed by its source (from=VMM) send it, and
 *                      nowhere else (router.h); the guest's reply is still
 *                      the VMM's own
 *
 * forward is the only grant that depends on what the VMM is doing: it admits
 * a copy of the request the VMM is serving (grant_is_copy: same type, key,
 * size, value, count, vCPU, aux and flags), raised while serving it (with
 * the reply of that request: a parallel VMM's reply slot, an in-process
 * role's handle call), and nothing else: no made-up event, no copy raised
 * later (with another request's reply, on the async ring, from an input
 * callback), no copy of string I/O (its data lives in the request). A
 * parallel VMM serves the writes of its posted ring and its doorbells
 * outside any request (what it raises then goes on the async ring), so it
 * cannot hand those on: its library refuses the raise (-1); an in-process
 * VMM is called for them and may.
 */
#ifndef VMMUX_VMM_GRANTS_H
#define VMMUX_VMM_GRANTS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include <vmmux/vmmux.h>

struct raise_grants {
	uint64_t irq[4];       /* bit per line 0-255 */
	uint64_t irq_wire[4];  /* lines a parallel VMM may drive with an irqfd */
	uint64_t irq_level[4]; /* of those, the level-triggered ones */
	uint32_t platform;     /* bit per enum vmmux_platform_code */
	uint32_t request;      /* bit per enum vmmux_request_kind */
	bool exception;
	bool forward;
};

/* Add the grant S to G; -1 with a message quoting S. */
int grant_parse(const char *s, struct raise_grants *g, struct errbuf *e);

/* Add every grant of a NULL-terminated list (a role's defaults). */
int grant_parse_list(const char *const *list, struct raise_grants *g, struct errbuf *e);

/*
 * True when G allows EV to be raised. SERVED is the request the VMM is
 * serving when EV comes with its reply (the event as vmmux delivered it), or
 * NULL when EV was raised outside one (a parallel VMM's async ring, an
 * in-process VMM's input callback); a device event is allowed only as a copy of SERVED under
 * the grant forward. Every placement calls it the same way.
 */
bool grant_allows(const struct raise_grants *g, const struct vmmux_event *ev,
		  const struct vmmux_event *served);

/* True when EV is a copy of the device event SERVED (non-NULL, no string
 * I/O): same type, key, size, value, count, vcpu, aux, and the same flags
 * but for VMMUX_EVF_UNROUTED and VMMUX_EVF_REDELIVERED (set on the way). */
bool grant_is_copy(const struct vmmux_event *ev, const struct vmmux_event *served);

/* True when line LINE is granted; *wire: with an irqfd, *level: resampled. */
bool grant_irq(const struct raise_grants *g, unsigned line, bool *wire, bool *level);

#endif
