/*
 * test_sandbox.c: the sandbox of parallel VMMs, for real: the probe program
 * (probe.c, its path in SANDBOX_PROBE) is started with sandbox_spawn and
 * reports its credentials, capabilities, seccomp state, signal state and
 * descriptors, or tries what the filters forbid and must die of SIGSYS.
 *
 * As root (the usual case here) every spawn drops to its own uid (61000
 * and up); the unprivileged path (drop_uid false) is exercised by a helper
 * process that first becomes an ordinary user. Run as an ordinary user,
 * every spawn takes that path. In sanitized builds the probe is sanitized
 * too, which is how the filters are checked against the sanitizer runtimes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "transport/handshake.h"

#define UID_BASE 61000u

static const char *probe;
static struct sandbox_filter stage1;
static unsigned next_uid;
/* What run_probe_with adds to its requests (the Landlock and uid tests). */
static const struct sandbox_landlock *spawn_landlock;
static bool spawn_uid_per_pid;
static const char *spawn_arg; /* the probe's second argument */

/* Is this the privileged case, where every spawn drops to its own uid? */
static bool root(void)
{
	return geteuid() == 0;
}

static uid_t fresh_uid(void)
{
	return UID_BASE + (next_uid++ % 900u);
}

/* ---- running the probe ----------------------------------------------- */

struct result {
	char out[32768]; /* the probe's standard output */
	char err[65536]; /* its standard error */
	size_t outlen, errlen;
	int code;      /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
	int status;    /* exit status or signal */
	char echo[64]; /* what the probe sent back on the setup socket */
	ssize_t echolen;
	uid_t uid; /* the uid it was given (or ours) */
};

static void append(char *buf, size_t cap, size_t *len, int fd, bool *open)
{
	if (*len + 1 >= cap) {
		char sink[4096];
		if (read(fd, sink, sizeof(sink)) <= 0)
			*open = false;
		return;
	}
	ssize_t n = read(fd, buf + *len, cap - 1 - *len);
	if (n <= 0) {
		if (n == 0 || errno != EINTR)
			*open = false;
		return;
	}
	*len += (size_t)n;
	buf[*len] = '\0';
}

/* Collect both outputs until the probe closes them, then its end through
 * the pidfd. Bounded: a probe that hangs is killed and reported. */
static void collect(int pidfd, int outfd, int errfd, struct result *r)
{
	bool out_open = true, err_open = true;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (out_open || err_open) {
		struct pollfd p[2] = {{.fd = out_open ? outfd : -1, .events = POLLIN},
				      {.fd = err_open ? errfd : -1, .events = POLLIN}};
		int n = poll(p, 2, 1000);
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 30) {
			fprintf(stderr, "probe hangs: killing it\n");
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			break;
		}
		if (n <= 0)
			continue;
		if (p[0].revents)
			append(r->out, sizeof(r->out), &r->outlen, outfd, &out_open);
		if (p[1].revents)
			append(r->err, sizeof(r->err), &r->errlen, errfd, &err_open);
	}
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int rc;
	do
		rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
	while (rc != 0 && errno == EINTR);
	assert_int_equal(rc, 0);
	r->code = si.si_code;
	r->status = si.si_status;
}

/* Start the probe with ACTION; standard input /dev/null, the outputs to
 * pipes, the setup socket a SOCK_SEQPACKET pair whose other end holds a
 * "ping" for the probe; DURING (if not NULL) runs while it runs. A descriptor without close-on-exec
 * is open meanwhile: it must not reach the probe. */
