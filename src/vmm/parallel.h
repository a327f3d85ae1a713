/*
 * parallel.h: the main VMM's side of a parallel VMM.
 *
 * A parallel VMM is a separate process running a role (a built-in one, by
 * executing vmmux's own `vmm` command, or a third party's program built
 * with include/vmmux/vmm.h). This module starts it in its sandbox
 * (src/sandbox), sets it up over its socket (src/transport/handshake.h),
 * delivers events to it through shared memory (src/transport/transport.h),
 * checks what it answers, and supervises it:
 *
 *   - a crash (its pidfd) or a reply later than its timeout (the VMM is then
 *     killed) is a fault: a VMMUX_EV_FAULT event is routed (type:fault; the
 *     main VMM's default logs it), and the VMM is restarted with backoff
 *     (10 ms doubling to 1 s, reset after 10 s of good health; after 20
 *     restarts within a minute it is given up and marked failed);
 *   - the restarted instance gets the same transport region, so requests
 *     still pending in it (in flight when the fault happened) are handled by
 *     the new instance (up to 3 replacements of the process per request,
 *     each with the full timeout; a request no successor answers in time
 *     gets the built-in default, logged); and it restores the role's state
 *     saved after the last completed event;
 *   - meanwhile, events on a route with fallback=VMM go to the fallback;
 *     others wait for the restart, up to the route's or the VMM's timeout
 *     again, then get the built-in default (counted, logged);
 *   - a malformed reply or a raise that was not granted is a fault too.
 *
 * Threads (docs/architecture.md, "Threads and who waits for whom"): the
 * supervisor reaps and begins restarts (pvmm_tick, pvmm_sup_ready) and
 * never waits; a restart's set-up runs on a short-lived worker; the
 * control thread starts, stops, resumes and swaps (pvmm_start, pvmm_halt,
 * pvmm_resume, pvmm_retire; bounded waits). One thread at a time manages a
 * process (spawn, set-up, stop, reap): the others leave it alone. Processes
 * are forked only by the exec thread, the main thread (the set-up, the
 * supervisor and the live-change worker hand their spawns to it,
 * machine_on_main): PR_SET_PDEATHSIG is tied to the thread that forked, and
 * the main thread is the one that outlives a live update's execve (it makes
 * it).
 * pvmm_deliver runs on any delivering thread, which passes its slot index;
 * it waits offline for the router, with the route's fields copied.
 */
#ifndef VMMUX_VMM_PARALLEL_H
#define VMMUX_VMM_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

#include "route/table.h"
#include "util/err.h"
#include "vmm/vmm.h"

/* Prepare the sandbox filters and the program path once, before any VMM
 * starts; NSLOTS is the number of vCPUs plus one (the host's slot); one more
 * slot is reserved for the compiled routes' thread (src/vm/ioregion.c). */
int pvmm_global_init(unsigned nslots, struct errbuf *e);
void pvmm_global_fini(void);

/* Start V's process (forked by the exec thread) and set it up. -1 with a
 * message. */
int pvmm_start(struct vmm *v, struct errbuf *e);

/* Stop V's process (close its socket, wait briefly, kill) and free its
 * side of the transport (end of the run: nothing delivers any more). */
void pvmm_stop(struct vmm *v);
/* Stop V's process for good but keep its region until pvmm_stop (a swap's
 * old instance: a thread may still hold it). */
void pvmm_retire(struct vmm *v);

/*
 * Deliver EV to V from the calling thread's SLOT, as route R says (R may be
 * NULL: synchronous, the VMM's timeout). On 0, *rep and the raised events
 * (at most VMM_RAISE_MAX, count in *nraised) are the VMM's answer, checked
 * for form; the caller checks the reply's meaning (reply_valid) and the
 * raised events' grants. On -1 the VMM did not answer (its handler failed,
 * or it was down or late beyond its timeout), on -2 the event cannot travel
 * to a parallel VMM (malformed string I/O): the caller applies the built-in
 * default. The reply deadline (R's timeout, else V's) starts when a
 * process serving the request is up; a request waits for a successor while
 * one is on its way, until V is given up or stopped; a reply V completed
 * is always taken. On 1 the event went to the route's
 * fallback VMM, whose id is in *fallback (the caller delivers it there).
 */
int pvmm_deliver(struct vmm *v, unsigned slot, const struct route *r, struct vmmux_event *ev,
		 struct vmmux_reply *rep, struct vmmux_event *raised, unsigned *nraised,
		 uint16_t *fallback);

/* VMM ID lowered its level-triggered LINE, wired with a resample irqfd,
 * before the guest acknowledged it: withdraw the interrupt. 0, or -1 when
 * the line is not such a line of that VMM. */
