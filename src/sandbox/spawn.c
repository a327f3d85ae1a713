/*
 * spawn.c: starting a parallel VMM's program in its sandbox.
 *
 * Everything the child needs is prepared before fork (the /dev/null
 * descriptor, the error pipe, the filter's program); the child then makes
 * only async-signal-safe calls, most of them raw system calls, since the
 * caller may be multi-threaded and another thread may have held any lock
 * at the time of the fork. A failure in the child is reported on a
 * close-on-exec pipe as a (step, errno) pair; end of file means the exec
 * succeeded.
 */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/handshake.h"
#include "util/log.h"

/* The descriptor where the child keeps its end of the error pipe until the
 * exec closes it; every descriptor above it is closed. */
#define ERR_FD (HS_SOCKET_FD + 1)
/* Where the child parks descriptors while it moves them (above 0..ERR_FD). */
#define PARK_FD 10

enum step {
	STEP_PARK = 1,
	STEP_STDIN,
	STEP_STDOUT,
	STEP_STDERR,
	STEP_SOCKET,
	STEP_ERRFD,
	STEP_CLOSE,
	STEP_SIGNALS,
	STEP_SETGROUPS,
	STEP_SETRESGID,
	STEP_SETRESUID,
	STEP_AMBIENT,
	STEP_NNP,
	STEP_PDEATHSIG,
	STEP_PARENT,
	STEP_SIGMASK,
	STEP_AFFINITY,
	STEP_SECCOMP,
	STEP_EXEC,
	STEP_LANDLOCK_RULES,
	STEP_LANDLOCK,
};

struct child_report {
	int32_t step;
	int32_t err;
};

struct child_args {
	const struct sandbox_spawn_req *req;
	int src[4]; /* what becomes 0, 1, 2, HS_SOCKET_FD (-1: closed) */
	int errfd;
	pid_t parent;
};