static void run_probe_with(const char *action, struct result *r,
			   void (*during)(int pidfd, int outfd, int sock, struct result *r))
{
	memset(r, 0, sizeof(*r));
	int sv[2], out[2], err[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	int stray = open("/etc/hostname", O_RDONLY); /* no O_CLOEXEC */
	assert_true(stray >= 0);

	/* Queued before the start: the probe may be gone before we could. */
	assert_int_equal(send(sv[0], "ping", 4, MSG_NOSIGNAL), 4);

	bool drop = root();
	r->uid = drop ? fresh_uid() : getuid();
	char *argv[] = {(char *)probe, (char *)action, (char *)spawn_arg, NULL};
	struct sandbox_env env;
	struct sandbox_spawn_req req = {
	    .path = probe,
	    .argv = argv,
	    .envp = sandbox_env(&env),
	    .stdin_fd = -1,
	    .stdout_fd = out[1],
	    .stderr_fd = err[1],
	    .setup_sock = sv[1],
	    .drop_uid = drop,
	    .uid = drop && spawn_uid_per_pid ? UID_BASE : r->uid,
	    .gid = drop && spawn_uid_per_pid ? UID_BASE : r->uid,
	    .uid_per_pid = drop && spawn_uid_per_pid,
	    .stage1 = &stage1,
	    .landlock = spawn_landlock,
	};
	struct errbuf e = {{0}};
	int pidfd = -1;
	pid_t pid = sandbox_spawn(&req, &pidfd, &e);
	if (pid < 0)
		fail_msg("sandbox_spawn(%s): %s", action, e.msg);
	if (req.uid_per_pid)
		r->uid = UID_BASE + (uid_t)pid;
	assert_true(pidfd >= 0);
	assert_true(fcntl(pidfd, F_GETFD) & FD_CLOEXEC);
	close(stray);
	close(sv[1]);
	close(out[1]);
	close(err[1]);

	if (during != NULL)
		during(pidfd, out[0], sv[0], r);
	collect(pidfd, out[0], err[0], r);
	close(pidfd);
	close(sv[0]);
	close(out[0]);
	close(err[0]);
}

static void run_probe(const char *action, struct result *r)
{
	run_probe_with(action, r, NULL);
}

static void dump(const char *action, const struct result *r)
{
	fprintf(stderr, "--- probe %s: si_code %d si_status %d\n--- stdout:\n%s\n--- stderr:\n%s\n",
		action, r->code, r->status, r->out, r->err);
}

/* The value of "KEY:\t..." in the probe's report, or NULL. */
static const char *field(const char *out, const char *key, char *val, size_t cap)
{
	size_t klen = strlen(key);
	for (const char *p = out; p != NULL && *p != '\0';) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			const char *v = p + klen + 1;
			while (*v == '\t' || *v == ' ')
				v++;
			size_t n = strcspn(v, "\n");
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n >= cap)
				n = cap - 1;
			memcpy(val, v, n);
			val[n] = '\0';
			return val;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

/* field(), with "(missing)" for a missing key. */
static const char *value(const char *out, const char *key, char *val, size_t cap)
{
	if (field(out, key, val, cap) == NULL)
		snprintf(val, cap, "(missing)");
	return val;
}

/*
 * Check the probe's report: NULL when it shows the sandbox (uid and gid
 * UID everywhere, no supplementary group when DROPPED, no capability,
 * no_new_privs, one seccomp filter, no blocked signal, only the terminal's
 * three ignored, descriptors 0-3 and no other), else what is wrong.
 */
static const char *check_report(const char *out, uid_t uid, gid_t gid, bool dropped)
{
	static char why[1024];
	char v[128], want[128];
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", uid, uid, uid, uid);
	if (strcmp(value(out, "Uid", v, sizeof(v)), want) != 0)
		return snprintf(why, sizeof(why), "Uid is '%s', want '%s'", v, want), why;
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", gid, gid, gid, gid);
	if (strcmp(value(out, "Gid", v, sizeof(v)), want) != 0)
		return snprintf(why, sizeof(why), "Gid is '%s', want '%s'", v, want), why;
	if (dropped && strcmp(value(out, "Groups", v, sizeof(v)), "") != 0)
		return snprintf(why, sizeof(why), "supplementary groups '%s'", v), why;
	static const struct {
		const char *key, *want;
	} exact[] = {
	    {"CapInh", "0000000000000000"},
	    {"CapPrm", "0000000000000000"},
	    {"CapEff", "0000000000000000"},
	    {"CapAmb", "0000000000000000"},
	    {"NoNewPrivs", "1"},
	    {"Seccomp", "2"},
	    {"Seccomp_filters", "1"},
	    {"SigBlk", "0000000000000000"},
	    /* SIGINT, SIGQUIT, SIGTSTP */
	    {"SigIgn", "0000000000080006"},
	};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(value(out, exact[i].key, v, sizeof(v)), exact[i].want) != 0)
			return snprintf(why, sizeof(why), "%s is '%s', want '%s'", exact[i].key, v,
					exact[i].want),
			       why;
	/* Descriptors: exactly 0, 1, 2, 3. */
	unsigned seen = 0;
	for (const char *p = strstr(out, "fd "); p != NULL; p = strstr(p + 1, "\nfd ")) {
		const char *q = p[0] == '\n' ? p + 1 : p;
		int fd = atoi(q + 3);
		if (fd < 0 || fd > HS_SOCKET_FD) {
			snprintf(why, sizeof(why), "unexpected descriptor: %.*s",
				 (int)strcspn(q, "\n"), q);
			return why;
		}
		seen |= 1u << fd;
	}
	if (seen != 0xf)
		return snprintf(why, sizeof(why), "descriptors 0-3 not all open (%#x)", seen), why;
	return NULL;
}

static void assert_report(const char *action, const struct result *r)
{
	const char *why = check_report(r->out, r->uid, r->uid, root());
	if (why != NULL) {
		dump(action, r);
		fail_msg("%s: %s", action, why);
	}
}

static void assert_exit(const char *action, const struct result *r, int status)
{
	if (r->code != CLD_EXITED || r->status != status) {
		dump(action, r);
		fail_msg("%s: want exit status %d", action, status);
	}
}

static void assert_signal(const char *action, const struct result *r, int sig)
{
	if ((r->code != CLD_KILLED && r->code != CLD_DUMPED) || r->status != sig) {
		dump(action, r);
		fail_msg("%s: want death by %s", action, strsignal(sig));
	}
}

/* The probe got to the forbidden call, and did not return from it. */
static void assert_forbidden(const char *action)
{
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_probe(action, r);
	assert_signal(action, r, SIGSYS);
	char reached[64], survived[64];
	snprintf(reached, sizeof(reached), "reached %s\n", action);
	snprintf(survived, sizeof(survived), "survived %s", action);
	if (strstr(r->out, reached) == NULL || strstr(r->out, survived) != NULL) {
		dump(action, r);
		fail_msg("%s: the probe died elsewhere than at the forbidden call", action);
	}
	assert_report(action, r);
	free(r);
}

/* Run FN in a child process (it may change credentials); its exit status:
 * 0, or 1 with the reason on stderr. */
