/*
 * self_exec.c: the exec thread (self_exec.h).
 */
#include "sandbox/self_exec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "sandbox/self_filter.h"

static struct {
	pthread_mutex_t call; /* one caller at a time */
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t cond;
	bool running;
	bool pending, done; /* a request is posted / its result is there */
	int (*fn)(void *);
	void *arg;
	sigset_t mask; /* the caller's */
	int result, err;
} X = {.call = PTHREAD_MUTEX_INITIALIZER,
       .lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER};

/* Every signal but those the thread's own faults raise: a blocked SIGSYS
 * of a seccomp trap (or SIGSEGV, ...) is delivered with its default action,
 * the handlers bypassed. */
static void waiting_mask(sigset_t *s)
{
	sigfillset(s);
	static const int faults[] = {SIGSYS, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT};
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		sigdelset(s, faults[i]);
}

static void *exec_main(void *unused)
{
	(void)unused;
	self_filter_name(SELF_EXEC_NAME);
	sigset_t all;
	waiting_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	pthread_mutex_lock(&X.lock);
	for (;;) {
		while (!X.pending)
			pthread_cond_wait(&X.cond, &X.lock);
		X.pending = false;
		int (*fn)(void *) = X.fn;
		void *arg = X.arg;
		sigset_t mask = X.mask;
		pthread_mutex_unlock(&X.lock);
		/* the caller's mask, which an execve hands on */
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
		errno = 0;
		int rc = fn(arg);
		int err = errno;
		pthread_sigmask(SIG_SETMASK, &all, NULL);
		pthread_mutex_lock(&X.lock);
		X.result = rc;
		X.err = err;
		X.done = true;
		pthread_cond_broadcast(&X.cond);
	}
	return NULL;
}

int self_exec_start(struct errbuf *e)
{
	if (X.running)
		return 0;
	sigset_t all, old;
	waiting_mask(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_t t;
	int rc = pthread_create(&t, NULL, exec_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return err_set(e, "cannot start the exec thread: %s", strerror(rc));
	pthread_detach(t);
	X.running = true;
	return 0;
}

bool self_exec_running(void)
{
	return X.running;
}

int self_exec_call(int (*fn)(void *), void *arg)
{
	if (!X.running) {
		errno = ESRCH;
		return -1;
	}
	pthread_mutex_lock(&X.call);
	pthread_mutex_lock(&X.lock);
	X.fn = fn;
	X.arg = arg;
	pthread_sigmask(SIG_SETMASK, NULL, &X.mask);
	X.done = false;
	X.pending = true;
	pthread_cond_broadcast(&X.cond);
	while (!X.done)
		pthread_cond_wait(&X.cond, &X.lock);
	int rc = X.result, err = X.err;
	pthread_mutex_unlock(&X.lock);
	pthread_mutex_unlock(&X.call);
	errno = err;
	return rc;
}
