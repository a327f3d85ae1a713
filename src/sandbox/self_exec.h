/*
 * self_exec.h: the exec thread, the one thread of vmmux without a role
 * filter (self_filter.h). It is the process's main thread, and it does
 * what must be done by the one thread that survives a live update's execve
 * and under the base layer alone: it forks every parallel VMM (their
 * PR_SET_PDEATHSIG fires when the thread that forked them ends, and an
 * execve ends every thread but the one that makes it), spawns the new
 * program's check, and makes the execve of the new program
 * (src/snapshot/update.c), so that the new program inherits no role filter
 * of the old one's and keeps the old one's parallel VMMs as its children.
 * After the execve that same thread is the new program's main thread, the
 * exec thread again: the VMMs' parent across any number of updates.
 *
 *   - self_exec_serve(BODY, ARG), once, on the main thread after the base
 *     layer (self_filter_init) and before any role filter: BODY(ARG) (the
 *     run: set-up, supervisor, every other thread) runs on a new thread
 *     with the caller's signal mask, while the main thread serves calls
 *     with every signal blocked but those of its own faults (SIGSYS,
 *     SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT: the kernel
 *     delivers a blocked one with its default action, bypassing vmmux's
 *     handlers), until BODY returns; returns BODY's result. The main
 *     thread keeps the process's name: its SIGSYS reports call it "the
 *     exec thread".
 *   - self_exec_call(FN, ARG), from any thread: FN(ARG) runs on the exec
 *     thread with the caller's signal mask, and the caller waits for its
 *     result; at once when the caller is the exec thread. One call at a
 *     time (callers queue on a mutex). FN must not wait for another thread
 *     (the exec thread waits for no thread; a child process of its own,
 *     such as the loader listing a program's libraries, it may). An FN that execve's succeeds by
 *     never returning: the kernel ends every other thread, the caller
 *     included, and the process goes on as the new program with the exec
 *     thread's credentials, filters (the base layer only) and signal
 *     mask, under the same process id.
 *
 * The exec thread serves with filters on and with --no-seccomp alike (the
 * update takes the same path).
 */
#ifndef VMMUX_SANDBOX_SELF_EXEC_H
#define VMMUX_SANDBOX_SELF_EXEC_H

#include <stdbool.h>

#include "util/err.h"

/* What a SIGSYS report calls the exec thread. */
#define SELF_EXEC_NAME "exec"

/* Serve calls on the calling (main) thread while BODY(ARG) runs on a new
 * thread; BODY's result, or -1 with a message in e when its thread cannot
 * start (BODY not called). Once per process. */
int self_exec_serve(int (*body)(void *), void *arg, struct errbuf *e);

/* Whether the exec thread serves calls. */
bool self_exec_running(void);

/* Run FN(ARG) on the exec thread and return its result; -1 with errno
 * ESRCH when the thread does not serve (FN not called). */
int self_exec_call(int (*fn)(void *), void *arg);

#endif
