/*
 * filter.c: the two seccomp stages of a parallel VMM, built with libseccomp
 * and exported as BPF so that they can be installed without allocating
 * (after fork, or by the VMM library).
 *
 * Every system call a stage admits is listed in one table below, with the
 * stages that admit it and its argument conditions; each group says why it
 * is there. The lists come from tracing (strace -f) what a dynamically
 * linked program and the same program built with AddressSanitizer and
 * UBSan actually call from execve to exit, including the build and
 * installation of stage 2 by libseccomp. Anything else kills the process
 * (SECCOMP_RET_KILL_PROCESS), and so does any system call made through a
 * foreign ABI: the i386 one (int 0x80) and x32 (the native ABI's numbers
 * with bit 30 set).
 */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "transport/handshake.h"

#define S1   1u /* stage 1: before exec, through set-up */
#define S2   2u /* stage 2: serving */
#define BOTH (S1 | S2)
/* Stages of sanitized builds only: what the sanitizer runtimes need to
 * start (stage 1) and to write an error report (stage 2); see the rules. */
#ifdef VMMUX_SANITIZED
#define S2_SAN S2
#define S1_SAN S1
#else
#define S2_SAN 0u
#define S1_SAN 0u
#endif

/*
 * The flags that make an open write, create or truncate. For O_TMPFILE, its
 * own bit only (the kernel's __O_TMPFILE; glibc's macros include
 * O_DIRECTORY, which a read-only open may use).
 */
#define O_TMPFILE_BIT	 020000000
#define OPEN_WRITE_FLAGS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE_BIT)

/* The futex command without its modifier bits. */
#define FUTEX_OP_BITS (~(unsigned)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME))

/* clang-format off */

/*
 * Argument conditions. The kernel reads an int argument from the low 32
 * bits of its register: EQ32 and MASKED look at those only (MASKED's mask
 * never has upper bits). EQ, NE and LE compare all 64 bits, which is
 * stricter: a caller that sets upper bits is refused.
 */
#define EQ(i, v)        {.arg = (i), .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)(v)}
#define NE(i, v)        {.arg = (i), .op = SCMP_CMP_NE, .datum_a = (scmp_datum_t)(v)}
#define LE(i, v)        {.arg = (i), .op = SCMP_CMP_LE, .datum_a = (scmp_datum_t)(v)}
#define MASKED(i, m, v) {.arg = (i), .op = SCMP_CMP_MASKED_EQ, .datum_a = (m), .datum_b = (v)}
#define EQ32(i, v)      MASKED(i, 0xffffffffu, (uint32_t)(v))
/* Argument I is the installing process's own pid (see find_self). */
#define SELF(i)         EQ(i, SANDBOX_SELF_PID)

/* A rule allows the call, or (err != 0) makes it fail with that errno. */
struct rule {
	int nr;
	unsigned stages;
	int err;
	unsigned ncmp;
	struct scmp_arg_cmp cmp[3];
};

#define R(name, st)              {SCMP_SYS(name), (st), 0, 0, {{0}}}
#define R1(name, st, a)          {SCMP_SYS(name), (st), 0, 1, {a}}
#define R2(name, st, a, b)       {SCMP_SYS(name), (st), 0, 2, {a, b}}
#define R3(name, st, a, b, c)    {SCMP_SYS(name), (st), 0, 3, {a, b, c}}
#define FAIL1(name, st, e, a)    {SCMP_SYS(name), (st), (e), 1, {a}}
#define FAIL2(name, st, e, a, b) {SCMP_SYS(name), (st), (e), 2, {a, b}}

