/*
 * vmm_bypass: a parallel VMM that bypasses the VMM library and tries to
 * reach beyond what it was given. Between the hello and its ready it probes,
 * and reports each finding on stderr as one line
 *
 *     vmm-bypass: PROBE: RESULT
 *
 * RESULT being "refused (ERRNO)" or "SIGBUS" when the sandbox held, and
 * "ALLOWED" (or "no SIGBUS") when it did not:
 *
 * (<vmmux> is vmmux's pid from /proc/self/status; where /proc is out of
 * reach (Landlock), "parent pid: unknown (ERRNO)" is reported first and pid 1
 * is probed instead, a process just as far out of reach)
 *
 *   open parent mem             open("/proc/<vmmux>/mem", O_RDONLY)
 *   open parent maps            open("/proc/<vmmux>/maps", O_RDONLY)
 *   open parent fd              open("/proc/<vmmux>/fd", O_RDONLY | O_DIRECTORY)
 *   open /dev/kvm               open("/dev/kvm", O_RDONLY) (a write open
 *                               would be a forbidden system call: SIGSYS)
 *   window read                 a byte inside its first granted window piece
 *                               ("ok")
 *   window touch past its end   a byte just past the piece, through a
 *                               mapping of the piece's memfd one page longer
 *   window grow by write        one byte written at the end of the memfd
 *                               (after reading it to the end: guest RAM is
 *                               not changed)
 *
 * Then it serves: reads are answered with argument read (default 0x5a). The
 * first instance (the transport region carries no mark yet) marks the region
 * and, on its first event, touches the page past its window without a
 * handler, and dies of SIGBUS; a restarted instance finds the mark and
 * serves normally. Needs a memory grant (memory=A+SIZE).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rawvmm.h"

#define PROG "vmm-bypass"
#define PAGE 4096u

static sigjmp_buf bus_jump;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jump, 1);
}

static const char *errno_name(int e)
{
	switch (e) {
	case EACCES:
		return "EACCES";
	case EPERM:
		return "EPERM";
	case ENOENT:
		return "ENOENT";
	case EINVAL:
		return "EINVAL";
	case ENXIO:
		return "ENXIO";
	default:
		return "other errno";
	}
}

static void report(const char *probe, const char *result, int err)
{
	if (err)
		fprintf(stderr, "%s: %s: %s (%s)\n", PROG, probe, result, errno_name(err));
	else
		fprintf(stderr, "%s: %s: %s\n", PROG, probe, result);
}

static void probe_open(const char *probe, const char *path, int flags)
{
	int fd = open(path, flags);
	if (fd >= 0) {
		report(probe, "ALLOWED", 0);
		close(fd);
	} else {
		report(probe, "refused", errno);
	}
}

/* The parent's pid, from /proc/self/status (getppid is not in the filter). */
static long parent_pid(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long ppid = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "PPid: %ld", &ppid) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return ppid;
}

static void probe_window(int fd, uint64_t gpa, uint64_t size)
{
	char what[96];
	volatile uint8_t *p = mmap(NULL, size + PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(what, sizeof(what), "map window 0x%llx+0x%llx", (unsigned long long)gpa,
			 (unsigned long long)size);
		report(what, "refused", errno);
		return;
	}
	uint8_t inside = p[size - 1];
	(void)inside;
	report("window read", "ok", 0);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jump, 1) == 0) {
		uint8_t past = p[size];
		(void)past;
		report("window touch past its end", "no SIGBUS", 0);
	} else {
		report("window touch past its end", "SIGBUS", 0);
	}
	sa.sa_handler = SIG_DFL;
	sigaction(SIGBUS, &sa, NULL);
	munmap((void *)p, size + PAGE);

	/* Read to the end of the memfd (its position then is its size), then
	 * try to write one byte more: growing a sealed memfd. */
	static uint8_t buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0) {
		report("window grow by write", "read failed", errno);
		return;
	}
	if (write(fd, "", 1) == 1)
		report("window grow by write", "ALLOWED", 0);
	else
		report("window grow by write", "refused", errno);
}

struct serve {
	bool first; /* this instance dies on its first event */
	uint64_t read;
	int fd;
	uint64_t size;
};

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	struct serve *S = arg;
	(void)R;
	if (S->first) {
		fprintf(stderr, "%s: touching the page past the window, without a handler\n", PROG);
		volatile uint8_t *p = mmap(NULL, S->size + PAGE, PROT_READ, MAP_SHARED, S->fd, 0);
		if (p != MAP_FAILED) {
			uint8_t past = p[S->size]; /* SIGBUS: the process dies here */
			(void)past;
		}
		fprintf(stderr, "%s: ALLOWED: the page past the window was readable\n", PROG);
		exit(3);
	}
	raw_answer(s, ev, seq, S->read);
}

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	if (R.hello.npieces == 0) {
		fprintf(stderr, "%s: no guest memory granted (give it memory=A+SIZE)\n", PROG);
		return 1;
	}
	char path[64];
	long ppid = parent_pid();
	if (ppid <= 0) {
		report("parent pid", "unknown", errno);
		ppid = 1;
	}
	snprintf(path, sizeof(path), "/proc/%ld/mem", ppid);
	probe_open("open parent mem", path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%ld/maps", ppid);
	probe_open("open parent maps", path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%ld/fd", ppid);
	probe_open("open parent fd", path, O_RDONLY | O_DIRECTORY);
	probe_open("open /dev/kvm", "/dev/kvm", O_RDONLY);
	int piece_fd = R.fds[3]; /* after the region, doorbell and async descriptors */
	probe_window(piece_fd, R.hello.pieces[0].gpa, R.hello.pieces[0].size);

	raw_ready(&R, HS_VERSION_MAX, 0, "bypass", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	struct serve S = {
	    .first = !raw_marked(&R),
	    .read = raw_arg_u64(&R, "read", 0x5a),
	    .fd = piece_fd,
	    .size = R.hello.pieces[0].size,
	};
	if (S.first)
		raw_mark(&R);
	raw_serve(&R, handle, &S);
	return 0;
}
