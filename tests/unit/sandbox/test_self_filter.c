/*
 * test_self_filter.c: the seccomp filters of vmmux's own thread roles
 * (src/sandbox/self_filter.c), installed for real: each check forks a
 * child, which installs one role's filter (with the SIGSYS handler vmmux
 * uses) and then makes system calls. A call the role needs must work; a
 * forbidden one must end the child with SELF_FILTER_EXIT and the handler's
 * line naming the role and the call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <seccomp.h>

#include "sandbox/sandbox.h"
#include "sandbox/self_filter.h"

/* ---- running a child under a role's filter ---------------------------- */

struct outcome {
	int code;   /* CLD_EXITED or CLD_KILLED */
	int status; /* exit status or signal */
	char err[1024];
};

typedef int (*body_fn)(void *arg);

/* The test's own pid, for the calls that aim at another process. */
static pid_t parent_pid;

/* The outcome of child PID, its stderr read from ERR (closed) until it
 * ends. */
static struct outcome collect(pid_t pid, int err)
{
	struct outcome o;
	memset(&o, 0, sizeof(o));
	size_t len = 0;
	for (;;) {
		ssize_t n = read(err, o.err + len, sizeof(o.err) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(o.err) - 1)
			break;
	}
	close(err);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	o.code = WIFEXITED(st) ? CLD_EXITED : CLD_KILLED;
	o.status = WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st);
	return o;
}

/* Fork; the child installs ROLE's filter and runs BODY, exiting with its
 * result (0: every needed call worked). Its stderr is captured. */
static struct outcome in_role(enum self_role role, body_fn body, void *arg)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	parent_pid = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		close(p[1]);
		struct errbuf e;
		if (self_filter_install_role(role, true, &e) != 0) {
			dprintf(STDERR_FILENO, "%s\n", e.msg);
			_exit(90);
		}
		_exit(body(arg));
	}
	close(p[1]);
	return collect(pid, p[0]);
}

/* What a forbidden call must do: the handler's line, then the status. */
static void assert_refused(const struct outcome *o, enum self_role role, const char *call)
{
	char want[128];
	snprintf(want, sizeof(want), "the %s thread made a forbidden system call: %s (",
		 self_filter_role_name(role), call);
	if (o->code != CLD_EXITED || o->status != SELF_FILTER_EXIT || strstr(o->err, want) == NULL)
		fail_msg("role %s, %s: code %d status %d, stderr: %s", self_filter_role_name(role),
			 call, o->code, o->status, o->err);
}

static void assert_served(const struct outcome *o, enum self_role role, const char *what)
{
	if (o->code != CLD_EXITED || o->status != 0)
		fail_msg("role %s, %s: code %d status %d, stderr: %s", self_filter_role_name(role),
			 what, o->code, o->status, o->err);
}

/* ---- forbidden calls --------------------------------------------------- */

static int call_process_vm_readv(void *arg)
{
	(void)arg;
	char buf[8];
	struct iovec l = {buf, sizeof(buf)}, r = {buf, sizeof(buf)};
	syscall(SYS_process_vm_readv, parent_pid, &l, 1, &r, 1, 0);
	return 0; /* not reached */
}

static int call_bpf(void *arg)
{
	(void)arg;
	syscall(SYS_bpf, 0, NULL, 0);
	return 0;
}

static int call_socket(void *arg)
{
	(void)arg;
	syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	return 0;
}

static int call_open_write(void *arg)
{
	(void)arg;
	syscall(SYS_openat, AT_FDCWD, "/tmp", O_TMPFILE | O_RDWR, 0600);
	return 0;
}

static int call_execve(void *arg)
{
	(void)arg;
	char *argv[] = {"/bin/true", NULL};
	syscall(SYS_execve, "/bin/true", argv, NULL);
	return 0;
}

static int call_tgkill_other(void *arg)
{
	(void)arg;
	/* signal 0 to the parent: a check, still refused */
	syscall(SYS_tgkill, parent_pid, parent_pid, 0);
	return 0;
}

