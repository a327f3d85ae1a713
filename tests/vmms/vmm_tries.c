/*
 * vmm_tries: a parallel VMM that tries, at its first request, one thing a
 * VMM must not get away with, for the hostile-VMM suite
 * (tests/integration/test_hostile.py). It speaks the protocol itself
 * (rawvmm.c) and so runs under stage 1 of the sandbox only (no library
 * installs stage 2). Argument try=WHAT:
 *
 *   fork     fork(2) (clone without CLONE_VM)
 *   thread   clone(2) with CLONE_VM | CLONE_THREAD (a thread)
 *   exec     execve(2) of /bin/true in place of itself
 *   socket   socket(AF_INET, SOCK_STREAM)
 *   escape   terminal escape sequences on its stderr (set the window title,
 *            clear the screen, colours, a cursor move), then serve
 *   role     (before ready) answer the set-up with a role name made of
 *            escape sequences
 *
 * Before it tries, it marks the region (raw_mark) and prints "vmm-tries:
 * trying WHAT"; after a try that returns it prints "vmm-tries: WHAT
 * returned R (errno E)". A restarted instance (the mark is there) serves
 * plainly. Reads get the "read" argument (default 0x5a).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rawvmm.h"

#define PROG "vmm-tries"

struct tries {
	const char *what;
	bool armed;
	uint64_t read;
};

static const char escapes[] = "\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b[31mred\x1b[0m\x1b[10;10H\x9b"
			      "31m\r\x08\x7f\n";

static long try_it(const char *what)
{
	if (strcmp(what, "fork") == 0)
		return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (strcmp(what, "thread") == 0)
		return syscall(SYS_clone,
			       CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD, 0,
			       0, 0, 0);
	if (strcmp(what, "exec") == 0) {
		char *argv[] = {"/bin/true", NULL}, *envp[] = {NULL};
		return execve("/bin/true", argv, envp);
	}
	if (strcmp(what, "socket") == 0)
		return socket(AF_INET, SOCK_STREAM, 0);
	if (strcmp(what, "escape") == 0) {
		for (int i = 0; i < 3; i++)
			if (write(2, escapes, sizeof(escapes) - 1) < 0)
				return -1;
		return 0;
	}
	return -1;
}

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	struct tries *T = arg;
	if (T->armed) {
		T->armed = false;
		raw_mark(R);
		fprintf(stderr, PROG ": trying %s\n", T->what);
		errno = 0;
		long r = try_it(T->what);
		if (r == 0 && strcmp(T->what, "thread") == 0) {
			/* the new thread (if it ever runs) just stops */
			syscall(SYS_exit, 0);
		}
		if (r == 0 && strcmp(T->what, "fork") == 0)
			_exit(0); /* the child, if it ever runs */
		fprintf(stderr, PROG ": %s returned %ld (errno %d)\n", T->what, r, errno);
	}
	raw_answer(s, ev, seq, T->read);
}

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	struct tries T = {.what = raw_arg(&R, "try"), .read = raw_arg_u64(&R, "read", 0x5a)};
	if (T.what == NULL) {
		raw_ready(&R, HS_VERSION_MAX, -EINVAL, "tries", "try= missing");
		return 1;
	}
	if (strcmp(T.what, "role") == 0) {
		raw_ready(&R, HS_VERSION_MAX, 0, "\x1b]0;pwned\x07\x1b[2J", "");
		return 0;
	}
	raw_ready(&R, HS_VERSION_MAX, 0, "tries", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	T.armed = !raw_marked(&R);
	raw_serve(&R, handle, &T);
	return 0;
}