static const struct rule rules[] = {
	/* ---- both stages ------------------------------------------------ */

	/* Serving: read and write the descriptors the process holds (the
	 * doorbell and async eventfds, irqfds, the input and output, stdio),
	 * wait on them, close them. writev: libc's fatal error messages (heap
	 * corruption, stack smashing) go out with it. sched_yield: the
	 * bounded spin before a doorbell wait. pwrite64: the built-in roles
	 * write a regular output file at the offset kept in their saved state,
	 * so that an event re-applied after a crash rewrites its bytes in
	 * place (docs/parallel-vmm.md, "Exactly-once delivery"). */
	R(read, BOTH),
	R(write, BOTH),
	R(pwrite64, BOTH),
	R(writev, BOTH),
	R(poll, BOTH),
	R(ppoll, BOTH),
	R(close, BOTH),
	R(sched_yield, BOTH),
	/* futex: plain wait and wake only (waking a waiter on the shared
	 * region's slot words; libc's and the sanitizer runtime's locks); no
	 * bitset, requeue, PI or wake-op. */
	R1(futex, BOTH, MASKED(1, FUTEX_OP_BITS, FUTEX_WAIT)),
	R1(futex, BOTH, MASKED(1, FUTEX_OP_BITS, FUTEX_WAKE)),
	/* The setup socket, and only it: the handshake (stage 1), and the
	 * teardown (stage 2: the VMM library sees the socket close with a
	 * recv(2), which is recvfrom). No other socket can exist: socket(2)
	 * and socketpair(2) are refused. */
	R1(recvmsg, BOTH, EQ(0, HS_SOCKET_FD)),
	R1(recvfrom, BOTH, EQ(0, HS_SOCKET_FD)),
	R1(sendmsg, BOTH, EQ(0, HS_SOCKET_FD)),
	/* Descriptor flags (close-on-exec, non-blocking); no F_DUPFD, no
	 * F_SETOWN/F_SETSIG, no leases, no pipe resizing. */
	R1(fcntl, BOTH, EQ32(1, F_GETFD)),
	R1(fcntl, BOTH, EQ32(1, F_SETFD)),
	R1(fcntl, BOTH, EQ32(1, F_GETFL)),
	R1(fcntl, BOTH, EQ32(1, F_SETFL)),
	/* stdio asks what a stream's descriptor is at its first use
	 * (newfstatat(fd, "", AT_EMPTY_PATH)) and, for a character device,
	 * whether it is a terminal: TCGETS, the only ioctl, on 0-2 only. */
	R(newfstatat, BOTH),
	/* The same question through fstat(2): ThreadSanitizer's runtime
	 * asks it of each descriptor that arrives with a message. */
	R(fstat, S1_SAN | S2_SAN),
	R2(ioctl, BOTH, LE(0, 2), EQ32(1, TCGETS)),

	/* Time: the sanitizer runtime reads CLOCK_MONOTONIC with the system
	 * call; libc does too, and gettimeofday, when the clock source has no
	 * vDSO support. Sleeping, and the kernel's restart of a sleep that a
	 * signal interrupted (SIGSTOP/SIGCONT) through restart_syscall. */
	R(clock_gettime, BOTH),
	R(gettimeofday, BOTH),
	R(clock_nanosleep, BOTH),
	R(restart_syscall, BOTH),

	/* Signals: handlers (the sanitizer runtime's SIGSEGV/SIGBUS/SIGFPE on
	 * an alternate stack), masks, and abort()/raise() on the process
	 * itself only: tgkill with its own pid, never another process's,
	 * whatever the uids. No kill(2) (kill(-1) or kill(0) reach others). */
	R(rt_sigaction, BOTH),
	R(rt_sigprocmask, BOTH),
	R(rt_sigreturn, BOTH),
	R(sigaltstack, BOTH),
	R(getpid, BOTH),
	R(gettid, BOTH),
	R1(tgkill, BOTH, SELF(0)),

	/* Memory. Stage 1: the loader maps and protects the program's and the
	 * libraries' segments (executable ones included), the VMM library
	 * maps the guest-memory windows and the transport region from their
	 * memfds. Stage 2: anonymous, never executable memory only (malloc,
	 * realloc's mremap, the sanitizer allocator's MAP_FIXED and
	 * MAP_NORESERVE chunks); no more descriptor mappings. */
	R(brk, BOTH),
	R(munmap, BOTH),
	R(mremap, BOTH),
	R(mmap, S1),
	R3(mmap, S2, EQ32(4, -1), MASKED(3, MAP_ANONYMOUS, MAP_ANONYMOUS), MASKED(2, PROT_EXEC, 0)),
	R(mprotect, S1),
	R1(mprotect, S2, MASKED(2, PROT_EXEC, 0)),
	/* madvise: giving pages back (MADV_DONTNEED), and the sanitizer
	 * runtime's hints on its shadow and its large chunks. Not MADV_REMOVE
	 * (holes in shared guest memory), not MADV_MERGEABLE. */
	R1(madvise, BOTH, EQ32(2, MADV_DONTNEED)),
	R1(madvise, BOTH, EQ32(2, MADV_NOHUGEPAGE)),
	R1(madvise, BOTH, EQ32(2, MADV_DONTDUMP)),

	R(exit_group, BOTH), /* one thread: no exit(2) */

	/* ---- stage 1 only ----------------------------------------------- */

	/* Executing the program: the filter is installed before execveat (and
	 * execve, for a script). */
	R(execve, S1),
	R(execveat, S1),
	/* The loader and libc start-up: TLS (ARCH_SET_FS), the thread's
	 * kernel bookkeeping, the stack limit (RLIMIT_STACK; the sanitizer
	 * runtime also lowers RLIMIT_CORE) of the process itself (pid 0), and
	 * malloc's random tcache key. */
	R1(arch_prctl, S1, EQ32(0, 0x1002 /* ARCH_SET_FS */)),
	R(set_tid_address, S1),
	R(set_robust_list, S1),
	R(rseq, S1),
	R1(prlimit64, S1, EQ(0, 0)),
	R(getrandom, S1),
	/* Read-only file access: the loader (/etc/ld.so.preload,
	 * ld.so.cache, the libraries), the sanitizer runtime (/proc/self/
	 * maps, cmdline, environ, exe), what the VMM reads at set-up. An open
	 * that writes, creates, truncates or appends is refused; O_DIRECTORY
	 * and O_PATH are read-only. In sanitized builds stage 2 keeps these
	 * (S2_SAN): a sanitizer writing an error report reads /proc/self/exe,
	 * cmdline, environ and maps. */
	R1(openat, S1 | S2_SAN, MASKED(2, OPEN_WRITE_FLAGS, O_RDONLY)),
	R1(open, S1 | S2_SAN, MASKED(1, OPEN_WRITE_FLAGS, O_RDONLY)),
	R(readlink, S1 | S2_SAN),
	/* ThreadSanitizer's runtime creates a file at start-up
	 * (TMPDIR/tsan.rodata.PID, O_RDWR | O_CREAT | O_EXCL) to back the
	 * shadow of read-only data, and goes without it when the open fails:
	 * sanitized builds answer that open EACCES instead of killing the
	 * process. Nothing is created. */
	FAIL1(openat, S1_SAN, EACCES, MASKED(2, OPEN_WRITE_FLAGS, O_RDWR | O_CREAT)),
	FAIL1(open, S1_SAN, EACCES, MASKED(1, OPEN_WRITE_FLAGS, O_RDWR | O_CREAT)),
	R(pread64, S1),
	R(access, S1),
	/* Building and installing stage 2. libseccomp first probes the
	 * kernel: seccomp(SECCOMP_SET_MODE_STRICT, 1) expecting EINVAL, each
	 * SECCOMP_SET_MODE_FILTER flag with a NULL program expecting EFAULT,
	 * and SECCOMP_GET_ACTION_AVAIL. The query is answered; strict mode and
	 * every filter flag get EINVAL (as from a kernel without them: nothing
	 * here uses them, and libseccomp then asks nothing more). Then it
	 * exports the BPF into a pipe (pipe2), and sandbox_filter_install sets
	 * no_new_privs and installs the program, with no flags. A stacked
	 * filter can only narrow. */
	R(pipe2, S1),
	R2(seccomp, S1, EQ32(0, SECCOMP_SET_MODE_FILTER), EQ(1, 0)),
	FAIL2(seccomp, S1, EINVAL, EQ32(0, SECCOMP_SET_MODE_FILTER), NE(1, 0)),
	FAIL1(seccomp, S1, EINVAL, EQ32(0, SECCOMP_SET_MODE_STRICT)),
	R1(seccomp, S1, EQ32(0, SECCOMP_GET_ACTION_AVAIL)),
	R1(prctl, S1, EQ32(0, PR_SET_NO_NEW_PRIVS)),
	/* Offered to the VMM library's set-up: naming the process after its
	 * role, and making it non-dumpable (its memory then unreadable
	 * through /proc by processes of its uid). */
	R1(prctl, S1, EQ32(0, PR_SET_NAME)),
	R1(prctl, S1, EQ32(0, PR_SET_DUMPABLE)),
};