static void __attribute__((noreturn)) child_fail(int errfd, enum step step, int err)
{
	struct child_report r = {.step = step, .err = err};
	ssize_t n;
	do
		n = write(errfd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

static void __attribute__((noreturn)) child_run(const struct child_args *a)
{
	const struct sandbox_spawn_req *req = a->req;
	int errfd = a->errfd;
	int park[4];

	/* Park every source (and the error pipe) above the targets first, so
	 * that moving one cannot clobber another. */
	int fd = fcntl(errfd, F_DUPFD_CLOEXEC, PARK_FD);
	if (fd < 0)
		child_fail(errfd, STEP_PARK, errno);
	errfd = fd;
	for (int i = 0; i < 4; i++) {
		park[i] = -1;
		if (a->src[i] < 0)
			continue;
		park[i] = fcntl(a->src[i], F_DUPFD_CLOEXEC, PARK_FD);
		if (park[i] < 0)
			child_fail(errfd, STEP_PARK, errno);
	}
	static const enum step steps[4] = {STEP_STDIN, STEP_STDOUT, STEP_STDERR, STEP_SOCKET};
	for (int i = 0; i < 4; i++) {
		int target = i < 3 ? i : HS_SOCKET_FD;
		if (park[i] < 0) {
			close(target);
			continue;
		}
		/* dup2 leaves the target without close-on-exec. */
		if (dup2(park[i], target) < 0)
			child_fail(errfd, steps[i], errno);
	}
	if (dup3(errfd, ERR_FD, O_CLOEXEC) < 0)
		child_fail(errfd, STEP_ERRFD, errno);
	errfd = ERR_FD;
	if (syscall(SYS_close_range, ERR_FD + 1, ~0u, 0) != 0)
		child_fail(errfd, STEP_CLOSE, errno);
	/* The program, opened before the uid drop: the exec then needs only the
	 * file's own execute permission, wherever it lies (a build tree under
	 * /root, mode 0700, included). Closed by the exec. */
	int exe = open(req->path, O_PATH | O_CLOEXEC);
	if (exe < 0)
		child_fail(errfd, STEP_EXEC, errno);
	/* The Landlock rules name their files by path: built while the
	 * process may still reach them all (entered after the uid drop). */
	int ruleset = -1;
	if (req->landlock != NULL) {
		ruleset = sandbox_landlock_ruleset(req->landlock);
		if (ruleset < 0)
			child_fail(errfd, STEP_LANDLOCK_RULES, errno);
	}

	/* Signals: default actions (a handler of the parent must not run
	 * here; exec keeps what is ignored), the terminal's three ignored. */
	/* The raw system call: glibc's sigaction refuses its own two real-time
	 * signals, whose disposition an ignoring parent would otherwise pass on
	 * across exec. The kernel's struct: handler, flags, restorer, mask. */
	struct {
		void (*handler)(int);
		unsigned long flags;
		void (*restorer)(void);
		uint64_t mask;
	} kdfl = {SIG_DFL, 0, NULL, 0};
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		syscall(SYS_rt_sigaction, sig, &kdfl, NULL, sizeof(kdfl.mask));
	}
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGINT, &ign, NULL) != 0 || sigaction(SIGQUIT, &ign, NULL) != 0 ||
	    sigaction(SIGTSTP, &ign, NULL) != 0)
		child_fail(errfd, STEP_SIGNALS, errno);

	/* Credentials, per thread with raw system calls: this is the only
	 * thread of the child, and libc's wrappers would try to reach the
	 * parent's other threads. */
	if (req->drop_uid) {
		uid_t uid = req->uid;
		gid_t gid = req->gid;
		if (req->uid_per_pid) { /* this process's own, for as long as it lives */
			pid_t self = (pid_t)syscall(SYS_getpid);
			uid += (uid_t)self;
			gid += (gid_t)self;
		}
		if (syscall(SYS_setgroups, 0, NULL) != 0)
			child_fail(errfd, STEP_SETGROUPS, errno);
		if (syscall(SYS_setresgid, gid, gid, gid) != 0)
			child_fail(errfd, STEP_SETRESGID, errno);
		if (syscall(SYS_setresuid, uid, uid, uid) != 0)
			child_fail(errfd, STEP_SETRESUID, errno);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		child_fail(errfd, STEP_AMBIENT, errno);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		child_fail(errfd, STEP_NNP, errno);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		child_fail(errfd, STEP_PDEATHSIG, errno);
	/* The parent may have died before PDEATHSIG was set. */
	if (getppid() != a->parent)
		child_fail(errfd, STEP_PARENT, ESRCH);

	sigset_t none;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		child_fail(errfd, STEP_SIGMASK, errno);
	if (req->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(req->cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			child_fail(errfd, STEP_AFFINITY, errno);
	}
	/* Its own Landlock domain (no_new_privs is set), from here through the
	 * exec to its exit. */
	if (ruleset >= 0) {
		if (sandbox_landlock_restrict(ruleset) != 0)
			child_fail(errfd, STEP_LANDLOCK, errno);
		close(ruleset);
	}
	if (sandbox_filter_install(req->stage1) != 0)
		child_fail(errfd, STEP_SECCOMP, errno);
	syscall(SYS_execveat, exe, "", req->argv, req->envp, AT_EMPTY_PATH);
	/* A script (#!) cannot run from a close-on-exec descriptor (its
	 * interpreter would open /dev/fd/N): by its path, then. */
	if (errno == ENOENT)
		execve(req->path, req->argv, req->envp);
	child_fail(errfd, STEP_EXEC, errno);
}

static const char *step_name(enum step s)
{
	switch (s) {
	case STEP_PARK:
		return "moving descriptors";
	case STEP_STDIN:
		return "setting up standard input";
	case STEP_STDOUT:
		return "setting up standard output";
	case STEP_STDERR:
		return "setting up standard error";
	case STEP_SOCKET:
		return "placing the setup socket";
	case STEP_ERRFD:
		return "placing the error pipe";
	case STEP_CLOSE:
		return "closing inherited descriptors";
	case STEP_SIGNALS:
		return "ignoring the terminal's signals";
	case STEP_SETGROUPS:
		return "setgroups(0)";
	case STEP_AMBIENT:
		return "clearing ambient capabilities";
	case STEP_NNP:
		return "prctl(PR_SET_NO_NEW_PRIVS)";
	case STEP_PDEATHSIG:
		return "prctl(PR_SET_PDEATHSIG)";
	case STEP_PARENT:
		return "checking the parent";
	case STEP_SIGMASK:
		return "unblocking signals";
	case STEP_AFFINITY:
		return "pinning to its CPU";
	case STEP_SECCOMP:
		return "installing the stage-1 seccomp filter";
	case STEP_LANDLOCK_RULES:
		return "building its Landlock ruleset";
	case STEP_LANDLOCK:
		return "entering its Landlock domain";
	case STEP_SETRESGID:
	case STEP_SETRESUID:
	case STEP_EXEC:
		break;
	}
	return "?";
}

static void report_child_failure(const struct sandbox_spawn_req *req, const struct child_report *r,
				 struct errbuf *e)
{
	const char *why = strerror(r->err);
	switch ((enum step)r->step) {
	case STEP_EXEC:
		err_set(e, "cannot execute %s: %s", req->path, why);
		return;
	case STEP_SETRESGID:
		err_set(e, "starting %s: setresgid(%u): %s", req->path, (unsigned)req->gid, why);
		return;
	case STEP_SETRESUID:
		err_set(e, "starting %s: setresuid(%u%s): %s", req->path, (unsigned)req->uid,
			req->uid_per_pid ? " + pid" : "", why);
		return;
	default:
		err_set(e, "starting %s: %s: %s", req->path, step_name((enum step)r->step), why);
		return;
	}
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* FD is -1 (none) or an open descriptor. */
static int check_fd(const char *what, int fd, struct errbuf *e)
{
	if (fd < -1 || (fd >= 0 && fcntl(fd, F_GETFD) < 0))
		return err_set(e, "%s: descriptor %d is not open", what, fd);
	return 0;
}

static int check_req(const struct sandbox_spawn_req *req, struct errbuf *e)
{
	if (req == NULL)
		return err_set(e, "sandbox: no request");
	if (req->path == NULL || req->path[0] == '\0')
		return err_set(e, "sandbox: no program to start");
	const char *p = req->path;
	if (req->argv == NULL || req->argv[0] == NULL)
		return err_set(e, "%s: empty argument list (argv[0] missing)", p);
	if (req->envp == NULL)
		return err_set(e, "%s: no environment (envp is NULL)", p);
	if (req->stage1 == NULL || req->stage1->insns == NULL || req->stage1->prog.len == 0)
		return err_set(e, "%s: no stage-1 seccomp filter", p);
	if (check_fd("standard input", req->stdin_fd, e) != 0 ||
	    check_fd("standard output", req->stdout_fd, e) != 0 ||
	    check_fd("standard error", req->stderr_fd, e) != 0 ||
	    check_fd("setup socket", req->setup_sock, e) != 0)
		return err_prefix(e, "%s", p);
	if (req->uid_per_pid && !req->drop_uid)
		return err_set(e, "%s: a uid per pid without a uid to drop to", p);
	if (req->uid_per_pid && (req->uid > UINT32_MAX - SANDBOX_PID_LIMIT - 1 ||
				 req->gid > UINT32_MAX - SANDBOX_PID_LIMIT - 1))
		return err_set(e, "%s: uid %u or gid %u plus a pid would overflow", p,
			       (unsigned)req->uid, (unsigned)req->gid);
	if (req->landlock != NULL &&
	    (req->landlock->abi <= 0 || req->landlock->nfiles > SANDBOX_LL_FILES_MAX))
		return err_set(e, "%s: the Landlock confinement is not prepared", p);
	if (req->drop_uid) {
		if (req->uid == 0 || req->uid == (uid_t)-1)
			return err_set(e, "%s: uid %ld is not an unprivileged uid", p,
				       req->uid == (uid_t)-1 ? -1L : (long)req->uid);
		if (req->gid == 0 || req->gid == (gid_t)-1)
			return err_set(e, "%s: gid %ld is not an unprivileged gid", p,
				       req->gid == (gid_t)-1 ? -1L : (long)req->gid);
	} else if (geteuid() == 0) {
		return err_set(e,
			       "%s: refusing to run a sandboxed VMM as root (vmmux runs as root: "
			       "give the VMM its own uid)",
			       p);
	}
	return 0;
}

pid_t sandbox_spawn(const struct sandbox_spawn_req *req, int *pidfd, struct errbuf *e)
{
	if (pidfd == NULL)
		return err_set(e, "sandbox: no place for the pidfd");
	*pidfd = -1;
	if (check_req(req, e) != 0)
		return -1;

	/* The program will share this process's uid: make this process
	 * non-dumpable, or the program could open /proc/PID/mem and
	 * /proc/PID/fd/N (guest memory) read-only, which stage 1 allows. */
	if (!req->drop_uid && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 &&
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return err_set(e, "%s: making vmmux non-dumpable: %s", req->path, strerror(errno));

	struct child_args a = {
	    .req = req, .src = {req->stdin_fd, req->stdout_fd, req->stderr_fd, req->setup_sock}};
	int devnull = -1;
	if (req->stdin_fd < 0 || req->stdout_fd < 0 || req->stderr_fd < 0) {
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull < 0)
			return err_set(e, "%s: /dev/null: %s", req->path, strerror(errno));
		for (int i = 0; i < 3; i++)
			if (a.src[i] < 0)
				a.src[i] = devnull;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		int err = errno;
		if (devnull >= 0)
			close(devnull);
		return err_set(e, "%s: pipe: %s", req->path, strerror(err));
	}
	a.errfd = pipefd[1];
	a.parent = getpid();

	/* No handler of the parent may run in the child: block everything
	 * across the fork; the child resets the handlers, then unblocks. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0)
		child_run(&a);
	int fork_err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(pipefd[1]);
	if (devnull >= 0)
		close(devnull);
	if (pid < 0) {
		close(pipefd[0]);
		return err_set(e, "%s: fork: %s", req->path, strerror(fork_err));
	}

	struct child_report r;
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = read(pipefd[0], (char *)&r + got, sizeof(r) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pipefd[0]);
	if (got != 0) {
		reap(pid);
		if (got != sizeof(r))
			return err_set(e, "starting %s: truncated report from the child",
				       req->path);
		report_child_failure(req, &r, e);
		return -1;
	}

	/* The exec succeeded (the pipe closed). Hold the child by a pidfd and
	 * make sure it is ours: waitid answers for one's own children only,
	 * running or exited, so a pid reused after someone else reaped ours
	 * is caught. */
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		int err = errno;
		kill(pid, SIGKILL);
		reap(pid);
		return err_set(e, "%s: pidfd_open(%d): %s", req->path, (int)pid, strerror(err));
	}
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
		int err = errno;
		close(fd);
		return err_set(e, "%s: child %d is gone before it could be watched: %s", req->path,
			       (int)pid, strerror(err));
	}
	*pidfd = fd;
	return pid;
}

