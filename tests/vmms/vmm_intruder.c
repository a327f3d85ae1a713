/*
 * vmm_intruder: a parallel VMM that goes after other processes: another
 * VMM (of its own vmmux or of another instance), vmmux itself, and files of
 * the host (tests/integration/test_hostile_identity.py). It speaks the
 * protocol itself (rawvmm.c) and never makes itself non-dumpable, as a
 * program that bypasses the library may.
 *
 *   vmm_intruder
 *       the victim: maps every guest-memory piece it was granted, reads
 *       them, and serves (reads return 0)
 *   vmm_intruder WHEN ACTION [TARGET...]
 *       WHEN early: at its first instruction, in a constructor, before
 *                   main and anything of the protocol;
 *            late:  after its set-up (the go message), before serving
 *       ACTION, on each TARGET (a pid, or "parent": vmmux's pid, read from
 *       /proc/self/status):
 *         mem     open /proc/PID/mem, and read from a guest-memory mapping
 *                 (a /memfd:vmmux-ram line of /proc/PID/maps) or else from
 *                 the first readable mapping
 *         maps    open and read /proc/PID/maps
 *         vmread  process_vm_readv of one byte at the same place
 *         kill    kill(PID, SIGKILL)
 *         ptrace  ptrace(PTRACE_ATTACH, PID)
 *         open    (TARGETs are paths) open and read the file
 *
 * Each attempt is reported on stderr as one line
 *
 *     vmm-intruder: WHEN ACTION TARGET: RESULT
 *
 * RESULT being "ALLOWED (...)" when the attempt got anything, "refused
 * (ERRNO)" when it did not. A call that the seccomp filter forbids kills the
 * process (SIGSYS) after a "reached" line; if it returns, "survived" and its
 * result follow. After the attempts the program serves (a late one, once
 * set up; an early one, after its set-up).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "rawvmm.h"

#define PROG "vmm-intruder"

static const char *errno_name(int e)
{
	switch (e) {
	case EACCES:
		return "EACCES";
	case EPERM:
		return "EPERM";
	case ENOENT:
		return "ENOENT";
	case ESRCH:
		return "ESRCH";
	case EINVAL:
		return "EINVAL";
	case EIO:
		return "EIO";
	default:
		return "other errno";
	}
}

static void say(const char *when, const char *action, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(const char *when, const char *action, const char *target, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s %s %s: %s\n", PROG, when, action, target, msg);
}

static void refused(const char *when, const char *action, const char *target, const char *step,
		    int err)
{
	say(when, action, target, "refused (%s%s%s)", step, step[0] ? ": " : "", errno_name(err));
}

/* vmmux's pid from /proc/self/status (getppid is not in the filter); -1
 * with errno when the file is out of reach. */
static long parent_pid(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	char line[256];
	long ppid = -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "PPid: %ld", &ppid) == 1)
			break;
	fclose(f);
	errno = ENOENT;
	return ppid;
}

/* Where to read in process PID: a guest-memory mapping, else the first
 * readable one, from its maps (0 when they cannot be read). */
static unsigned long long where(long pid, bool *guest)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
	*guest = false;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	unsigned long long first = 0, ram = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long lo, hi;
		char perms[8];
		if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r')
			continue;
		if (first == 0)
			first = lo;
		if (ram == 0 && strstr(line, "/memfd:vmmux-ram") != NULL)
			ram = lo;
	}
	fclose(f);
	*guest = ram != 0;
	return ram ? ram : first;
}

