/*
 * probe.c: a program for test_sandbox to start in the sandbox, dynamically
 * linked like a third-party parallel VMM. It reports what it is on its
 * standard output (a pipe to the test), then does what argv[1] says;
 * actions that the filters forbid print "reached ACTION" first, and
 * "survived ACTION" (exit 1) if the forbidden call returned.
 *
 *   report        only the report
 *   open-read     read-only opens (a file, a directory) under stage 1
 *   open-write    open("/dev/null", O_WRONLY) under stage 1
 *   open-creat    open(O_RDONLY | O_CREAT) under stage 1
 *   socket        socket(AF_UNIX) under stage 1
 *   ptrace        ptrace(PTRACE_TRACEME) under stage 1
 *   fork          fork() under stage 1
 *   ioctl         ioctl(0, FIONREAD) under stage 1
 *   x32           getpid through the x32 ABI
 *   int80         getpid through the i386 ABI (int 0x80)
 *   signal-parent tgkill(parent) with signal 0 (the parent's pid from
 *                 /proc/self/status: getppid is not allowed)
 *   peek-parent   open("/proc/PARENT/mem", O_RDONLY): exit 0 when refused
 *   abort         abort(): must die of SIGABRT, not SIGSYS
 *   sleep         print "sleeping", then sleep until killed
 *   stage2        build and install stage 2, then serve-like work: anonymous
 *                 memory, malloc/realloc/free, stdio, poll, futex, clocks,
 *                 a message on the setup socket and its end of file
 *                 (the test closes its end after the echo); exit 0
 *   stage2-nap    stage 2, print "napping", sleep 400 ms, print "awake"
 *   stage2-open   stage 2, then open("/etc/hostname", O_RDONLY)
 *   stage2-open-write stage 2, then open("/dev/null", O_WRONLY)
 *   stage2-socket stage 2, then socket(AF_UNIX)
 *   stage2-mmapfd stage 2, then mmap of a descriptor opened before
 *   stage2-exec   stage 2, then execve("/bin/true")
 *   stage2-wx     stage 2, then an executable anonymous mapping
 *   confined PID  (no report: started in a Landlock domain, whose rules
 *                 cover /proc in sanitized builds only) open /etc/passwd,
 *                 /etc/hostname and /proc/PID/mem read-only, and
 *                 /proc/self/status: "confined ok" (exit 0) when the first
 *                 three are refused with EACCES; what each gave, in any case
 *   stage2-asan   stage 2, then a heap overflow (sanitized builds)
 *   stage2-ubsan  stage 2, then a signed overflow (sanitized builds)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "transport/handshake.h"

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static int parent;

static void report(void)
{
	static const char *keys[] = {
	    "Uid:",    "Gid:",	      "Groups:",  "CapInh:",	      "CapPrm:", "CapEff:",
	    "CapAmb:", "NoNewPrivs:", "Seccomp:", "Seccomp_filters:", "SigBlk:", "SigIgn:"};
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL) {
		out("error /proc/self/status: %s\n", strerror(errno));
		exit(2);
	}
	char line[512];
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "PPid:", 5) == 0)
			parent = atoi(line + 5); /* getppid is not allowed */
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strncmp(line, keys[i], strlen(keys[i])) == 0)
				out("%s", line);
	}
	fclose(f);
	/* Open descriptors, without opening one for a directory listing. */
	for (int fd = 0; fd < 4096; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		char path[64], target[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		out("fd %d %s\n", fd, target);
	}
	out("isatty0 %d\n", isatty(0));
}

static void stage2(void)
{
	struct sandbox_filter f;
	struct errbuf e;
	if (sandbox_filter_stage2(&f, &e) != 0) {
		out("error %s\n", e.msg);
		exit(2);
	}
	if (sandbox_filter_install(&f) != 0) {
		out("error installing stage 2: %s\n", strerror(errno));
		exit(2);
	}
	sandbox_filter_free(&f);
	out("stage2 installed\n");
}

#define FORBIDDEN(name, call)                                                                      \
	do {                                                                                       \
		out("reached %s\n", name);                                                         \
		long r_ = (long)(call);                                                            \
		out("survived %s (%ld, %s)\n", name, r_, strerror(errno));                         \
		return 1;                                                                          \
	} while (0)