static __attribute__((unused)) int call_mmap_exec(void *arg)
{
	(void)arg;
	syscall(SYS_mmap, NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 0;
}

static int call_clone3(void *arg)
{
	(void)arg;
	syscall(SYS_clone3, NULL, 0);
	return 0;
}

/* A process (clone without CLONE_THREAD, as fork() makes it). */
static __attribute__((unused)) int call_fork(void *arg)
{
	(void)arg;
	long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(0);
	return 0;
}

static int call_futex_requeue(void *arg)
{
	(void)arg;
	static uint32_t w1, w2;
	syscall(SYS_futex, &w1, FUTEX_CMP_REQUEUE, 1, 1, &w2, 0);
	return 0;
}

static int call_unshare(void *arg)
{
	(void)arg;
	syscall(SYS_unshare, 0);
	return 0;
}

struct forbidden {
	const char *name;
	body_fn fn;
};

/* Refused in every role, in every build: no thread of vmmux but the exec
 * thread (which has no role filter) executes a program or makes a
 * namespace, and none maps executable memory. */
static const struct forbidden everywhere[] = {
    {"process_vm_readv", call_process_vm_readv},
    {"bpf", call_bpf},
    {"futex", call_futex_requeue},
    {"execve", call_execve},
    {"unshare", call_unshare},
#ifndef VMMUX_SANITIZED
    {"mmap", call_mmap_exec}, /* sanitizer runtimes map as they please */
    {"clone", call_fork},     /* LeakSanitizer's tracer is a clone of the supervisor */
#endif
};

/* Refused in every role but the supervisor and the worker (which open the
 * run's files and devices, and signal the VMMs). */
static const struct forbidden narrow[] = {
    {"socket", call_socket},
    {"openat", call_open_write},
    {"tgkill", call_tgkill_other},
};

static bool manages(enum self_role r)
{
	return r == SELF_SUPERVISOR || r == SELF_WORKER;
}

static void test_forbidden_refused(void **state)
{
	(void)state;
	for (int r = 0; r < SELF_NROLES; r++) {
		for (size_t i = 0; i < sizeof(everywhere) / sizeof(everywhere[0]); i++) {
			struct outcome o = in_role((enum self_role)r, everywhere[i].fn, NULL);
			assert_refused(&o, (enum self_role)r, everywhere[i].name);
		}
		if (manages((enum self_role)r))
			continue;
		for (size_t i = 0; i < sizeof(narrow) / sizeof(narrow[0]); i++) {
			struct outcome o = in_role((enum self_role)r, narrow[i].fn, NULL);
			assert_refused(&o, (enum self_role)r, narrow[i].name);
		}
	}
	/* Threads are created by the supervisor and the worker only. */
	struct outcome o = in_role(SELF_VCPU, call_clone3, NULL);
	assert_refused(&o, SELF_VCPU, "clone3");
	o = in_role(SELF_CONTROL, call_clone3, NULL);
	assert_refused(&o, SELF_CONTROL, "clone3");
}

/* ---- needed calls ------------------------------------------------------ */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* What every thread does: descriptors (a pipe made before the filter),
 * polls, locks and timed waits, memory, time, signals to its own threads,
 * descriptor flags, the log. */
static int serve_calls(void *arg)
{
	int *p = arg;
	char c = 'x';
	if (write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1)
		return 1;
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	if (poll(&pf, 1, 0) != 0)
		return 2;
	pthread_mutex_lock(&lock);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	int rc = pthread_cond_timedwait(&cond, &lock, &ts);
	pthread_mutex_unlock(&lock);
	if (rc != ETIMEDOUT)
		return 3;
	void *big = malloc(8u << 20); /* mmap */
	char *small = malloc(100);
	if (big == NULL || small == NULL)
		return 4;
	memset(big, 1, 8u << 20);
	big = realloc(big, 16u << 20); /* mremap */
	if (big == NULL)
		return 5;
	free(big);
	free(small);
	struct timespec d = {0, 1000};
	nanosleep(&d, NULL);
	if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0) != 0)
		return 6;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0)
		return 7;
	fprintf(stderr, "a log line\n");
	return 0;
}