static void attempt(const char *when, const char *action, const char *target)
{
	long pid = -1;
	if (strcmp(action, "open") != 0) {
		if (strcmp(target, "parent") == 0) {
			pid = parent_pid();
			if (pid <= 0) {
				refused(when, action, target, "its pid", errno);
				return;
			}
		} else {
			pid = strtol(target, NULL, 10);
		}
	}
	char path[64];
	if (strcmp(action, "open") == 0) {
		int fd = open(target, O_RDONLY);
		if (fd < 0)
			return refused(when, action, target, "", errno);
		char buf[256];
		ssize_t n = read(fd, buf, sizeof(buf));
		close(fd);
		say(when, action, target, "ALLOWED (read %zd bytes)", n);
	} else if (strcmp(action, "maps") == 0) {
		snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return refused(when, action, target, "", errno);
		char buf[256];
		ssize_t n = read(fd, buf, sizeof(buf));
		int err = errno;
		close(fd);
		if (n <= 0)
			return refused(when, action, target, "read", n < 0 ? err : EIO);
		say(when, action, target, "ALLOWED (read %zd bytes)", n);
	} else if (strcmp(action, "mem") == 0) {
		snprintf(path, sizeof(path), "/proc/%ld/mem", pid);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return refused(when, action, target, "open", errno);
		bool guest;
		unsigned long long at = where(pid, &guest);
		char buf[64];
		ssize_t n = at ? pread(fd, buf, sizeof(buf), (off_t)at) : -1;
		int err = errno;
		close(fd);
		if (n <= 0)
			return say(when, action, target, "ALLOWED (opened; read at 0x%llx: %s)", at,
				   at ? errno_name(err) : "no address");
		say(when, action, target, "ALLOWED (read %zd bytes of %s at 0x%llx)", n,
		    guest ? "guest memory" : "its memory", at);
	} else if (strcmp(action, "vmread") == 0) {
		char b;
		struct iovec local = {.iov_base = &b, .iov_len = 1};
		struct iovec remote = {.iov_base = (void *)0x400000, .iov_len = 1};
		say(when, action, target, "reached");
		long r = syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0);
		say(when, action, target, "survived: %s", r >= 0 ? "ALLOWED" : errno_name(errno));
	} else if (strcmp(action, "kill") == 0) {
		say(when, action, target, "reached");
		long r = syscall(SYS_kill, pid, SIGKILL);
		say(when, action, target, "survived: %s", r == 0 ? "ALLOWED" : errno_name(errno));
	} else if (strcmp(action, "ptrace") == 0) {
		say(when, action, target, "reached");
		long r = syscall(SYS_ptrace, PTRACE_ATTACH, pid, NULL, NULL);
		say(when, action, target, "survived: %s", r == 0 ? "ALLOWED" : errno_name(errno));
	} else {
		say(when, action, target, "unknown action");
		exit(2);
	}
}

static void attempts(int argc, char **argv, const char *when)
{
	if (argc < 3 || strcmp(argv[1], when) != 0)
		return;
	if (argc == 3 && strcmp(argv[2], "open") == 0) {
		attempt(when, "open", "/etc/passwd");
		return;
	}
	for (int i = 3; i < argc; i++)
		attempt(when, argv[2], argv[i]);
}

/* At the first instruction of the program's own code: before main, before
 * any message of the protocol. */
static void __attribute__((constructor)) early(int argc, char **argv, char **envp)
{
	(void)envp;
	attempts(argc, argv, "early");
}

/* The victim: every granted piece mapped and read (its guest memory is in
 * its address space, as a serving VMM's is). */
static void map_pieces(struct raw_vmm *R)
{
	for (uint32_t i = 0; i < R->hello.npieces; i++) {
		int fd = R->fds[3 + i];
		volatile uint8_t *p =
		    mmap(NULL, R->hello.pieces[i].size, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "%s: mapping piece %u: %s\n", PROG, i, strerror(errno));
			exit(1);
		}
		(void)p[0];
	}
}

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	(void)R;
	(void)arg;
	raw_answer(s, ev, seq, 0);
}

int main(int argc, char **argv)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	map_pieces(&R);
	raw_ready(&R, HS_VERSION_MAX, 0, "intruder", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	attempts(argc, argv, "late");
	raw_serve(&R, handle, NULL);
	return 0;
}