static int in_child(int (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- tests ------------------------------------------------------------ */

static void test_filters(void **state)
{
	(void)state;
	struct sandbox_filter s2;
	struct errbuf e;
	assert_int_equal(sandbox_filter_stage2(&s2, &e), 0);
	const struct sandbox_filter *fs[] = {&stage1, &s2};
	for (int i = 0; i < 2; i++) {
		const struct sandbox_filter *f = fs[i];
		assert_non_null(f->insns);
		assert_ptr_equal(f->prog.filter, f->insns);
		assert_true(f->prog.len > 10 && f->prog.len <= 4096);
		/* tgkill's self comparison, at least */
		assert_true(f->nself >= 1 && f->nself <= SANDBOX_SELF_MAX);
		for (unsigned k = 0; k < f->nself; k++) {
			const struct sock_filter *in = &f->insns[f->self_at[k]];
			assert_int_equal(in->code, BPF_JMP | BPF_JEQ | BPF_K);
			assert_int_equal(in->k, SANDBOX_SELF_PID);
		}
	}
	/* Stage 2 is the narrower one. */
	assert_true(s2.prog.len < stage1.prog.len);
	sandbox_filter_free(&s2);
	assert_null(s2.insns);
	assert_int_equal(s2.prog.len, 0);
	sandbox_filter_free(NULL);

	errno = 0;
	assert_int_equal(sandbox_filter_install(NULL), -1);
	assert_int_equal(errno, EINVAL);
	struct sandbox_filter bad = stage1;
	bad.prog.filter = NULL;
	assert_int_equal(sandbox_filter_install(&bad), -1);
	assert_int_equal(errno, EINVAL);
	bad = stage1;
	bad.self_at[0] = (uint16_t)bad.prog.len;
	assert_int_equal(sandbox_filter_install(&bad), -1);
	assert_int_equal(errno, EINVAL);
}

/* Installed without exec, in a process forked from the one that built the
 * filter: the self-only rule follows the installing process. */
static struct sandbox_filter fork_s2;
static int stage2_in_fork(void)
{
	pid_t parent = getppid(); /* getppid itself is not allowed */
	if (sandbox_filter_install(&fork_s2) != 0) {
		fprintf(stderr, "install: %s\n", strerror(errno));
		return 1;
	}
	/* Signal 0 to itself: allowed. */
	if (syscall(SYS_tgkill, getpid(), getpid(), 0) != 0)
		return 1;
	/* To the parent: kills this process with SIGSYS. */
	syscall(SYS_tgkill, parent, parent, 0);
	return 2;
}

static void test_install_binds_self(void **state)
{
	(void)state;
	struct errbuf e;
	assert_int_equal(sandbox_filter_stage2(&fork_s2, &e), 0);
	assert_int_equal(in_child(stage2_in_fork), 128 + SIGSYS);
	/* The builder's copy still holds the placeholder. */
	for (unsigned k = 0; k < fork_s2.nself; k++)
		assert_int_equal(fork_s2.insns[fork_s2.self_at[k]].k, SANDBOX_SELF_PID);
	sandbox_filter_free(&fork_s2);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void test_report(void **state)
{
	(void)state;
	/* The caller's signal state must not reach the probe: a handler, an
	 * ignored signal, a blocked one. And it must be the caller's again
	 * after the spawn. */
	struct sigaction sa = {.sa_handler = on_usr1}, old_usr1, old_pipe;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old_usr1), 0);
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigemptyset(&ign.sa_mask);
	assert_int_equal(sigaction(SIGPIPE, &ign, &old_pipe), 0);
	sigset_t usr2, old_mask, now;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr2, &old_mask), 0);

	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_probe("report", r);

	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old_mask, &now), 0);
	assert_true(sigismember(&now, SIGUSR2));
	assert_false(sigismember(&now, SIGUSR1));
	sigaction(SIGUSR1, &old_usr1, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);

	assert_exit("report", r, 0);
	assert_report("report", r);
	assert_non_null(strstr(r->out, "fd 0 /dev/null\n"));
	assert_non_null(strstr(r->out, "fd 1 pipe:["));
	assert_non_null(strstr(r->out, "fd 2 pipe:["));
	assert_non_null(strstr(r->out, "fd 3 socket:["));
	assert_non_null(strstr(r->out, "isatty0 0\n")); /* TCGETS on 0 allowed */
	free(r);
}

static void test_stage1_forbids(void **state)
{
	(void)state;
	static const char *actions[] = {
	    "socket", "ptrace",	       "fork",	     "ioctl",	   "x32",
	    "int80",  "signal-parent", "open-write", "open-creat",
	};
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		assert_forbidden(actions[i]);
}

static void test_stage1_allows(void **state)
{
	(void)state;
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	/* Read-only opens: a file, a directory (O_DIRECTORY), O_PATH. */
	run_probe("open-read", r);
	assert_exit("open-read", r, 0);
	assert_non_null(strstr(r->out, "open-read ok\n"));
	/* Read-only opens do not reach the parent's memory. */
	run_probe("peek-parent", r);
	assert_exit("peek-parent", r, 0);
	/* abort() signals the process itself: SIGABRT, not SIGSYS. */
	run_probe("abort", r);
	assert_signal("abort", r, SIGABRT);
	assert_non_null(strstr(r->out, "reached abort\n"));
	free(r);
}

/* The main VMM's side of the set-up socket: take the echo, then close. */
static void echo_and_close(int pidfd, int outfd, int sock, struct result *r)
{
	(void)pidfd;
	(void)outfd;
	struct pollfd p = {.fd = sock, .events = POLLIN};
	if (poll(&p, 1, 20000) == 1) {
		r->echolen = recv(sock, r->echo, sizeof(r->echo) - 1, MSG_DONTWAIT);
		if (r->echolen > 0)
			r->echo[r->echolen] = '\0';
	}
	shutdown(sock, SHUT_RDWR);
}

static void test_stage2_serves(void **state)
{
	(void)state;
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_probe_with("stage2", r, echo_and_close);
	assert_exit("stage2", r, 0);
	assert_report("stage2", r);
	assert_non_null(strstr(r->out, "stage2 installed\n"));
	assert_non_null(strstr(r->out, "serve ok"));
	assert_int_equal(r->echolen, 4);
	assert_string_equal(r->echo, "ping");
	free(r);
}