static int serve(void)
{
	/* Anonymous memory, large enough for the allocators' mmap paths. */
	void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return out("error mmap: %s\n", strerror(errno)), 1;
	memset(m, 1, 1 << 20);
	if (mprotect(m, 4096, PROT_READ) != 0 || madvise(m, 1 << 20, MADV_DONTNEED) != 0 ||
	    munmap(m, 1 << 20) != 0)
		return out("error mprotect/madvise/munmap: %s\n", strerror(errno)), 1;
	char *p = NULL;
	for (size_t n = 16; n <= (16u << 20); n *= 4) {
		char *q = realloc(p, n);
		if (q == NULL)
			return free(p), out("error realloc %zu\n", n), 1;
		p = q;
		memset(p, 2, n);
	}
	free(p);
	for (int i = 0; i < 1000; i++)
		free(malloc((size_t)(i * 37) % 5000 + 1));
	/* Futex words, as on the shared region: a wait that does not sleep
	 * (value changed) and a wake with nobody waiting. */
	uint32_t word = 1;
	if (syscall(SYS_futex, &word, FUTEX_WAIT, 0, NULL, NULL, 0) != -1 || errno != EAGAIN)
		return out("error futex wait: %s\n", strerror(errno)), 1;
	if (syscall(SYS_futex, &word, FUTEX_WAKE, 1, NULL, NULL, 0) != 0)
		return out("error futex wake: %s\n", strerror(errno)), 1;
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0 ||
	    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) != 0)
		return out("error clock_gettime: %s\n", strerror(errno)), 1;
	struct timespec nap = {0, 1000};
	if (nanosleep(&nap, NULL) != 0)
		return out("error nanosleep: %s\n", strerror(errno)), 1;
	sched_yield();
	struct pollfd pfd = {.fd = HS_SOCKET_FD, .events = POLLIN};
	if (poll(&pfd, 1, 5000) != 1)
		return out("error poll on the setup socket\n"), 1;
	char msg[32];
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recvmsg(HS_SOCKET_FD, &mh, 0);
	if (n <= 0)
		return out("error recvmsg: %s\n", strerror(errno)), 1;
	iov.iov_len = (size_t)n;
	if (sendmsg(HS_SOCKET_FD, &mh, 0) != n)
		return out("error sendmsg: %s\n", strerror(errno)), 1;
	/* The teardown: the peer closes, as the main VMM does. */
	if (poll(&pfd, 1, 5000) != 1 || recv(HS_SOCKET_FD, msg, 1, MSG_DONTWAIT) != 0)
		return out("error no end of file on the setup socket\n"), 1;
	fprintf(stderr, "%s", ""); /* stderr's first use after stage 2 */
	out("serve ok pid %d\n", (int)getpid());
	return 0;
}