static void test_needed_calls_work(void **state)
{
	(void)state;
	for (int r = 0; r < SELF_NROLES; r++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		struct outcome o = in_role((enum self_role)r, serve_calls, p);
		assert_served(&o, (enum self_role)r, "descriptors, locks, memory, time");
		assert_non_null(strstr(o.err, "a log line"));
		close(p[0]);
		close(p[1]);
	}
}

/* A vCPU's KVM ioctls (on a descriptor opened before the filter). */
static int kvm_calls(void *arg)
{
	int fd = *(int *)arg;
	return ioctl(fd, 0xAE00 /* KVM_GET_API_VERSION */, 0) == 12 ? 0 : 1;
}

/* Any other ioctl is refused outside the forking roles. */
static int ioctl_other(void *arg)
{
	int fd = *(int *)arg;
	ioctl(fd, FIONREAD, &(int){0});
	return 0;
}

static void test_vcpu_kvm(void **state)
{
	(void)state;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		skip();
		return;
	}
	struct outcome o = in_role(SELF_VCPU, kvm_calls, &fd);
	assert_served(&o, SELF_VCPU, "KVM_GET_API_VERSION");
	o = in_role(SELF_DISPATCHER, kvm_calls, &fd);
	assert_served(&o, SELF_DISPATCHER, "KVM_GET_API_VERSION");
	o = in_role(SELF_VCPU, ioctl_other, &fd);
	assert_refused(&o, SELF_VCPU, "ioctl");
	o = in_role(SELF_CONTROL, kvm_calls, &fd);
	assert_refused(&o, SELF_CONTROL, "ioctl");
	close(fd);
}

/* The control thread: a client's connection, who it is, its request. */
static int control_calls(void *arg)
{
	int lfd = *(int *)arg;
	int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return 1;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0)
		return 2;
	char buf[16];
	if (recv(c, buf, sizeof(buf), 0) != 4 || send(c, "pong", 4, MSG_NOSIGNAL) != 4)
		return 3;
	close(c);
	return 0;
}

static void test_control_socket(void **state)
{
	(void)state;
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/test_self_filter.%d", (int)getpid());
	unlink(a.sun_path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(c, "ping", 4, 0), 4);
	struct outcome o = in_role(SELF_CONTROL, control_calls, &lfd);
	assert_served(&o, SELF_CONTROL, "accept4, SO_PEERCRED, recv, send");
	char buf[8];
	assert_int_equal(recv(c, buf, sizeof(buf), 0), 4);
	close(c);
	close(lfd);
	unlink(a.sun_path);
}

/* The roles that create threads (supervisor, worker): a set-up worker
 * thread (clone3 fails with ENOSYS, glibc falls back to clone with
 * CLONE_THREAD), which installs its own filter under the creator's; but no
 * process: sandbox_spawn's fork is refused (the exec thread starts them). */
static struct sandbox_filter stage1;

static void *setup_thread(void *arg)
{
	(void)arg;
	struct errbuf e;
	if (self_filter_install_role(SELF_SETUP, false, &e) != 0)
		return (void *)1;
	/* the set-up worker's own calls */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) /* forbidden to it */
		return (void *)2;
	return NULL;
}

static int fork_calls(void *arg)
{
	(void)arg;
	pthread_t t;
	if (pthread_create(&t, NULL, setup_thread, NULL) != 0)
		return 10;
	void *ret = (void *)3;
	pthread_join(t, &ret);
	return 0; /* the thread's socketpair ends the process first */
}