int pvmm_irq_withdraw(uint16_t id, unsigned line);

/* The VM is being reset: V's role returns to its power-on state (a control
 * request on SLOT; a VMM that does not answer in time is at fault). */
void pvmm_reset(struct vmm *v, unsigned slot);

/* The run is ending: every vCPU waiting for a parallel VMM's reply stops
 * waiting (its event gets the built-in default). Any thread. */
void pvmm_abort_waits(void);

/* Live operations (the live-change worker): stop V's process and keep it stopped;
 * start it again (its pending requests and saved state carried over). */
int pvmm_halt(struct vmm *v, struct errbuf *e);
int pvmm_resume(struct vmm *v, struct errbuf *e);
/* Stop V's process and start a new one, as one live operation: requests
 * waiting for V stay pending through it and reach the new process (a stop
 * then a start would hand them to the fallback or the default between). */
int pvmm_restart(struct vmm *v, struct errbuf *e);

/* A round trip to V's process (TP_CTL_SYNC): 0 once it answered, -1 when it
 * did not within its timeout. A doorbell batch it read before the call is
 * applied and its state saved when this returns 0. */
int pvmm_sync(struct vmm *v);

/* The run is ending: tell V's process now (its set-up socket is shut
 * down), so that all parallel VMMs end at once, not one grace period after
 * another when they are then stopped one by one (pvmm_stop). Any thread. */
void pvmm_stop_announce(struct vmm *v);

/* The role state V saved last (see tp_state_load), and giving a state to V's
 * role (stored in its region, then a control request makes it restore). */
long pvmm_state_save(struct vmm *v, void *buf, size_t cap);
int pvmm_state_restore(struct vmm *v, const void *buf, size_t len, struct errbuf *e);

/* True when V's posted ring holds nothing unconsumed. */
bool pvmm_drained(const struct vmm *v);

/* The VMM broke the protocol (bad reply, ungranted raise): kill it; the
 * supervisor restarts it. WHY is logged. Any thread. */
void pvmm_fault(struct vmm *v, const char *why);

/*
 * The supervisor: the descriptors to poll for V (its pidfd and its stderr
 * pipe, while no other thread manages its process; at most 2), and what to
 * do when one is readable: print its stderr, or reap it (mark it down,
 * hand the fault event to the dispatcher). Never waits.
 */
unsigned pvmm_sup_fds(struct vmm *v, int *fds);
void pvmm_sup_ready(struct vmm *v, int fd);

/* The dispatcher: V's async eventfd (-1: none), and routing the events V
 * raised on its own (validated and dispatched; may wait for a VMM). */
int pvmm_async_fd(struct vmm *v);
void pvmm_async_ready(struct vmm *v);
/* A swap: what V raised on its async ring and nobody took yet is handed to
 * the dispatcher (checked against V's grants, routed with V as its source)
 * without waiting; returns how many. Any thread. */
unsigned pvmm_async_handoff(struct vmm *v);

/* Schedule the restart of VMM ID after a fault, with backoff: the main
 * VMM's default handling of a VMMUX_EV_FAULT event. */
void pvmm_schedule_restart(uint16_t id);

/* Restarts due now are begun (the successor spawned, its set-up handed to
 * a worker thread); returns the ms until the next one is due, or -1 when
 * none is pending (the supervisor; never waits). */
int pvmm_tick(void);

/* For statistics: "pid N" (or "down", "failed"), and restarts so far. */
const char *pvmm_where(const struct vmm *v, char *buf, size_t len);
unsigned pvmm_restarts(const struct vmm *v);
/* "starting", "up", "down", "failed", "stopped"; its process's pid or 0;
 * whether LINE is wired to KVM with an irqfd. */
const char *pvmm_state_name(const struct vmm *v);
int pvmm_pid(const struct vmm *v);
bool pvmm_irq_wired(const struct vmm *v, unsigned line);
/* stats_vmm_extra_fn over the registry. */
void pvmm_stats_extra(uint16_t id, struct stats_vmm_extra *x);

/* The index of the calling thread's request slot (set by each thread that
 * delivers: vCPU i uses i, the main loop slot ncpus, the thread of the
 * routes compiled into KVM (src/vm/ioregion.c) slot ncpus + 1). */
extern __thread unsigned pvmm_thread_slot;

/*
 * For the routes compiled into KVM (src/vm/ioregion.c). pvmm_send: send MSG
 * (LEN bytes) with descriptor FD (-1: none) on V's set-up socket; -1 when V
 * has no process now (its restart gives it its doorbells again).
 * pvmm_doorbell_rings: the rings V's process reported on its doorbell INDEX
 * (0 without a region).
 */
