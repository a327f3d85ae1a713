/*
 * machine.h: the life of a run, owned by the main VMM.
 *
 * machine_run builds everything a config describes (the VM, the VMM
 * registry, the routing table, the guest image), starts one thread per vCPU,
 * runs the main loop (VMM inputs, timers) and returns vmmux's exit status
 * once the run ends: a guest power-off, an exit request (the exit device), a
 * guest crash, or a vmmux error.
 */
#ifndef VMMUX_VMM_MACHINE_H
#define VMMUX_VMM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "sandbox/self_filter.h"

/*
 * Exit statuses. A guest's own ending is 0 (power-off) or odd (the exit
 * device: ((V << 1) | 1) & 0xff, as QEMU's isa-debug-exit); vmmux's own
 * failures are even and non-zero.
 */
#define EXIT_POWEROFF	 0
#define EXIT_USAGE	 2 /* bad command line or config */
#define EXIT_IMAGE	 4 /* bad guest image */
#define EXIT_HOST	 6 /* host or KVM failure, unmodelled exit */
#define EXIT_GUEST_CRASH 8 /* triple fault, unhandled guest exception, dead halt, watchdog */

/* Run the machine C describes; returns the exit status. Call it on the
 * main thread, once: the main thread becomes the exec thread
 * (sandbox/self_exec.h) and the run gets a thread of its own, which sets
 * everything up and then runs the supervisor's loop. */
int machine_run(struct vmmux_config *c);

/*
 * End the run with STATUS (the first request wins; later ones are logged at
 * debug level). WHY is logged at info level for guest endings and at error
 * level for failures. Any thread may call it; it kicks every vCPU.
 */
