/*
 * main_vmm.h: an extension of the main VMM (VMM id 0, src/vmm/main_vmm.c).
 *
 * A guest kind whose machine-level events belong to the main VMM (the Solo5
 * hvt host: walltime, poll, halt and every exit such a guest must not make,
 * src/hvt/) installs one table of callbacks for its run. Every event that
 * reaches the main VMM (routed to "main", or unrouted) is offered to the
 * extension first; what it declines gets the main VMM's built-in handling
 * (lifecycle, platform, requests, type defaults). A copy that a VMM handed
 * on never reaches the extension.
 *
 * At most one extension is installed at a time, by the thread that sets the
 * run up, before machine_run, and removed after it returns; vCPU threads
 * and the main loop read it without a lock.
 */
#ifndef VMMUX_VMM_MAIN_VMM_H
#define VMMUX_VMM_MAIN_VMM_H

#include <stdbool.h>

#include <vmmux/vmmux.h>

struct main_vmm_ext {
	const char *name; /* for messages: the guest kind ("hvt") */
	/*
	 * EV reached the main VMM. Return true when the extension handled it
	 * (REP filled in: action and value), false to leave it to the built-in
	 * handling (REP is then ignored). Called on the delivering thread (a
	 * vCPU thread or the main loop), possibly from several at once; it
	 * must not block for longer than the guest's call asks (a poll's
	 * timeout) and must give up when the run ends (machine_stopping()).
	 */
	bool (*handle)(struct vmmux_event *ev, struct vmmux_reply *rep);
};

/* Install X (not NULL) for the coming run; -1 when an extension is already
 * installed (the installed one stays). */
int main_vmm_ext_install(const struct main_vmm_ext *x);

/* Remove X when it is the installed one (after machine_run returns). */
void main_vmm_ext_remove(const struct main_vmm_ext *x);

/* The installed extension, or NULL. */
const struct main_vmm_ext *main_vmm_ext_current(void);

#endif