static __attribute__((unused)) int spawn_calls(void *arg)
{
	(void)arg;
	char *argv[] = {"true", NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct sandbox_spawn_req req = {
	    .path = "/bin/true",
	    .argv = argv,
	    .envp = envp,
	    .stdin_fd = -1,
	    .stdout_fd = -1,
	    .stderr_fd = STDERR_FILENO,
	    .setup_sock = -1,
	    .drop_uid = geteuid() == 0,
	    .uid = 61990,
	    .gid = 61990,
	    .cpu = -1,
	    .stage1 = &stage1,
	};
	struct errbuf e;
	int pidfd;
	pid_t pid = sandbox_spawn(&req, &pidfd, &e);
	if (pid < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return 20;
	}
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0)
		return 21;
	close(pidfd);
	if (si.si_code != CLD_EXITED || si.si_status != 0) {
		fprintf(stderr, "the VMM program: code %d status %d\n", si.si_code, si.si_status);
		return 22;
	}
	return 0;
}

static void test_thread_creating_roles(void **state)
{
	(void)state;
	struct errbuf e;
	if (sandbox_filter_stage1(&stage1, &e) != 0)
		fail_msg("%s", e.msg);
	for (enum self_role r = SELF_SUPERVISOR; r <= SELF_WORKER;
	     r += SELF_WORKER - SELF_SUPERVISOR) {
		struct outcome o = in_role(r, fork_calls, NULL);
		assert_refused(&o, SELF_SETUP, "socketpair");
#ifndef VMMUX_SANITIZED /* (LeakSanitizer's tracer is a clone of the supervisor) */
		/* trapped with every signal blocked (sandbox_spawn blocks them
		 * across its fork): the kernel kills the process with SIGSYS */
		o = in_role(r, spawn_calls, NULL);
		if (o.code != CLD_KILLED || o.status != SIGSYS)
			assert_refused(&o, r, "clone");
#endif
	}
	sandbox_filter_free(&stage1);
}

/* ---- the tables -------------------------------------------------------- */

static bool has(const int *nrs, size_t n, int nr)
{
	for (size_t i = 0; i < n; i++)
		if (nrs[i] == nr)
			return true;
	return false;
}

/* No role admits a call that starts a program, a process without
 * CLONE_THREAD (a conditional row: the call is listed), an identity or a
 * namespace. The counts per role (docs/security.md). */
static void test_tables(void **state)
{
	(void)state;
	static const int never[] = {SCMP_SYS(execve),
				    SCMP_SYS(execveat),
				    SCMP_SYS(fork),
				    SCMP_SYS(vfork),
				    SCMP_SYS(unshare),
				    SCMP_SYS(setns),
				    SCMP_SYS(setresuid),
				    SCMP_SYS(setuid),
				    SCMP_SYS(landlock_create_ruleset),
				    SCMP_SYS(landlock_restrict_self)};
	size_t counts[SELF_NROLES];
	for (int r = 0; r < SELF_NROLES; r++) {
		int nrs[512];
		size_t n = self_filter_role_calls((enum self_role)r, nrs, 512);
		assert_true(n > 0 && n <= 512);
		counts[r] = n;
		for (size_t i = 1; i < n; i++)
			assert_true(nrs[i - 1] < nrs[i]);
		for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
			if (has(nrs, n, never[i])) {
				char *name =
				    seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, never[i]);
				fail_msg("role %s admits %s",
					 self_filter_role_name((enum self_role)r), name);
			}
		printf("seccomp: role %-12s %3zu system calls\n",
		       self_filter_role_name((enum self_role)r), n);
	}
	assert_true(counts[SELF_VCPU] < counts[SELF_SUPERVISOR]);
	struct errbuf e;
	if (self_filter_check(&e) != 0)
		fail_msg("%s", e.msg);
	assert_null(self_filter_role_name(SELF_NROLES));
}

/* ---- the base layer ------------------------------------------------------ */

/* Fork; the child (in a session of its own: no terminal to hang up) starts
 * a thread, then self_filter_init installs the base layer, and BODY runs
 * under it, its result the child's status. Its stderr is captured. */