/* clang-format on */

/* The largest BPF program the kernel accepts. */
#define BPF_MAX_INSNS 4096u

void *sandbox_filter_ctx(uint32_t def_action, const char *what, struct errbuf *e)
{
	if (seccomp_arch_native() != SCMP_ARCH_X86_64) {
		err_set(e, "%s filter: only x86-64 is supported", what);
		return NULL;
	}
	scmp_filter_ctx ctx = seccomp_init(def_action);
	if (ctx == NULL) {
		err_set(e, "%s filter: libseccomp cannot create a filter", what);
		return NULL;
	}
	/* Only the native ABI: a system call from another one (int 0x80, x32)
	 * kills the process like a forbidden call. */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc != 0) {
		seccomp_release(ctx);
		err_set(e, "%s filter: setting the foreign-ABI action: %s", what, strerror(-rc));
		return NULL;
	}
	return ctx;
}

/*
 * Read back the BPF that libseccomp exports. It writes the whole program
 * with write(2) into a non-blocking pipe; a pipe that filled up would hold a
 * truncated program, so one more byte is written after it: when that byte
 * fits, the program before it is complete.
 */
int sandbox_filter_export(void *ctx, struct sandbox_filter *f, const char *what, struct errbuf *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return err_set(e, "%s filter: pipe: %s", what, strerror(errno));
	int rc = seccomp_export_bpf(ctx, p[1]);
	if (rc != 0) {
		close(p[0]);
		close(p[1]);
		return err_set(e, "%s filter: exporting the BPF: %s", what, strerror(-rc));
	}
	ssize_t m = write(p[1], "", 1);
	int werr = errno;
	close(p[1]);
	if (m != 1) {
		close(p[0]);
		return err_set(e, "%s filter: exporting the BPF: %s", what,
			       werr == EAGAIN ? "program larger than a pipe holds"
					      : strerror(werr));
	}

	size_t cap = BPF_MAX_INSNS * sizeof(struct sock_filter) + 1;
	unsigned char *buf = malloc(cap + 1);
	if (buf == NULL) {
		close(p[0]);
		return err_set(e, "%s filter: out of memory", what);
	}
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], buf + len, cap + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(p[0]);
			free(buf);
			return err_set(e, "%s filter: reading the BPF back: %s", what,
				       strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > cap)
			break;
	}
	close(p[0]);
	/* The program, then the marker byte. */
	if (len < 1 + sizeof(struct sock_filter) || len > cap || buf[len - 1] != '\0' ||
	    (len - 1) % sizeof(struct sock_filter) != 0) {
		free(buf);
		return err_set(e, "%s filter: exported BPF has a bad size (%zu bytes)", what,
			       len > 0 ? len - 1 : 0);
	}
	size_t n = (len - 1) / sizeof(struct sock_filter);
	f->insns = malloc(n * sizeof(struct sock_filter));
	if (f->insns == NULL) {
		free(buf);
		return err_set(e, "%s filter: out of memory", what);
	}
	memcpy(f->insns, buf, n * sizeof(struct sock_filter));
	free(buf);
	f->prog.len = (unsigned short)n;
	f->prog.filter = f->insns;
	return 0;
}