int pvmm_send(struct vmm *v, const void *msg, size_t len, int fd);
uint64_t pvmm_doorbell_rings(const struct vmm *v, unsigned index);

/* ---- live update (src/snapshot/update.h, docs/snapshot.md) ---------------- */

#include "transport/handshake.h"
#include "transport/transport.h"

/*
 * A parallel VMM handed over to a new vmmux program with its process still
 * running: the descriptors the new program inherits (-1: none) and the
 * state vmmux keeps on its side of the VMM that is not in the shared
 * region. Times are CLOCK_MONOTONIC, which execve does not change.
 */
struct pvmm_handover {
	char name[VMMUX_NAME_MAX];
	int32_t pid;
	int pidfd, sock, errfd;	       /* pidfd, set-up socket, stderr pipe's read end */
	int memfd, vmm_efd, async_efd; /* the transport region and its two eventfds */
	int in_fd, out_fd;	       /* the role's input and output (vmmux's copies) */
	struct tp_main_saved tp;       /* the region's main side (numbers, async tail) */
	uint64_t generation;	       /* processes reaped so far */
	uint32_t restarts, recent_restarts;
	uint64_t window_start_ns, up_since_ns, backoff_ns;
	uint64_t maybe_duplicated, redelivered;
	uint32_t nirqs;
	struct hs_irq irqs[HS_IRQS_MAX];
	int irqfd[HS_IRQS_MAX], resamplefd[HS_IRQS_MAX];
};

/* Every descriptor of H (at most PVMM_HANDOVER_FDS), for FD_CLOEXEC. */
#define PVMM_HANDOVER_FDS (9 + 2 * HS_IRQS_MAX)
unsigned pvmm_handover_fds(const struct pvmm_handover *h, int *fds);

/*
 * Old program, live-change worker: why V cannot be handed over now (0: it
 * can), said in E: a process that is not up (down, restarting, starting,
 * stopped, given up). Its doorbells are not handed over: the new program
 * compiles the routes into its new VM with new eventfds and gives them to
 * the process on its set-up socket (HS_DB_ADD, which replaces the one of
 * the same number), as to a successor; the pause leaves no ring unread.
 */
int pvmm_handover_refusal(struct vmm *v, struct errbuf *e);

/*
 * Old program, live-change worker, before the pause that ends in the
 * execve: detach V's irqfds from the VM (a successor the supervisor starts
 * meanwhile keeps its own detached), so that an edge the process pulses
 * between the capture of the irqchip and the execve is not lost with the
 * old VM: it waits in its eventfd for the new program's VM, into which
 * KVM_IRQFD injects an eventfd already signalled when it attaches it (or
 * for this VM again, if the update is refused). Before the pause, because
 * a detach waits for KVM's interrupt-routing grace period (milliseconds),
 * which the guest then spends running: its interrupts from V wait. 0, or
 * -1 with KVM's reason (V's lines attached again).
 *
 * pvmm_handover_take, the machine paused (machine_pause: nothing in
 * flight): take V's process away from the supervisor's watch (its reaps
 * and restarts wait) and describe it in H. -1 with the reason
 * (pvmm_handover_refusal's, a request pending, the process gone).
 *
 * pvmm_handover_release (the update refused, or the state for its check
 * written): V's irqfds attached again if they were detached (a pulse made
 * meanwhile is injected then; a level line is resampled), and V given back
 * to the supervisor if it was taken. For every parallel VMM, taken or not.
 */
int pvmm_irqs_detach(struct vmm *v, struct errbuf *e);
int pvmm_handover_take(struct vmm *v, struct pvmm_handover *h, struct errbuf *e);
void pvmm_handover_release(struct vmm *v);

/*
 * New program, before the registry starts its VMMs: the parallel VMMs
 * handed over (N of them, copied). pvmm_start then adopts a VMM of that
 * name instead of starting a process: the region mapped from its memfd,
 * its pidfd, socket and stderr taken, its irqfds wired to the new VM, its
 * counters continued, marked up; no hello, no state restore (its process
 * kept its state). pvmm_adopted tells whether V was adopted;
 * pvmm_adopted_fds gives the input and output descriptors handed over for
 * the VMM NAME (false: none handed over, open them as usual).
 */
int pvmm_adopt_set(const struct pvmm_handover *h, unsigned n, struct errbuf *e);
bool pvmm_adopted(const struct vmm *v);
bool pvmm_adopted_fds(const char *name, int *in_fd, int *out_fd);

#endif