int main(int argc, char **argv)
{
	const char *a = argc > 1 ? argv[1] : "report";
	if (strcmp(a, "confined") == 0) {
		char mem[64];
		snprintf(mem, sizeof(mem), "/proc/%s/mem", argc > 2 ? argv[2] : "1");
		const char *paths[] = {"/etc/passwd", "/etc/hostname", mem, "/proc/self/status"};
		bool held = true;
		for (int i = 0; i < 4; i++) {
			int fd = open(paths[i], O_RDONLY);
			int err = errno;
			out("confined %s: %s\n", paths[i], fd >= 0 ? "opened" : strerror(err));
			if (i < 3 && (fd >= 0 || err != EACCES))
				held = false;
			if (fd >= 0)
				close(fd);
		}
		out("confined %s\n", held ? "ok" : "NOT HELD");
		return held ? 0 : 1;
	}
	report();

	if (strcmp(a, "report") == 0)
		return 0;
	if (strcmp(a, "open-read") == 0) {
		int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
		int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int path = openat(AT_FDCWD, "/etc", O_PATH | O_CLOEXEC);
		out("open-read %s\n", fd >= 0 && dir >= 0 && path >= 0 ? "ok" : strerror(errno));
		return fd >= 0 && dir >= 0 && path >= 0 ? 0 : 1;
	}
	if (strcmp(a, "open-write") == 0)
		FORBIDDEN(a, open("/dev/null", O_WRONLY));
	if (strcmp(a, "open-creat") == 0)
		FORBIDDEN(a, open("/tmp/vmmux-sandbox-probe", O_RDONLY | O_CREAT, 0600));
	if (strcmp(a, "socket") == 0)
		FORBIDDEN(a, socket(AF_UNIX, SOCK_STREAM, 0));
	if (strcmp(a, "ptrace") == 0)
		FORBIDDEN(a, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	if (strcmp(a, "fork") == 0) {
		out("reached %s\n", a);
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		out("survived %s (%d)\n", a, (int)pid);
		return 1;
	}
	if (strcmp(a, "ioctl") == 0) {
		int n;
		FORBIDDEN(a, ioctl(0, FIONREAD, &n));
	}
	if (strcmp(a, "x32") == 0)
		FORBIDDEN(a, syscall(0x40000000 | SYS_getpid));
	if (strcmp(a, "int80") == 0) {
		long r = 20; /* i386 getpid */
		out("reached %s\n", a);
		__asm__ volatile("int $0x80" : "+a"(r) : : "memory");
		out("survived %s (%ld)\n", a, r);
		return 1;
	}
	if (strcmp(a, "signal-parent") == 0 && parent <= 1)
		return out("error no parent pid\n"), 2;
	if (strcmp(a, "signal-parent") == 0)
		FORBIDDEN(a, syscall(SYS_tgkill, parent, parent, 0));
	if (strcmp(a, "peek-parent") == 0) {
		/* Read-only opens pass stage 1: the parent's memory must
		 * still be out of reach (another uid, or not dumpable). */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", parent);
		int fd = open(path, O_RDONLY);
		out("peek %s %s\n", path, fd >= 0 ? "opened" : strerror(errno));
		return parent > 1 && fd < 0 && errno == EACCES ? 0 : 1;
	}
	if (strcmp(a, "abort") == 0) {
		out("reached %s\n", a);
		abort();
	}
	if (strcmp(a, "sleep") == 0) {
		out("sleeping\n");
		for (;;)
			poll(NULL, 0, -1);
	}

	if (strcmp(a, "stage2-mmapfd") == 0) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd < 0)
			return out("error /etc/hostname: %s\n", strerror(errno)), 1;
		stage2();
		FORBIDDEN(a, mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0));
	}
	if (strncmp(a, "stage2", 6) != 0) {
		out("error unknown action %s\n", a);
		return 2;
	}
	stage2();
	if (strcmp(a, "stage2") == 0)
		return serve();
	if (strcmp(a, "stage2-nap") == 0) {
		struct timespec nap = {0, 400 * 1000 * 1000};
		out("napping\n");
		if (clock_nanosleep(CLOCK_MONOTONIC, 0, &nap, NULL) != 0)
			return out("error clock_nanosleep\n"), 1;
		out("awake\n");
		return 0;
	}
	if (strcmp(a, "stage2-open") == 0)
		FORBIDDEN(a, open("/etc/hostname", O_RDONLY));
	if (strcmp(a, "stage2-open-write") == 0)
		FORBIDDEN(a, open("/dev/null", O_WRONLY));
	if (strcmp(a, "stage2-socket") == 0)
		FORBIDDEN(a, socket(AF_UNIX, SOCK_STREAM, 0));
	if (strcmp(a, "stage2-exec") == 0) {
		char *const args[] = {"/bin/true", NULL};
		FORBIDDEN(a, execve(args[0], args, args + 1));
	}
	if (strcmp(a, "stage2-wx") == 0)
		FORBIDDEN(
		    a, mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	if (strcmp(a, "stage2-asan") == 0) {
		char *volatile p = malloc(8);
		out("reached %s\n", a);
		p[8] = 1;
		out("survived %s\n", a);
		return 1;
	}
	if (strcmp(a, "stage2-ubsan") == 0) {
		volatile int big = 0x7fffffff;
		out("reached %s\n", a);
		int r = big + 1;
		out("survived %s %d\n", a, r);
		return 1;
	}
	out("error unknown action %s\n", a);
	return 2;
}