/*
 * Record where the program compares an argument with SANDBOX_SELF_PID, so
 * that sandbox_filter_install can put the installing process's pid there.
 * The placeholder is above any pid the kernel hands out (PID_MAX_LIMIT is
 * 2^22), so it cannot be anything else; it must appear only as the constant
 * of an equality jump.
 */
static int find_self(struct sandbox_filter *f, const char *what, struct errbuf *e)
{
	f->nself = 0;
	for (unsigned i = 0; i < f->prog.len; i++) {
		const struct sock_filter *in = &f->insns[i];
		if (in->k != SANDBOX_SELF_PID)
			continue;
		if (in->code != (BPF_JMP | BPF_JEQ | BPF_K))
			return err_set(e, "%s filter: pid placeholder in instruction %u (code %#x)",
				       what, i, in->code);
		if (f->nself == SANDBOX_SELF_MAX)
			return err_set(e, "%s filter: more than %u pid comparisons", what,
				       SANDBOX_SELF_MAX);
		f->self_at[f->nself++] = (uint16_t)i;
	}
	if (f->nself == 0)
		return err_set(e, "%s filter: pid comparisons missing from the BPF", what);
	return 0;
}

static int build(struct sandbox_filter *f, unsigned stage, struct errbuf *e)
{
	const char *what = stage == S1 ? "stage-1" : "stage-2";
	memset(f, 0, sizeof(*f));
	scmp_filter_ctx ctx = sandbox_filter_ctx(SCMP_ACT_KILL_PROCESS, what, e);
	if (ctx == NULL)
		return -1;
	int rc;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct rule *r = &rules[i];
		if (!(r->stages & stage))
			continue;
		uint32_t action = r->err != 0 ? SCMP_ACT_ERRNO((uint32_t)r->err) : SCMP_ACT_ALLOW;
		rc = seccomp_rule_add_array(ctx, action, r->nr, r->ncmp, r->cmp);
		if (rc != 0) {
			char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r->nr);
			err_set(e, "%s filter: rule %zu (%s): %s", what, i,
				name != NULL ? name : "?", strerror(-rc));
			free(name);
			seccomp_release(ctx);
			return -1;
		}
	}
	/* The serving path first: these are tested before the others. */
	static const int hot[] = {SCMP_SYS(futex), SCMP_SYS(ppoll), SCMP_SYS(poll), SCMP_SYS(read),
				  SCMP_SYS(write)};
	for (size_t i = 0; i < sizeof(hot) / sizeof(hot[0]); i++)
		seccomp_syscall_priority(ctx, hot[i], (uint8_t)(255 - i));

	rc = sandbox_filter_export(ctx, f, what, e);
	seccomp_release(ctx);
	if (rc != 0)
		return -1;
	if (find_self(f, what, e) != 0) {
		sandbox_filter_free(f);
		return -1;
	}
	return 0;
}

