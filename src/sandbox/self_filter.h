/*
 * self_filter.h: vmmux's own threads under seccomp, one filter per thread
 * role (as Firecracker does).
 *
 * Life cycle:
 *   - self_filter_init, once, on the main thread during set-up and before
 *     any thread of the run starts: builds every role's BPF program with
 *     libseccomp (and keeps it: installing needs no allocation), installs
 *     the process-wide SIGSYS handler and resolves every system call's
 *     name for it. With ENABLED false (vmmux run --no-seccomp) it does
 *     nothing and self_filter_enter only names the thread.
 *   - self_filter_enter(ROLE), by each thread itself, first thing in its
 *     start routine (the supervisor: the main thread, during set-up, before
 *     it forks the first parallel VMM or starts a thread): names the thread
 *     (PR_SET_NAME, the role's short name; not the main thread, whose name
 *     is the process's) and installs ROLE's filter on the calling thread
 *     only. No SECCOMP_FILTER_FLAG_TSYNC: roles differ.
 *
 * Filters stack, and a thread created by a filtered thread inherits its
 * creator's filter before it installs its own: what a thread may do is the
 * intersection of its role's list and its creators'. The supervisor's
 * filter goes on first, before the main thread forks the first parallel
 * VMM; every other thread of the run starts after it and stacks its role's
 * on it (self_filter_check verifies that the supervisor's admits every
 * row), so every VMM process inherits exactly one filter of vmmux's. The
 * live-change worker's list is the supervisor's and it runs under the one
 * it inherits. The roles that fork parallel VMMs admit everything their
 * children do until execve and everything the VMM's own stages admit
 * afterwards (sandbox_filter_calls), plus the calls that give a child its
 * own identity (clone, unshare, setns, mount, pivot_root, landlock_*, uid
 * and gid changes).
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
	SELF_SUPERVISOR, /* the main thread: supervise, then the teardown */
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

/*
 * Build every role's filter and install the SIGSYS handler (ENABLED), or
 * remember that filters are off. Call once, single-threaded, before any
 * self_filter_enter. 0, or -1 with a message in e.
 */
int self_filter_init(bool enabled, struct errbuf *e);

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
