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
	bool running;	/* the exec thread serves calls */
	pthread_t self; /* the exec thread */
	bool body_done; /* the run's thread has ended */
	int body_result;
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

struct body {
	int (*fn)(void *);
	void *arg;
};

static void *body_main(void *p)
{
	struct body *b = p;
	int rc = b->fn(b->arg);
	pthread_mutex_lock(&X.lock);
	X.body_result = rc;
	X.body_done = true;
	pthread_cond_broadcast(&X.cond);
	pthread_mutex_unlock(&X.lock);
	return NULL;
}

int self_exec_serve(int (*body)(void *), void *arg, struct errbuf *e)
{
	self_filter_label(SELF_EXEC_NAME);
	static struct body b;
	b.fn = body;
	b.arg = arg;
	X.self = pthread_self();
	X.body_done = false;
	X.running = true;
	pthread_t t;
	int rc = pthread_create(&t, NULL, body_main, &b); /* the caller's mask */
	if (rc != 0) {
		X.running = false;
		return err_set(e, "cannot start the run's thread: %s", strerror(rc));
	}
	sigset_t all, old;
	waiting_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&X.lock);
	for (;;) {
		while (!X.pending && !X.body_done)
			pthread_cond_wait(&X.cond, &X.lock);
		if (!X.pending)
			break; /* the run ended: nothing can call any more */
		X.pending = false;
		int (*fn)(void *) = X.fn;
		void *fn_arg = X.arg;
		sigset_t mask = X.mask;
		pthread_mutex_unlock(&X.lock);
		/* the caller's mask, which an execve hands on */
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
		errno = 0;
		int r = fn(fn_arg);
		int err = errno;
		pthread_sigmask(SIG_SETMASK, &all, NULL);
		pthread_mutex_lock(&X.lock);
		X.result = r;
		X.err = err;
		X.done = true;
		pthread_cond_broadcast(&X.cond);
	}
	X.running = false;
	pthread_mutex_unlock(&X.lock);
	pthread_join(t, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return X.body_result;
}

bool self_exec_running(void)
{
	return X.running;
}

int self_exec_call(int (*fn)(void *), void *arg)
{
	if (X.running && pthread_equal(pthread_self(), X.self))
		return fn(arg);
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