int sandbox_filter_stage1(struct sandbox_filter *f, struct errbuf *e)
{
	return build(f, S1, e);
}

int sandbox_filter_stage2(struct sandbox_filter *f, struct errbuf *e)
{
	return build(f, S2, e);
}

size_t sandbox_filter_calls(int *nrs, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		if (rules[i].stages == 0)
			continue;
		bool seen = false;
		for (size_t k = 0; k < n && k < cap; k++)
			seen = seen || nrs[k] == rules[i].nr;
		if (seen)
			continue;
		if (n < cap)
			nrs[n] = rules[i].nr;
		n++;
	}
	return n;
}

void sandbox_filter_free(struct sandbox_filter *f)
{
	if (f == NULL)
		return;
	free(f->insns);
	memset(f, 0, sizeof(*f));
}

int sandbox_filter_install(const struct sandbox_filter *f)
{
	if (f == NULL || f->insns == NULL || f->prog.len == 0 || f->prog.filter != f->insns ||
	    f->nself > SANDBOX_SELF_MAX) {
		errno = EINVAL;
		return -1;
	}
	for (unsigned i = 0; i < f->nself; i++) {
		if (f->self_at[i] >= f->prog.len) {
			errno = EINVAL;
			return -1;
		}
	}
	/* Bind the self-only rules to this process. The program is the
	 * caller's own copy (after fork, the child's). */
	uint32_t self = (uint32_t)getpid();
	for (unsigned i = 0; i < f->nself; i++)
		f->insns[f->self_at[i]].k = self;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	struct sock_fprog prog = f->prog;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -1;
	return 0;
}
