/*
 * classify.h: one KVM exit -> one event; one reply -> the vCPU's state.
 *
 * exit_classify is a pure function of the kvm_run record (so that unit tests
 * feed it synthetic records): it says whether the exit is an event to route,
 * nothing to route (an interrupted KVM_RUN), or an exit vmmux does not model
 * (fatal, with a message). exit_apply writes the reply back into the
 * kvm_run record (IN data, MMIO read data, MSR value or #GP) and tells the
 * vCPU loop which further steps the reply needs (an exception to reinject,
 * the vCPU to stop).
 */
#ifndef VMMUX_EXIT_CLASSIFY_H
#define VMMUX_EXIT_CLASSIFY_H

#include <linux/kvm.h>

#include "util/err.h"
#include <vmmux/vmmux.h>

enum classify_result {
	CLASSIFY_EVENT = 0, /* *ev holds an event to route */
	CLASSIFY_NONE,	    /* nothing to route (EINTR, IRQ window ...): re-enter */
	CLASSIFY_FATAL,	    /* not modelled: message in e */
};

/*
 * Classify the exit in RUN of vCPU VCPU. For string I/O, ev->data points into
 * RUN's data area (count*size bytes, checked to lie inside the mmap'd area of
 * RUN_SIZE bytes).
 */
enum classify_result exit_classify(struct kvm_run *run, size_t run_size, unsigned vcpu,
				   struct vmmux_event *ev, struct errbuf *e);

/* Steps the vCPU loop takes after exit_apply. */
#define APPLY_REINJECT 0x1u /* inject exception ev->key into the guest */
#define APPLY_SKIP_BP  0x2u /* resume past a hardware breakpoint (set RFLAGS.RF) */

/*
 * Apply REP for EV to RUN: the IN value (or the INS data the handler filled),
 * the MMIO read data, the RDMSR value, msr.error = 1 for #GP. Read values are
 * masked to the access size. Returns APPLY_* flags.
 */
unsigned exit_apply(struct kvm_run *run, const struct vmmux_event *ev,
		    const struct vmmux_reply *rep);

/* Exit reason name for messages ("KVM_EXIT_INTERNAL_ERROR"). */
const char *exit_reason_name(unsigned reason);

#endif