static void test_stage2_forbids(void **state)
{
	(void)state;
	static const char *actions[] = {"stage2-open-write", "stage2-mmapfd", "stage2-exec",
					"stage2-wx", "stage2-socket"};
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		assert_forbidden(actions[i]);
#ifdef VMMUX_SANITIZED
	/* Sanitized builds keep read-only opens in stage 2: the runtimes read
	 * /proc/self/{exe,cmdline,environ,maps} to write a report. */
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_probe("stage2-open", r);
	assert_exit("stage2-open", r, 1);
	assert_non_null(strstr(r->out, "survived stage2-open"));
	free(r);
#else
	assert_forbidden("stage2-open");
#endif
}

/* Stopped and continued while it sleeps (SIGSTOP, SIGCONT from a
 * terminal or a debugger): the kernel restarts the sleep through
 * restart_syscall, which stage 2 must admit. */
static void stop_and_continue(int pidfd, int outfd, int sock, struct result *r)
{
	(void)sock;
	bool open = true;
	for (int i = 0; i < 100 && open && strstr(r->out, "napping\n") == NULL; i++) {
		struct pollfd p = {.fd = outfd, .events = POLLIN};
		if (poll(&p, 1, 100) == 1)
			append(r->out, sizeof(r->out), &r->outlen, outfd, &open);
	}
	assert_non_null(strstr(r->out, "napping\n"));
	assert_int_equal(syscall(SYS_pidfd_send_signal, pidfd, SIGSTOP, NULL, 0), 0);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WSTOPPED), 0);
	assert_int_equal(si.si_code, CLD_STOPPED);
	assert_int_equal(syscall(SYS_pidfd_send_signal, pidfd, SIGCONT, NULL, 0), 0);
}

static void test_stop_continue(void **state)
{
	(void)state;
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_probe_with("stage2-nap", r, stop_and_continue);
	assert_exit("stage2-nap", r, 0);
	assert_non_null(strstr(r->out, "awake\n"));
	free(r);
}

/* ThreadSanitizer builds (__SANITIZE_THREAD__) have no AddressSanitizer or
 * UBSan to report with, and TSan's own reports need threads, which stage 2
 * forbids: the report test is for the ASan+UBSan build. */
#if defined(VMMUX_SANITIZED) && !defined(__SANITIZE_THREAD__)
#define TEST_SANITIZER_REPORTS 1
#endif

#ifdef TEST_SANITIZER_REPORTS
/* A sanitizer error in a sandboxed VMM is reported in full, not cut short
 * by the filter. */
static void test_sanitizer_reports(void **state)
{
	(void)state;
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_probe("stage2-asan", r);
	if (strstr(r->err, "ERROR: AddressSanitizer: heap-buffer-overflow") == NULL ||
	    strstr(r->err, "SUMMARY: AddressSanitizer: heap-buffer-overflow") == NULL ||
	    strstr(r->err, "    #0 0x") == NULL ||
	    ((r->code == CLD_KILLED || r->code == CLD_DUMPED) && r->status == SIGSYS)) {
		dump("stage2-asan", r);
		fail_msg("stage2-asan: incomplete AddressSanitizer report");
	}
	run_probe("stage2-ubsan", r);
	if (strstr(r->err, "runtime error: signed integer overflow") == NULL ||
	    ((r->code == CLD_KILLED || r->code == CLD_DUMPED) && r->status == SIGSYS)) {
		dump("stage2-ubsan", r);
		fail_msg("stage2-ubsan: incomplete UBSan report");
	}
	free(r);
}
#endif

/* The descriptors the request names may sit anywhere, even on each other's
 * targets: here the setup socket is descriptor 1 and the output pipe
 * descriptor 3 in the caller. */
