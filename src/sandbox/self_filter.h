/*
 * self_filter.h: vmmux's own threads under seccomp, one filter per thread
 * role (as Firecracker does).
 *
 * Two layers. The base layer, one per process whatever the number of live
 * updates it went through: a deny-list of the calls no vmmux makes in any
 * version (ptrace, process_vm_*, modules, kexec, mounts, bpf,
 * perf_event_open, key rings, swap, reboot, the system clocks, acct,
 * quotas, userfaultfd, io_uring, personality, ...), everything else
 * allowed; installed by the run's thread with SECCOMP_FILTER_FLAG_TSYNC
 * before any role filter, so every thread and every process vmmux starts
 * has it. Seccomp filters survive execve and cannot be removed: a process
 * started by a live update finds the layer already on (a mark: the layer
 * makes prctl(SELF_BASE_PROBE) fail with SELF_BASE_ERRNO + its version,
 * where the kernel says EINVAL) and does not install it again. Above it,
 * the role filters (allow-lists), one per thread, except on the exec
 * thread (self_exec.h: the main thread), which forks the parallel VMMs and
 * runs a live update's check and execve under the base layer alone: the new program starts with the
 * base layer and nothing else of the old one's, so the filters of a process are the same after any
 * number of updates, and a newer vmmux is bound only by the base layer until its own filters go on.
 *
 * Life cycle:
 *   - self_filter_init, once, on the run's thread during set-up and before
 *     any other thread of the run starts: builds every role's BPF program with
 *     libseccomp (and keeps it: installing needs no allocation), installs
 *     the process-wide SIGSYS handler and resolves every system call's
 *     name for it, then installs the base layer (self_filter_base). With
 *     ENABLED false (vmmux run --no-seccomp) it does nothing (no base
 *     layer either; one that a live update inherited stays) and
 *     self_filter_enter only names the thread.
 *   - self_filter_enter(ROLE), by each thread itself, first thing in its
 *     start routine (the supervisor: the run's thread, during set-up,
 *     before the first parallel VMM starts or a thread starts): names the
 *     thread (PR_SET_NAME, the role's short name) and installs ROLE's
 *     filter on the calling thread only. No SECCOMP_FILTER_FLAG_TSYNC: roles differ.
 *
 * Filters stack, and a thread created by a filtered thread inherits its
 * creator's filter before it installs its own: what a thread may do is the
 * intersection of its role's list and its creators'. The supervisor's
 * filter goes on first (above the base layer), before the first parallel
 * VMM starts; every other thread of the run starts after it and stacks its
 * role's on it (self_filter_check verifies that the supervisor's admits
 * every row, and that no row admits a call the base layer refuses). Every
 * VMM process is forked by the exec thread and inherits exactly one filter
 * of vmmux's, the base layer (whose list no VMM stage admits either:
 * self_filter_check). The live-change worker's list is the supervisor's
 * and it runs under the one it inherits. No role starts a process: the
 * exec thread alone forks, builds Landlock rulesets, changes identities and
 * executes (VMMs, the loader's listing of a VMM program, a live update's
 * check and execve); the roles that create threads get clone with
 * CLONE_THREAD only, clone3 failing with ENOSYS (glibc then uses clone),
 * and no role maps executable memory or calls execve.
 *
 * A forbidden system call is trapped (SECCOMP_RET_TRAP): the SIGSYS handler
 * writes one line, "vmmux: seccomp: the ROLE thread made a forbidden
 * system call: NAME (NR)", and the process exits at once with status
 * SELF_FILTER_EXIT (no clean-up: the thread that tripped it may hold any
 * lock). The call itself is never made, whatever a handler does. A call
 * through a foreign ABI (int 0x80, x32) kills the process
 * (SECCOMP_RET_KILL_PROCESS). A child forked by a filtered thread keeps its
 * creator's filter and, until execve, the handler; after execve a trap is
 * a SIGSYS like any other (and the VMM's stages kill before).
 *
 * Every admitted call is in one table (self_filter.c), with the roles that
 * admit it and its argument conditions.
 */
#ifndef VMMUX_SANDBOX_SELF_FILTER_H
#define VMMUX_SANDBOX_SELF_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