void machine_stop(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset the VM: every vCPU returns to its boot state, the image is loaded
 * again, every role is reset. Any thread may call it. */
void machine_reset(const char *why);

/* True once the run is ending; true while a reset is pending. */
bool machine_stopping(void);

/*
 * First thing in every thread of the run (the supervisor: before its loop):
 * install ROLE's seccomp filter on the calling thread
 * (sandbox/self_filter.h). A filter that cannot be installed stops the run
 * (EXIT_HOST).
 */
void machine_thread_enter(enum self_role role);
bool machine_reset_pending(void);

/*
 * The host's own deliveries go through the dispatcher thread (see
 * docs/architecture.md, "Threads and who waits for whom"): the supervisor
 * and the control thread hand it an event and never deliver one
 * themselves. machine_post_event copies EV (routed with the host as its
 * source) into the dispatcher's queue without waiting and returns its
 * ticket (> 0), or 0 when the queue is full (the event is dropped, logged)
 * or the run is ending. machine_wait_event waits up to TIMEOUT_NS for the
 * event of TICKET to have been delivered; true when it was.
 */
struct vmmux_event;
uint64_t machine_post_event(const struct vmmux_event *ev);
/* The same for an event VMM SRC raised (checked against its grants
 * already): routed with SRC as its source. */
uint64_t machine_post_raised(uint16_t src, const struct vmmux_event *ev);
/* Before the run: PID, a child this process inherited from the program it
 * replaced (a live update's address-space holder), is reaped by the
 * supervisor once it exits. */
void machine_reap_later(pid_t pid);
/* Those not reaped yet, at most MAX into PIDS (a live update's next
 * program reaps them); the number. */
unsigned machine_leftovers(pid_t *pids, unsigned max);
/* A live update, the machine paused (the dispatcher holds): copies of the
 * events the dispatcher has not taken yet, oldest first, at most MAX, into
 * EV and their sources (machine_post_raised's SRC, VMM_ID_NONE for the
 * host's) into SRC; they stay queued (for this program, if the update is
 * refused). The number copied. With them, at the same instant: *WATCHDOG,
 * whether the run has a watchdog, and *WATCHDOG_EXPIRY, when it expires
 * (CLOCK_MONOTONIC ns, tp_now_ns's clock, which a new program of a live
 * update shares; 0: none to come, or its expiry is one of the events). */
unsigned machine_host_queue_copy(struct vmmux_event *ev, uint16_t *src, unsigned max,
				 bool *watchdog, uint64_t *watchdog_expiry);
bool machine_wait_event(uint64_t ticket, uint64_t timeout_ns);

/* Make the supervisor build its poll set again (a restart was scheduled, a
 * process was handed back to it). Any thread; never waits. */
void machine_wake_supervisor(void);

/*
 * Run FN(ARG) on the exec thread (sandbox/self_exec.h: the process's main
 * thread) and return what it returns. The exec thread forks every parallel
 * VMM (PR_SET_PDEATHSIG is tied to the thread that forks) and makes a live
 * update's execve (the one thread that survives it), so that the VMMs
 * outlive the old program's threads and stay the new one's children. The
 * caller waits offline for the router; the exec thread waits for no thread,
 * so the wait is FN's (a fork; once per VMM program, the loader's listing
 * of its libraries) and the calls queued before it.
 * MACHINE_ON_MAIN_CLOSED when the run has ended (FN not called).
 */
/*
 * ON: the supervisor stops reading the run's signals (SIGINT, SIGTERM,
 * SIGHUP) and returns once its poll set no longer has them (one round of
 * its loop; at once when the run is stopping): they stay pending, blocked,
 * and a live update's execve hands them to the new program, which reads
 * them. OFF: it reads them again. The live-change worker, around the
 * execve; check machine_stopping() after holding.
 */
void machine_signals_hold(bool on);

#define MACHINE_ON_MAIN_CLOSED (-2)
int machine_on_main(int (*fn)(void *arg), void *arg);

/* The status the run ends with (meaningful once machine_stopping()). */
int machine_exit_status(void);

/* Raise or lower an IRQ line (in-kernel irqchip); -1 without one. */
int machine_irq_line(uint32_t line, int level);

/* True when the routing table sends VMM's interrupt requests on LINE to the
 * main VMM (then a parallel VMM's granted line can be wired with KVM_IRQFD). */
bool machine_irq_routed_to_main(uint16_t vmm, unsigned line);

/*
 * A boot hook: a guest kind whose boot state is not the loader's (the Solo5
 * hvt host, src/hvt/) writes it here. boot_machine calls BOOT after it has
 * loaded the image and set every vCPU to the loader's boot state, at the
 * start of the run (RESET false, before any VMM starts) and at every VM
 * reset (RESET true, every vCPU outside KVM_RUN, the roles already reset):
 * the hook overwrites guest memory and vCPU registers as it needs. It
 * returns 0, or -1 with a message in E (the run then does not start, or
 * ends as a failed reset). At most one hook; install it before machine_run
 * and remove it (NULL) after. struct vm is vm/vm.h's.
 */
struct vm;
struct errbuf;
struct machine_boot_hook {
	const char *name; /* for messages: the guest kind */
	int (*boot)(struct vm *vm, bool reset, struct errbuf *e);
};
void machine_set_boot_hook(const struct machine_boot_hook *h);

/*
 * Pause the machine at an event boundary (a snapshot; the live-change
 * worker): every vCPU leaves KVM_RUN, completes the I/O KVM left pending
 * (vcpu_flush) and holds in its gate, the dispatcher holds at the top of its
 * loop, the coalesced ring is drained, and every VMM's in-flight events,
 * posted ring and doorbell counts are finished. Bounded by TIMEOUT_NS; a
 * reset or the run's end meanwhile makes it fail. 0 (then call
 * machine_resume), or -1 with a message (the machine runs on).
 */
int machine_pause(uint64_t timeout_ns, struct errbuf *e);
void machine_resume(void);
/* True while a pause is asked for or held (a long wait of a vCPU, such as
 * the hvt poll, ends at a kick when it is). */
bool machine_pause_pending(void);

/* Number of resets so far. */
unsigned machine_resets(void);

/* ---- for the vCPU threads (exit/vcpu.c) ---- */

struct vm;
/* The VM of the run, and its config. */
struct vm *machine_vm(void);
const struct vmmux_config *machine_config(void);

/*
 * Called by vCPU thread INDEX before each KVM_RUN. Returns true when the vCPU
 * may run; blocks while the vCPU is halted for good or a reset is under way
 * (the last vCPU to arrive performs the reset); returns false once the run
 * ends. Costs three atomic loads when nothing is pending; a vCPU that
 * waits here is offline for the router (it may wait for long).
 */
bool machine_vcpu_gate(unsigned index);

/* True when vCPU INDEX waits in the gate, halted for good (it runs no guest
 * code until a reset); for the debugger (vmm/debug.h). */
bool machine_vcpu_parked(unsigned index);

/* vCPU INDEX executed HLT and nothing can wake it: stop it; when every vCPU
 * is stopped the run ends as a guest crash. */
void machine_vcpu_halt(unsigned index);

#endif