static int crossed_fds(void)
{
	int sv[2], out[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(out, O_CLOEXEC) != 0)
		return 1;
	int keep_err = fcntl(2, F_DUPFD_CLOEXEC, 20);
	if (dup3(out[1], 3, O_CLOEXEC) != 3 || dup3(sv[1], 1, O_CLOEXEC) != 1)
		return 1;
	close(out[1]);
	close(sv[1]);
	uid_t uid = root() ? fresh_uid() : getuid();
	char *argv[] = {(char *)probe, "report", NULL};
	struct sandbox_env env;
	struct sandbox_spawn_req req = {
	    .path = probe,
	    .argv = argv,
	    .envp = sandbox_env(&env),
	    .stdin_fd = -1,
	    .stdout_fd = 3,
	    .stderr_fd = keep_err,
	    .setup_sock = 1,
	    .drop_uid = root(),
	    .uid = uid,
	    .gid = uid,
	    .stage1 = &stage1,
	};
	struct errbuf e;
	int pidfd;
	pid_t pid = sandbox_spawn(&req, &pidfd, &e);
	if (pid < 0) {
		dprintf(keep_err, "crossed: %s\n", e.msg);
		return 1;
	}
	close(3);
	close(1);
	static char buf[32768];
	size_t len = 0;
	ssize_t n;
	while ((n = read(out[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	siginfo_t si;
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0 || si.si_code != CLD_EXITED ||
	    si.si_status != 0) {
		dprintf(keep_err, "crossed: probe failed\n%s\n", buf);
		return 1;
	}
	const char *why = check_report(buf, uid, uid, root());
	if (why == NULL &&
	    (strstr(buf, "fd 1 pipe:[") == NULL || strstr(buf, "fd 3 socket:[") == NULL))
		why = "descriptors 1 and 3 not where they belong";
	if (why != NULL) {
		dprintf(keep_err, "crossed: %s\n%s\n", why, buf);
		return 1;
	}
	return 0;
}

static void test_crossed_descriptors(void **state)
{
	(void)state;
	assert_int_equal(in_child(crossed_fds), 0);
}

/* The program is killed when the process that started it dies. */
static void test_parent_death(void **state)
{
	(void)state;
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	pid_t mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		/* The intermediate: start the probe, wait until it sleeps,
		 * tell its pid, and exit. */
		int out[2];
		if (pipe2(out, O_CLOEXEC) != 0)
			_exit(1);
		uid_t uid = root() ? fresh_uid() : getuid();
		char *argv[] = {(char *)probe, "sleep", NULL};
		struct sandbox_env env;
		struct sandbox_spawn_req req = {
		    .path = probe,
		    .argv = argv,
		    .envp = sandbox_env(&env),
		    .stdin_fd = -1,
		    .stdout_fd = out[1],
		    .stderr_fd = 2,
		    .setup_sock = -1,
		    .drop_uid = root(),
		    .uid = uid,
		    .gid = uid,
		    .stage1 = &stage1,
		};
		struct errbuf e;
		int pidfd;
		pid_t pid = sandbox_spawn(&req, &pidfd, &e);
		if (pid < 0) {
			fprintf(stderr, "intermediate: %s\n", e.msg);
			_exit(1);
		}
		close(out[1]);
		static char buf[16384];
		size_t len = 0;
		while (strstr(buf, "sleeping\n") == NULL) {
			ssize_t n = read(out[0], buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				_exit(2);
			len += (size_t)n;
			buf[len] = '\0';
		}
		if (write(pp[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(3);
		_exit(0);
	}
	close(pp[1]);
	pid_t pid = 0;
	assert_int_equal(read(pp[0], &pid, sizeof(pid)), sizeof(pid));
	close(pp[0]);
	int st;
	assert_int_equal(waitpid(mid, &st, 0), mid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* The probe is now this process's (subreaper) child: it must die of
	 * SIGKILL without anyone else killing it. */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(pidfd >= 0);
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int n = poll(&p, 1, 10000);
	if (n != 1) {
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		waitpid(pid, NULL, 0);
		fail_msg("the probe outlived its parent");
	}
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED), 0);
	assert_int_equal(si.si_code, CLD_KILLED);
	assert_int_equal(si.si_status, SIGKILL);
	close(pidfd);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static pid_t spawn_simple(const char *path, bool drop, uid_t uid, int sock, int *pidfd,
			  struct errbuf *e)
{
	char *argv[] = {(char *)path, "report", NULL};
	struct sandbox_env env;
	struct sandbox_spawn_req req = {
	    .path = path,
	    .argv = argv,
	    .envp = sandbox_env(&env),
	    .stdin_fd = -1,
	    .stdout_fd = -1,
	    .stderr_fd = -1,
	    .setup_sock = sock,
	    .drop_uid = drop,
	    .uid = uid,
	    .gid = uid,
	    .stage1 = &stage1,
	};
	return sandbox_spawn(&req, pidfd, e);
}

static void test_exec_failure(void **state)
{
	(void)state;
	struct errbuf e = {{0}};
	int pidfd = 123;
	uid_t uid = root() ? fresh_uid() : getuid();
	assert_int_equal(spawn_simple("/nonexistent/vmmux-vmm", root(), uid, -1, &pidfd, &e), -1);
	assert_int_equal(pidfd, -1);
	assert_string_equal(e.msg,
			    "cannot execute /nonexistent/vmmux-vmm: No such file or directory");
	/* Not executable. */
	char path[] = "/tmp/vmmux-sandbox-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	pid_t pid = spawn_simple(path, root(), uid, -1, &pidfd, &e);
	unlink(path);
	assert_int_equal(pid, -1);
	char want[128];
	snprintf(want, sizeof(want), "cannot execute %s: Permission denied", path);
	assert_string_equal(e.msg, want);
	/* No child is left behind. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_bad_requests(void **state)
{
	(void)state;
	struct errbuf e = {{0}};
	int pidfd;
	assert_int_equal(sandbox_spawn(NULL, &pidfd, &e), -1);
	assert_string_equal(e.msg, "sandbox: no request");
	assert_int_equal(spawn_simple(probe, true, 0, -1, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, ": uid 0 is not an unprivileged uid"));
	assert_int_equal(spawn_simple(probe, true, (uid_t)-1, -1, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, ": uid -1 is not an unprivileged uid"));
	assert_int_equal(spawn_simple(probe, root(), UID_BASE, 999, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, ": setup socket: descriptor 999 is not open"));
	if (root()) {
		assert_int_equal(spawn_simple(probe, false, 0, -1, &pidfd, &e), -1);
		assert_non_null(strstr(e.msg, "refusing to run a sandboxed VMM as root"));
	}
	char *argv[] = {NULL};
	struct sandbox_spawn_req req = {
	    .path = probe, .argv = argv, .envp = argv, .stage1 = &stage1};
	assert_int_equal(sandbox_spawn(&req, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, "empty argument list"));
	char *args[] = {(char *)probe, NULL};
	req.argv = args;
	req.stage1 = NULL;
	assert_int_equal(sandbox_spawn(&req, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, "no stage-1 seccomp filter"));
	req.stage1 = &stage1;
	assert_int_equal(sandbox_spawn(&req, NULL, &e), -1);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

/*
 * vmmux as an ordinary user: drop_uid false runs the program under the
 * caller's uid, still without capabilities, with no_new_privs and the
 * filter, and cannot read the caller's memory through /proc (read-only
 * opens are allowed in stage 1); drop_uid true cannot work and says which
 * step failed.
 */
#define USER_UID 61950u
/* Start the probe with ACTION, drop_uid false, no setup socket; its
 * output in BUF; its exit status, or -1. */
static int user_probe(const char *action, char *buf, size_t cap)
{
	int out[2];
	if (pipe2(out, O_CLOEXEC) != 0)
		return -1;
	char *argv[] = {(char *)probe, (char *)action, NULL};
	struct sandbox_env env;
	struct sandbox_spawn_req req = {
	    .path = probe,
	    .argv = argv,
	    .envp = sandbox_env(&env),
	    .stdin_fd = -1,
	    .stdout_fd = out[1],
	    .stderr_fd = 2,
	    .setup_sock = -1,
	    .drop_uid = false,
	    .stage1 = &stage1,
	};
	struct errbuf e;
	int pidfd;
	if (sandbox_spawn(&req, &pidfd, &e) < 0) {
		fprintf(stderr, "as_user: %s\n", e.msg);
		return -1;
	}
	close(out[1]);
	size_t len = 0;
	ssize_t n;
	while ((n = read(out[0], buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(out[0]);
	siginfo_t si;
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0)
		return -1;
	close(pidfd);
	return si.si_code == CLD_EXITED ? si.si_status : -1;
}

static int as_user(void)
{
	if (root() && (syscall(SYS_setgroups, 0, NULL) != 0 ||
		       syscall(SYS_setresgid, USER_UID, USER_UID, USER_UID) != 0 ||
		       syscall(SYS_setresuid, USER_UID, USER_UID, USER_UID) != 0)) {
		fprintf(stderr, "as_user: cannot become uid %u: %s\n", USER_UID, strerror(errno));
		return 1;
	}
	/* As an ordinary user starts: dumpable (the uid change made this
	 * process non-dumpable). */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		return 1;
	static char buf[32768];
	if (user_probe("report", buf, sizeof(buf)) != 0) {
		fprintf(stderr, "as_user: probe failed\n%s\n", buf);
		return 1;
	}
	/* Without a setup socket, 3 is closed: expect 0-2 only. */
	char v[128];
	const char *why = NULL;
	if (strstr(buf, "fd 3 ") != NULL || strstr(buf, "fd 2 ") == NULL)
		why = "descriptors";
	else if (strcmp(value(buf, "CapEff", v, sizeof(v)), "0000000000000000") != 0 ||
		 strcmp(value(buf, "CapPrm", v, sizeof(v)), "0000000000000000") != 0)
		why = "capabilities";
	else if (strcmp(value(buf, "NoNewPrivs", v, sizeof(v)), "1") != 0 ||
		 strcmp(value(buf, "Seccomp", v, sizeof(v)), "2") != 0)
		why = "no_new_privs or seccomp";
	else {
		char want[64];
		snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", getuid(), getuid(), getuid(),
			 getuid());
		if (strcmp(value(buf, "Uid", v, sizeof(v)), want) != 0)
			why = "uid";
	}
	if (why != NULL) {
		fprintf(stderr, "as_user: wrong %s\n%s\n", why, buf);
		return 1;
	}
	/* The program shares this process's uid: this process must have
	 * become non-dumpable, so that its memory stays out of reach. */
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
		fprintf(stderr, "as_user: still dumpable after the spawn\n");
		return 1;
	}
	if (user_probe("peek-parent", buf, sizeof(buf)) != 0) {
		fprintf(stderr, "as_user: the probe reached its parent\n%s\n", buf);
		return 1;
	}
	/* Dropping to another uid needs privilege. */
	int pidfd;
	struct errbuf e;
	pid_t pid = spawn_simple(probe, true, USER_UID + 1, -1, &pidfd, &e);
	char want[512];
	snprintf(want, sizeof(want), "starting %s: setgroups(0): Operation not permitted", probe);
	if (pid != -1 || strcmp(e.msg, want) != 0) {
		fprintf(stderr, "as_user: drop_uid as a user gave '%s'\n",
			pid < 0 ? e.msg : "a child");
		return 1;
	}
	return 0;
}

/* Copy the file FROM to TO with mode 0755; 0 or -1. */
static int copy_exec(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	int rc = in >= 0 && out >= 0 ? 0 : -1;
	char buf[65536];
	ssize_t n;
	while (rc == 0 && (n = read(in, buf, sizeof(buf))) != 0)
		if (n < 0 || write(out, buf, (size_t)n) != n)
			rc = -1;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0)
		rc = -1;
	return rc == 0 ? chmod(to, 0755) : -1;
}

static void test_unprivileged_caller(void **state)
{
	(void)state;
	/* The user must reach the probe whatever directory the build is in (a
	 * tree under /root, mode 0700, included): a copy in a directory of its
	 * own that everyone may enter. */
	char dir[] = "/tmp/vmmux-probe-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/probe", dir);
	assert_int_equal(copy_exec(probe, path), 0);
	const char *saved = probe;
	probe = path;
	int r = in_child(as_user);
	probe = saved;
	unlink(path);
	rmdir(dir);
	assert_int_equal(r, 0);
}

/* A multi-threaded caller: threads that allocate and hold locks while the
 * main thread spawns. The child never touches those locks. */
static atomic_bool churn_stop;
static pthread_mutex_t churn_lock = PTHREAD_MUTEX_INITIALIZER;
static void *churn(void *arg)
{
	(void)arg;
	while (!atomic_load(&churn_stop)) {
		pthread_mutex_lock(&churn_lock);
		for (int i = 0; i < 64; i++)
			free(malloc((size_t)(i * 97) % 4096 + 1));
		pthread_mutex_unlock(&churn_lock);
	}
	return NULL;
}

static void test_threaded_caller(void **state)
{
	(void)state;
	pthread_t t[2];
	atomic_store(&churn_stop, false);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, NULL), 0);
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	for (int i = 0; i < 8; i++) {
		run_probe("report", r);
		assert_exit("report", r, 0);
		assert_report("report", r);
	}
	atomic_store(&churn_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	free(r);
}

static void test_env(void **state)
{
	(void)state;
	struct sandbox_env env;
	char *const *envp = sandbox_env(&env);
	assert_ptr_equal(envp, env.envp);
	assert_string_equal(envp[0], "PATH=/usr/local/bin:/usr/bin:/bin");
#ifdef VMMUX_SANITIZED
	const char *old = getenv("ASAN_OPTIONS");
	char *saved = old != NULL ? strdup(old) : NULL;
	assert_int_equal(setenv("ASAN_OPTIONS", "abort_on_error=1", 1), 0);
	envp = sandbox_env(&env);
	assert_string_equal(envp[1], "ASAN_OPTIONS=abort_on_error=1:detect_leaks=0:symbolize=0");
	assert_int_equal(strncmp(envp[2], "UBSAN_OPTIONS=", 14), 0);
	assert_non_null(strstr(envp[2], "symbolize=0"));
	assert_null(envp[3]);
	/* Options too long to keep: ours only. */
	char *big = malloc(4000);
	assert_non_null(big);
	memset(big, 'x', 3999);
	big[3999] = '\0';
	assert_int_equal(setenv("ASAN_OPTIONS", big, 1), 0);
	envp = sandbox_env(&env);
	assert_string_equal(envp[1], "ASAN_OPTIONS=detect_leaks=0:symbolize=0");
	free(big);
	if (saved != NULL)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
#else
	assert_null(envp[1]);
#endif
}

/* ---- Landlock and the uid per process ----------------------------------- */

static struct sandbox_landlock probe_ll;

static bool has_file(const struct sandbox_landlock *ll, const char *path)
{
	for (unsigned i = 0; i < ll->nfiles; i++)
		if (strcmp(ll->names + ll->at[i], path) == 0)
			return true;
	return false;
}

/* The probe's confinement lists the probe, its loader (PT_INTERP), libc
 * and the loader's cache: what the loader maps, found by asking it. */
static void test_landlock_prepare(void **state)
{
	(void)state;
	if (sandbox_landlock_abi() == 0)
		skip();
	struct errbuf e = {{0}};
	struct sandbox_landlock *ll = malloc(sizeof(*ll));
	assert_non_null(ll);
	if (sandbox_landlock_prepare(ll, probe, &e) != 0)
		fail_msg("%s", e.msg);
	assert_true(ll->abi >= 1);
	assert_true(has_file(ll, probe));
	assert_true(has_file(ll, "/lib64/ld-linux-x86-64.so.2"));
	assert_true(has_file(ll, "/lib/x86_64-linux-gnu/libc.so.6") ||
		    has_file(ll, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
	assert_true(has_file(ll, "/etc/ld.so.cache"));
	assert_false(has_file(ll, "/etc/passwd"));
#ifdef VMMUX_SANITIZED
	assert_true(has_file(ll, "/proc"));
#else
	assert_false(has_file(ll, "/proc"));
	assert_true(ll->nfiles <= 12); /* files, not directories */
	for (unsigned i = 0; i < ll->nfiles; i++)
		assert_false(ll->dir[i]);
#endif
	/* A program that cannot be started, and a script (its interpreter
	 * may be anywhere in the system's directories). */
	assert_int_equal(sandbox_landlock_prepare(ll, "/nonexistent/vmm", &e), -1);
	assert_string_equal(e.msg, "cannot execute /nonexistent/vmm: No such file or directory");
	char path[] = "/tmp/vmmux-ll-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	int rc = sandbox_landlock_prepare(ll, path, &e);
	unlink(path);
	assert_int_equal(rc, 0);
	assert_true(has_file(ll, "/usr"));
	/* Relative paths are refused. */
	assert_int_equal(sandbox_landlock_add(ll, "etc/passwd", &e), -1);
	assert_non_null(strstr(e.msg, "is not an absolute path"));
	free(ll);
}

/* The ruleset entered in a child without any seccomp filter: only the
 * kernel's Landlock rules stand between it and the rest. */
static int landlocked(void)
{
	pid_t parent = getppid();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return fprintf(stderr, "no_new_privs: %s\n", strerror(errno)), 1;
	int rs = sandbox_landlock_ruleset(&probe_ll);
	if (rs < 0)
		return fprintf(stderr, "ruleset: %s\n", strerror(errno)), 1;
	if (sandbox_landlock_restrict(rs) != 0)
		return fprintf(stderr, "restrict: %s\n", strerror(errno)), 1;
	close(rs);
	int fd = open(probe, O_RDONLY);
	if (fd < 0)
		return fprintf(stderr, "a listed file: %s\n", strerror(errno)), 1;
	close(fd);
	char mem[64];
	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)parent);
	const char *refused[] = {"/etc/passwd", "/etc/hostname", mem};
	for (int i = 0; i < 3; i++) {
		fd = open(refused[i], O_RDONLY);
		if (fd >= 0 || errno != EACCES)
			return fprintf(stderr, "%s: %s\n", refused[i],
				       fd >= 0 ? "opened" : strerror(errno)),
			       1;
	}
	/* Written, even where the uid may write: refused. */
	fd = open("/tmp/vmmux-ll-write", O_WRONLY | O_CREAT, 0600);
	if (fd >= 0 || errno != EACCES)
		return fprintf(stderr, "a file created in /tmp\n"), 1;
	/* A process outside the domain: no signal (ABI 6), no ptrace-mode
	 * access (ABI 1), whatever the uids. */
	if (probe_ll.abi >= 6 && (kill(parent, 0) == 0 || errno != EPERM))
		return fprintf(stderr, "signal to the parent: %s\n", strerror(errno)), 1;
	char byte;
	struct iovec here = {.iov_base = &byte, .iov_len = 1};
	struct iovec there = {.iov_base = (void *)&byte, .iov_len = 1}; /* same layout: forked */
	if (syscall(SYS_process_vm_readv, parent, &here, 1, &there, 1, 0) >= 0 || errno != EPERM)
		return fprintf(stderr, "process_vm_readv of the parent: %s\n", strerror(errno)), 1;
	return 0;
}

static void test_landlock_ruleset(void **state)
{
	(void)state;
	if (sandbox_landlock_abi() == 0)
		skip();
	struct errbuf e = {{0}};
	if (sandbox_landlock_prepare(&probe_ll, probe, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(in_child(landlocked), 0);
}

/* The probe started in its Landlock domain: it runs (the loader found its
 * files) and every other file, and its parent's memory, are out of reach. */
static void test_landlock_spawn(void **state)
{
	(void)state;
	if (sandbox_landlock_abi() == 0)
		skip();
	struct errbuf e = {{0}};
	if (sandbox_landlock_prepare(&probe_ll, probe, &e) != 0)
		fail_msg("%s", e.msg);
	char parent[16];
	snprintf(parent, sizeof(parent), "%d", (int)getpid());
	struct result *r = malloc(sizeof(*r));
	assert_non_null(r);
	spawn_landlock = &probe_ll;
	spawn_arg = parent;
	run_probe("confined", r);
	spawn_landlock = NULL;
	spawn_arg = NULL;
	if (r->code != CLD_EXITED || r->status != 0)
		dump("confined", r);
	assert_exit("confined", r, 0);
	assert_non_null(strstr(r->out, "confined ok\n"));
#ifndef VMMUX_SANITIZED
	assert_non_null(strstr(r->out, "confined /proc/self/status: Permission denied\n"));
#endif
	/* Unprepared: refused before any fork. */
	struct sandbox_landlock none;
	memset(&none, 0, sizeof(none));
	spawn_landlock = &none;
	int pidfd;
	char *argv[] = {(char *)probe, NULL};
	struct sandbox_env env;
	struct sandbox_spawn_req req = {.path = probe,
					.argv = argv,
					.envp = sandbox_env(&env),
					.stdin_fd = -1,
					.stdout_fd = -1,
					.stderr_fd = -1,
					.setup_sock = -1,
					.drop_uid = root(),
					.uid = fresh_uid(),
					.gid = UID_BASE,
					.stage1 = &stage1,
					.landlock = &none};
	assert_int_equal(sandbox_spawn(&req, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, "the Landlock confinement is not prepared"));
	spawn_landlock = NULL;
	free(r);
}

/* As root with uid_per_pid: uid and gid are the base plus the child's pid,
 * so two processes never share them; a request without a uid to drop to,
 * or whose range would overflow, is refused. */
static void test_uid_per_pid(void **state)
{
	(void)state;
	if (!root())
		skip();
	struct result *r = malloc(sizeof(*r)), *r2 = malloc(sizeof(*r2));
	assert_non_null(r);
	assert_non_null(r2);
	spawn_uid_per_pid = true;
	run_probe("report", r);
	run_probe("report", r2);
	spawn_uid_per_pid = false;
	assert_exit("report", r, 0);
	assert_report("report", r); /* uid and gid: UID_BASE + its pid */
	assert_report("report", r2);
	assert_int_not_equal(r->uid, r2->uid);
	assert_true(r->uid > UID_BASE);

	struct errbuf e = {{0}};
	int pidfd;
	char *argv[] = {(char *)probe, NULL};
	struct sandbox_env env;
	struct sandbox_spawn_req req = {.path = probe,
					.argv = argv,
					.envp = sandbox_env(&env),
					.stdin_fd = -1,
					.stdout_fd = -1,
					.stderr_fd = -1,
					.setup_sock = -1,
					.drop_uid = false,
					.uid = UID_BASE,
					.gid = UID_BASE,
					.uid_per_pid = true,
					.stage1 = &stage1};
	assert_int_equal(sandbox_spawn(&req, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, "a uid per pid without a uid to drop to"));
	req.drop_uid = true;
	req.uid = UINT32_MAX - 100;
	assert_int_equal(sandbox_spawn(&req, &pidfd, &e), -1);
	assert_non_null(strstr(e.msg, "plus a pid would overflow"));
	free(r);
	free(r2);
}

static int setup(void **state)
{
	(void)state;
	probe = getenv("SANDBOX_PROBE");
	if (probe == NULL || access(probe, X_OK) != 0) {
		fprintf(stderr, "SANDBOX_PROBE must name the probe program\n");
		return -1;
	}
	struct errbuf e;
	if (sandbox_filter_stage1(&stage1, &e) != 0) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	next_uid = (unsigned)getpid() % 900u;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sandbox_filter_free(&stage1);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filters),
	    cmocka_unit_test(test_install_binds_self),
	    cmocka_unit_test(test_report),
	    cmocka_unit_test(test_stage1_forbids),
	    cmocka_unit_test(test_stage1_allows),
	    cmocka_unit_test(test_stage2_serves),
	    cmocka_unit_test(test_stage2_forbids),
	    cmocka_unit_test(test_stop_continue),
#ifdef TEST_SANITIZER_REPORTS
	    cmocka_unit_test(test_sanitizer_reports),
#endif
	    cmocka_unit_test(test_crossed_descriptors),
	    cmocka_unit_test(test_parent_death),
	    cmocka_unit_test(test_exec_failure),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_unprivileged_caller),
	    cmocka_unit_test(test_threaded_caller),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_landlock_prepare),
	    cmocka_unit_test(test_landlock_ruleset),
	    cmocka_unit_test(test_landlock_spawn),
	    cmocka_unit_test(test_uid_per_pid),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