enum self_role {
	SELF_VCPU,	 /* vCPU threads (KVM_RUN, deliveries, hvt hypercalls) */
	SELF_SUPERVISOR, /* the run's thread: set-up, supervise, the teardown */
	SELF_DISPATCHER, /* host deliveries, async rings, in-process input */
	SELF_CONTROL,	 /* the API socket */
	SELF_WORKER,	 /* live changes: starts, swaps, route publication */
	SELF_SETUP,	 /* a parallel VMM's set-up exchange */
	SELF_IOREGION,	 /* routes compiled into KVM */
	SELF_GDBSTUB,	 /* the GDB stub's socket */
	SELF_RECLAIM,	 /* liburcu's call_rcu thread */
	SELF_NROLES
};

/* The exit status of a forbidden system call (even: the exit device's
 * statuses are odd; see README "Exit status"). */
#define SELF_FILTER_EXIT 10

/* The base layer's mark: prctl(SELF_BASE_PROBE, 0, 0, 0, 0), an option no
 * kernel defines, fails with errno SELF_BASE_ERRNO + the layer's version
 * under the layer (EINVAL without). A version adds calls to the list; a
 * process that has an older layer gets the newer one on top, once. */
#define SELF_BASE_PROBE	  0x766d6d78u /* "vmmx" */
#define SELF_BASE_ERRNO	  3840
#define SELF_BASE_VERSION 1u

/*
 * Build every role's filter and install the SIGSYS handler (ENABLED), or
 * remember that filters are off. Call once, single-threaded, before any
 * self_filter_enter. 0, or -1 with a message in e.
 */
int self_filter_init(bool enabled, struct errbuf *e);

/*
 * Install the base layer on every thread of the process (TSYNC), unless
 * the process has it already (a live update's new program): call on the
 * main thread before any thread installs a filter of its own. 0, or -1
 * with a message in e. self_filter_init calls it.
 */
int self_filter_base(struct errbuf *e);

/* The version of the base layer the calling thread runs under; 0: none.
 * Call only where prctl passes the thread's filters (the base layer alone,
 * or none). */
unsigned self_filter_base_found(void);

/* The calls the base layer refuses in this build (sanitized builds: fewer),
 * by number: fills NRS up to CAP, returns how many there are. */
size_t self_filter_base_calls(int *nrs, size_t cap);

/* Name a thread that has no role filter (PR_SET_NAME; the SIGSYS handler's
 * line names it too). */
void self_filter_name(const char *name);
/* What the SIGSYS handler's line calls the calling thread, which has no
 * role filter, without renaming it (the main thread keeps the process's
 * name). */
void self_filter_label(const char *name);

/* Whether self_filter_init installed filters. */
bool self_filter_enabled(void);

/*
 * Name the calling thread after ROLE (except the supervisor) and install
 * ROLE's filter on it (with filters on). 0, or -1 with errno (the thread
 * then runs without its filter: the caller must stop the run).
 */
int self_filter_enter(enum self_role role);

/*
 * Check the table: every row of a role is admitted by the filters that
 * role's threads stack theirs on (the supervisor's; for the threads the
 * live-change worker may start, the worker's too). self_filter_init checks
 * it first. 0, or -1 with the first row that is not in e.
 */
int self_filter_check(struct errbuf *e);

/* The role's name ("vcpu", "supervisor", ...); NULL for a bad role. */
const char *self_filter_role_name(enum self_role role);

/*
 * The system calls ROLE admits, by number, in this build (sanitized builds
 * admit more): fills NRS (up to CAP, distinct, ascending) and returns how
 * many there are (may exceed CAP). Needs no self_filter_init.
 */
size_t self_filter_role_calls(enum self_role role, int *nrs, size_t cap);

/*
 * The filter of ROLE alone, built and installed on the calling thread
 * without the rest of self_filter_init (the SIGSYS handler included, when
 * TRAP_HANDLER). For tests, which install it in a forked child.
 * 0, or -1 with a message in e.
 */
int self_filter_install_role(enum self_role role, bool trap_handler, struct errbuf *e);

#endif
