/*
 * self_exec.h: the exec thread, the one thread of vmmux without a role
 * filter (self_filter.h): it runs what a live update must run under the
 * base layer alone, the spawn of the new program's check and the execve of
 * the new program (src/snapshot/update.c), so that the new program
 * inherits no role filter of the old one's.
 *
 *   - self_exec_start, once, on the main thread right after the base layer
 *     (self_filter_init) and before any role filter: starts the thread,
 *     with every signal blocked but those of its own faults (SIGSYS,
 *     SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT: the kernel
 *     delivers a blocked one with its default action, bypassing vmmux's
 *     handlers): process signals go to the other threads. It
 *     waits on a condition variable for a request and does nothing else.
 *   - self_exec_call(FN, ARG), from any thread: FN(ARG) runs on the exec
 *     thread with the caller's signal mask, and the caller waits for its
 *     result. One call at a time (callers queue on a mutex). An FN that
 *     execve's succeeds by never returning: the kernel ends every other
 *     thread, the caller included, and the process goes on as the new
 *     program with the exec thread's credentials, filters (the base layer
 *     only) and signal mask, under the same process id.
 *
 * The exec thread is started with filters on and with --no-seccomp alike
 * (the update takes the same path). It is never joined: it ends with the
 * process.
 */
#ifndef VMMUX_SANDBOX_SELF_EXEC_H
#define VMMUX_SANDBOX_SELF_EXEC_H

#include <stdbool.h>

#include "util/err.h"

/* The exec thread's name (PR_SET_NAME). */
#define SELF_EXEC_NAME "exec"

/* Start the exec thread (once). 0, or -1 with a message in e. */
int self_exec_start(struct errbuf *e);

/* Whether the exec thread runs. */
bool self_exec_running(void);

/* Run FN(ARG) on the exec thread and return its result; -1 with errno
 * ESRCH when the thread does not run (FN not called). */
int self_exec_call(int (*fn)(void *), void *arg);

#endif