#ifdef VMMUX_SANITIZED
/* NAME=INHERITED:OURS, or NAME=OURS when the caller's options are unset or
 * do not fit (later options win in the sanitizers' parsers). */
static char *env_opt(char *dst, size_t cap, const char *name, const char *ours)
{
	const char *inherited = getenv(name);
	int n = -1;
	if (inherited != NULL && inherited[0] != '\0')
		n = snprintf(dst, cap, "%s=%s:%s", name, inherited, ours);
	if (n < 0 || (size_t)n >= cap)
		snprintf(dst, cap, "%s=%s", name, ours);
	return dst;
}
#endif

char *const *sandbox_env(struct sandbox_env *env)
{
	memset(env, 0, sizeof(*env));
	size_t n = 0;
	snprintf(env->path, sizeof(env->path), "PATH=/usr/local/bin:/usr/bin:/bin");
	env->envp[n++] = env->path;
	if (log_timestamps) { /* the VMM's log lines on vmmux's clock */
		snprintf(env->log_origin, sizeof(env->log_origin), "%s=%llu", LOG_ORIGIN_ENV,
			 log_origin_ns());
		env->envp[n++] = env->log_origin;
	}
#ifdef VMMUX_SANITIZED
	/* No leak check (it needs /proc and ptrace-like stops at exit), and
	 * reports without symbols: symbolizing maps the binaries, which stage
	 * 2 forbids; the frames keep module+offset, for addr2line. */
	env->envp[n++] =
	    env_opt(env->asan, sizeof(env->asan), "ASAN_OPTIONS", "detect_leaks=0:symbolize=0");
	env->envp[n++] = env_opt(env->ubsan, sizeof(env->ubsan), "UBSAN_OPTIONS", "symbolize=0");
#endif
	env->envp[n] = NULL;
	return env->envp;
}