static void *idle_thread(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

static pid_t idle_tid;

static void *tell_tid(void *arg)
{
	__atomic_store_n(&idle_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	return idle_thread(arg);
}

static struct outcome in_base(body_fn body, void *arg)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	parent_pid = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		close(p[1]);
		setsid();
		pthread_t t;
		if (pthread_create(&t, NULL, tell_tid, NULL) != 0)
			_exit(91);
		while (__atomic_load_n(&idle_tid, __ATOMIC_SEQ_CST) == 0)
			sched_yield();
		struct errbuf e;
		if (self_filter_init(true, &e) != 0) {
			dprintf(STDERR_FILENO, "%s\n", e.msg);
			_exit(90);
		}
		_exit(body(arg));
	}
	close(p[1]);
	return collect(pid, p[0]);
}

/* The Seccomp_filters line of /proc/self/task/TID/status (TID 0: the
 * process's). */
static int filters_of(pid_t tid)
{
	char path[64], line[256];
	if (tid == 0)
		snprintf(path, sizeof(path), "/proc/self/status");
	else
		snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	int n = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Seccomp_filters: %d", &n) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return n;
}

static int call_nr(void *arg)
{
	int nr = *(int *)arg;
	/* arguments that make each call fail at once should it ever pass */
	syscall(nr, -1L, -1L, -1L, -1L, -1L, -1L);
	return 0; /* not reached */
}

/* Every call of the list ends the process through the handler. */
static void test_base_refuses(void **state)
{
	(void)state;
	int nrs[128];
	size_t n = self_filter_base_calls(nrs, 128);
	assert_true(n >= 40 && n <= 128);
#if defined(__SANITIZE_THREAD__)
	/* Under ThreadSanitizer each child (a fork, every filter built) costs
	 * about a second: a sample of the list here, the whole list in the
	 * normal and ASan trees. */
	size_t step = n / 4 + 1;
#else
	size_t step = 1;
#endif
	for (size_t i = 0; i < n; i += step) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nrs[i]);
		assert_non_null(name);
		struct outcome o = in_base(call_nr, &nrs[i]);
		char want[128];
		snprintf(want, sizeof(want),
			 "the unfiltered thread made a forbidden system call: %s (%d)", name,
			 nrs[i]);
		if (o.code != CLD_EXITED || o.status != SELF_FILTER_EXIT ||
		    strstr(o.err, want) == NULL)
			fail_msg("base layer, %s: code %d status %d, stderr: %s", name, o.code,
				 o.status, o.err);
		free(name);
	}
	printf("seccomp: base layer refuses %zu system calls\n", n);
}

/* The layer is on every thread (TSYNC), carries its mark, goes on once
 * (a second self_filter_base finds it), and lets everything else pass. */
static int base_once(void *arg)
{
	(void)arg;
	if (filters_of(0) != 1 || filters_of(idle_tid) != 1)
		return 10 + filters_of(0);
	if (self_filter_base_found() != SELF_BASE_VERSION)
		return 20;
	struct errbuf e;
	if (self_filter_base(&e) != 0 || filters_of(0) != 1)
		return 30;
	/* what the role filters decide on: untouched */
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || close(fd) != 0)
		return 40;
	if (prctl(PR_SET_NAME, "base", 0, 0, 0) != 0)
		return 41;
	errno = 0;
	if (prctl(0x7fffffff, 0, 0, 0, 0) != -1 || errno != EINVAL)
		return 42;
	pid_t c = fork();
	if (c == 0)
		_exit(self_filter_base_found() == SELF_BASE_VERSION && filters_of(0) == 1 ? 0 : 1);
	int st;
	if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 43;
	return 0;
}

static void test_base_once_everywhere(void **state)
{
	(void)state;
	assert_int_equal(self_filter_base_found(), 0);
	struct outcome o = in_base(base_once, NULL);
	if (o.code != CLD_EXITED || o.status != 0)
		fail_msg("base layer: code %d status %d, stderr: %s", o.code, o.status, o.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),
	    cmocka_unit_test(test_forbidden_refused),
	    cmocka_unit_test(test_needed_calls_work),
	    cmocka_unit_test(test_vcpu_kvm),
	    cmocka_unit_test(test_control_socket),
	    cmocka_unit_test(test_thread_creating_roles),
	    cmocka_unit_test(test_base_refuses),
	    cmocka_unit_test(test_base_once_everywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
