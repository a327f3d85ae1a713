/*
 * debug.h: the main VMM's privileged interface for a guest debugger (the
 * gdbstub role, vmms/gdbstub/): hold the vCPUs at an instruction boundary,
 * read and write their registers and the guest's virtual memory, program
 * KVM guest debug (DR0-DR3, DR7, single-step) and let them go again.
 *
 * Only the vmmux process that owns the VM has a machine: debug_available()
 * is false anywhere else (a parallel VMM process), and a role that needs
 * this interface must refuse to start there.
 *
 * Holding. debug_hold() asks the vCPUs it names to stop at their next
 * boundary and kicks them out of KVM_RUN; each vCPU thread then waits in
 * debug_vcpu_hold() (called from its loop, exit/vcpu.c) before its next
 * KVM_RUN, offline for the router. debug_wait_held() waits until every vCPU
 * asked is held (or halted for good in the machine's gate, which counts as
 * held: it runs no guest code). While a vCPU is held, any thread may read
 * and write its registers. debug_release() lets the named vCPUs go; each
 * re-applies the guest-debug state on its own thread before it runs.
 *
 * Guest debug. The debugger's breakpoints (DR0-DR3 with DR7) are the same on
 * every vCPU; single-step is per vCPU. They are kept in the VM
 * (struct vm_debug, vm/vm.h) and merged there with the command line's
 * (--single-step, --break, --sw-breakpoints) each time a vCPU's guest debug
 * is programmed, so that a step over a breakpoint (exit/vcpu.c) and a reset
 * keep them. Set them only while the vCPUs are held.
 */
#ifndef VMMUX_VMM_DEBUG_H
#define VMMUX_VMM_DEBUG_H

#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* True in the process that owns the VM, once it exists. */
bool debug_available(void);
/* Number of vCPUs (0 without a machine). */
unsigned debug_ncpus(void);

/* ---- holding the vCPUs ---- */

/* Set while any vCPU is asked to hold: the vCPU loop then calls
 * debug_vcpu_hold() before each KVM_RUN (one load otherwise). */
extern _Atomic bool debug_hold_any;

static inline bool debug_hold_pending(void)
{
	return atomic_load_explicit(&debug_hold_any, memory_order_acquire);
}

/* Ask vCPU INDEX, or every vCPU for DEBUG_ALL, to hold, and kick it out of
 * KVM_RUN. Does not wait. Any thread, before or after the vCPUs start. */
#define DEBUG_ALL (~0u)
void debug_hold(unsigned index);

/*
 * Wait until every vCPU asked to hold is held (or halted for good). Returns
 * 0, or -1 when the run is ending (the vCPUs may never arrive).
 */
int debug_wait_held(void);

/* True when vCPU INDEX is held (or halted for good) now. */
bool debug_is_held(unsigned index);

/* Let vCPU INDEX (DEBUG_ALL: every vCPU) run again. */
void debug_release(unsigned index);

/*
 * The vCPU loop's hook: vCPU INDEX waits here while it is asked to hold, or
 * until the run ends; then, when the guest-debug state changed while it was
 * held, programs it again (STEPPING_OVER: the vCPU is stepping over a
 * breakpoint, exit/vcpu.c, so the breakpoints stay off for one more
 * instruction). Returns true when it waited (the caller goes through the
 * machine's gate again), false when the vCPU is not asked to hold. Called
 * with the thread online for the router; goes offline while it waits.
 */
bool debug_vcpu_hold(unsigned index, bool stepping_over);

/* True when the debugger single-steps vCPU INDEX (its single-step #DB is the
 * debugger's event, even when it ends a step over a breakpoint). */
bool debug_vcpu_stepping(unsigned index);

/* ---- registers (vCPU held) ---- */

struct debug_regs {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu; /* x87, SSE and MXCSR */
	bool have_fpu;	    /* KVM_GET_FPU worked on this host */
};

/* Read or write every register of vCPU INDEX; -1 with a message naming the
 * vCPU and the KVM call. debug_set_regs writes the FPU only when have_fpu. */
int debug_get_regs(unsigned index, struct debug_regs *r, struct errbuf *e);
int debug_set_regs(unsigned index, const struct debug_regs *r, struct errbuf *e);

/* ---- guest memory through vCPU INDEX's page tables (vCPU held) ---- */

/*
 * Translate VA as vCPU INDEX sees it now (its CR0, CR3, CR4, EFER). Returns
 * 0 and the guest-physical address, or -1 with a message saying why (not
 * mapped, not canonical, tables outside RAM, paging mode).
 */
int debug_translate(unsigned index, uint64_t va, uint64_t *gpa, struct errbuf *e);

/*
 * Read or write LEN bytes at VA, page by page through the page tables
 * (writes ignore the guest's write protection). Returns the number of bytes
 * done from the start (less than LEN when a page on the way is not mapped or
 * not RAM), or -1 with a message when not even the first byte could be.
 */
long debug_read_virt(unsigned index, uint64_t va, void *buf, size_t len, struct errbuf *e);
long debug_write_virt(unsigned index, uint64_t va, const void *buf, size_t len, struct errbuf *e);

/* ---- guest debug (vCPUs held; applied when each vCPU is released) ---- */

/* The debugger's DR0-DR3 and DR7 (only local/global enables, RW and LEN
 * fields are used), for every vCPU. */
void debug_set_hw(const uint64_t dr[4], uint64_t dr7);
/* Single-step vCPU INDEX from its release on, or stop single-stepping it. */
void debug_set_step(unsigned index, bool on);
/* No breakpoints, no single-step: guest debug back to the command line's. */
void debug_clear(void);

#endif
