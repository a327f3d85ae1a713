/*
 * self_filter.c: the seccomp filters of vmmux's own threads, one per thread
 * role (self_filter.h).
 *
 * Every system call a role admits is listed in the one table below, with
 * the roles that admit it and its argument conditions; each group says why
 * it is there. The lists come from tracing (strace -f) the integration
 * suites with the filters in place and reading the code paths each thread
 * runs, libraries included (glibc's malloc, threads and stdio, liburcu,
 * jansson, libseccomp, and in sanitized builds the ASan, UBSan and TSan
 * runtimes). To admit a call: add a row, or a role to a row.
 */
#include "sandbox/self_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

/* Roles, as bits. */
#define VCPU (1u << SELF_VCPU)
#define SUP  (1u << SELF_SUPERVISOR)
#define DISP (1u << SELF_DISPATCHER)
#define CTL  (1u << SELF_CONTROL)
/* The live-change worker starts, stops and watches VMMs as the supervisor
 * does: its list is the supervisor's, and it runs under the supervisor's
 * filter, which it inherits (one more of the same would only be evaluated
 * twice). */
#define WORK  SUP
#define SETUP (1u << SELF_SETUP)
#define IOR   (1u << SELF_IOREGION)
#define GDB   (1u << SELF_GDBSTUB)
#define RCLM  (1u << SELF_RECLAIM)
#define ALL   ((1u << SELF_NROLES) - 1)
/* The roles that manage parallel VMMs and the run's files: the supervisor
 * and the live-change worker. Neither forks nor executes anything: every
 * process vmmux starts (parallel VMMs, the loader's listing of a VMM
 * program, a live update's check and its execve) is started by the exec
 * thread, the main thread, which has no role filter (self_exec.h). */
#define FORK (SUP | WORK)
/* The roles that deliver events: to in-process VMMs (their callbacks run on
 * the delivering thread) and to parallel VMMs (kill a late one). The
 * supervisor delivers to the main VMM only; the worker delivers a swap's
 * state restore, and runs in-process VMMs' init, reset and fini. */
#define DELIVER (VCPU | DISP | IOR | WORK | SUP)
/* The roles that create threads (which inherit their filter): the
 * supervisor and the worker start set-up workers; the worker starts the
 * compiled-routes thread and the GDB stub's with the VMMs it adds. */
#define SPAWNS (SUP | WORK)

/* Sanitized builds only: the runtimes' own needs (see the rows). */
#ifdef VMMUX_SANITIZED
#define SAN(roles)    (roles)
#define NOSAN(roles)  0u
#define NOSAN_NR(sys) (-1)
#else
#define SAN(roles)    0u
#define NOSAN(roles)  (roles)
#define NOSAN_NR(sys) SCMP_SYS(sys)
#endif

/* The flags that make an open write, create or truncate (O_TMPFILE: its
 * own bit only, as in filter.c). */
#define O_TMPFILE_BIT	 020000000
#define OPEN_WRITE_FLAGS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE_BIT)

/* The futex command without its modifier bits. */
#define FUTEX_OP_BITS (~(unsigned)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME))

/* An ioctl request's type byte (_IOC_TYPE). */
#define IOC_TYPE_MASK 0xff00u
#define KVMIO_TYPE    (0xAEu << 8) /* every KVM ioctl */

/* clang-format off */

/*
 * Argument conditions, as in filter.c: EQ32 and MASKED look at the low 32
 * bits (an int argument), EQ compares all 64. SELF(i): argument I is
 * vmmux's own pid (bound when the filters are built).
 */
#define EQ(i, v)        {.arg = (i), .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)(v)}
#define MASKED(i, m, v) {.arg = (i), .op = SCMP_CMP_MASKED_EQ, .datum_a = (m), .datum_b = (v)}
#define EQ32(i, v)      MASKED(i, 0xffffffffu, (uint32_t)(v))
#define SELF(i)         EQ(i, SANDBOX_SELF_PID)

/* A row admits the call, or (err != 0) makes it fail with that errno. */
struct rule {
	int nr;
	unsigned roles;
	int err;
	unsigned ncmp;
	struct scmp_arg_cmp cmp[3];
};

#define R(name, roles)           {SCMP_SYS(name), (roles), 0, 0, {{0}}}
#define R1(name, roles, a)       {SCMP_SYS(name), (roles), 0, 1, {a}}
#define R2(name, roles, a, b)    {SCMP_SYS(name), (roles), 0, 2, {a, b}}
#define R3(name, roles, a, b, c) {SCMP_SYS(name), (roles), 0, 3, {a, b, c}}
#define FAIL0(name, roles, e)    {SCMP_SYS(name), (roles), (e), 0, {{0}}}
#define FAIL1(name, roles, e, a) {SCMP_SYS(name), (roles), (e), 1, {a}}

static const struct rule rules[] = {
	/* ---- every role ------------------------------------------------- */

	/* Descriptors the thread holds: eventfds (wake-ups, stop, doorbells,
	 * irqfds), pipes, sockets, the log (stderr, one write per line),
	 * the guest's console. */
	R(read, ALL),
	R(write, ALL),
	R(readv, ALL),
	R(writev, ALL),
	R(close, ALL),
	R(poll, ALL),
	R(ppoll, ALL),
	/* Locks and condition variables (glibc: plain and bitset waits, with
	 * a timeout for timed waits), liburcu's and the transport's futex
	 * words (shared with parallel VMMs). No requeue, PI or wake-op. */
	R1(futex, ALL, MASKED(1, FUTEX_OP_BITS, FUTEX_WAIT)),
	R1(futex, ALL, MASKED(1, FUTEX_OP_BITS, FUTEX_WAKE)),
	R1(futex, ALL, MASKED(1, FUTEX_OP_BITS, FUTEX_WAIT_BITSET)),
	R1(futex, ALL, MASKED(1, FUTEX_OP_BITS, FUTEX_WAKE_BITSET)),
	R(sched_yield, ALL),
	/* Time: the vDSO serves clock_gettime and gettimeofday unless the
	 * clock source has no vDSO support; sleeps (liburcu's back-off), and
	 * a sleep's restart after SIGSTOP/SIGCONT. */
	R(clock_gettime, ALL),
	R(gettimeofday, ALL),
	R(nanosleep, ALL),
	R(clock_nanosleep, ALL),
	R(restart_syscall, ALL),
	/* Memory: malloc (brk, anonymous mappings, realloc's mremap, freeing
	 * with munmap and madvise), never executable. */
	R(brk, ALL),
	R3(mmap, ALL, EQ32(4, -1), MASKED(3, MAP_ANONYMOUS, MAP_ANONYMOUS), MASKED(2, PROT_EXEC, 0)),
	R1(mprotect, ALL, MASKED(2, PROT_EXEC, 0)),
	R(munmap, ALL),
	R(mremap, ALL),
	R1(madvise, ALL, EQ32(2, MADV_DONTNEED)),
	R1(madvise, ALL, EQ32(2, MADV_FREE)),
	R1(madvise, ALL, EQ32(2, MADV_HUGEPAGE)),
	R1(madvise, ALL, EQ32(2, MADV_NOHUGEPAGE)),
	R1(madvise, ALL, EQ32(2, MADV_DONTDUMP)),
	/* Signals: masks (glibc blocks signals around thread creation and in
	 * its fatal paths), the return from the kick's handler and the SIGSYS
	 * handler, and signals to vmmux's own threads only: tgkill with
	 * vmmux's pid (the vCPU kick, abort, raise). */
	R(rt_sigprocmask, ALL),
	R(rt_sigreturn, ALL),
	R(sigaltstack, ALL),
	R1(tgkill, ALL, SELF(0)),
	R(getpid, ALL),
	R(gettid, ALL),
	/* stdio's first use of a stream (the statistics, a role's output):
	 * what the descriptor is, and for a character device whether it is a
	 * terminal (TCGETS, the only non-KVM ioctl outside the forking
	 * roles). fcntl: flags only (non-blocking, close-on-exec), no
	 * F_DUPFD, F_SETOWN, leases. */
	R(fstat, ALL),
	R(newfstatat, ALL),
	R(lseek, ALL),
	R1(ioctl, ALL, EQ32(1, TCGETS)),
	R1(fcntl, ALL, EQ32(1, F_GETFD)),
	R1(fcntl, ALL, EQ32(1, F_SETFD)),
	R1(fcntl, ALL, EQ32(1, F_GETFL)),
	R1(fcntl, ALL, EQ32(1, F_SETFL)),
	/* A thread's end (glibc frees its stack with madvise, above), and the
	 * process's. */
	R(exit, ALL),
	R(exit_group, ALL),
	/* A read-only open fails (EACCES) instead of trapping: glibc's
	 * malloc reads /proc/sys/vm/overcommit_memory once, from the first
	 * thread that shrinks its arena's heap, and goes without it (it then
	 * gives memory back with madvise). Opens that write or create trap.
	 * In sanitized builds every role opens read-only (below). */
	FAIL1(openat, NOSAN(ALL & ~FORK), EACCES, MASKED(2, OPEN_WRITE_FLAGS, O_RDONLY)),
	FAIL1(open, NOSAN(ALL & ~FORK), EACCES, MASKED(1, OPEN_WRITE_FLAGS, O_RDONLY)),
	/* glibc's malloc seeds its per-thread cache key once; liburcu and
	 * glibc ask where they run. */
	R(getrandom, ALL),
	R(getcpu, ALL),
	R(sched_getaffinity, ALL),

	/* ---- delivering events ------------------------------------------ */

	/* KVM: KVM_RUN and the vCPU's registers (vCPUs, resets, the GDB
	 * stub's reads), interrupt lines and MSIs (in-process devices),
	 * doorbells and irqfds (ioregion), the MSR filter and guest debug.
	 * Only KVM's ioctl type. */
	R1(ioctl, DELIVER | SETUP | GDB, MASKED(1, IOC_TYPE_MASK, KVMIO_TYPE)),
	/* In-process VMMs' devices: block images read and written at an
	 * offset and flushed, the net role's tap, the console. */
	R(pread64, DELIVER),
	R(pwrite64, DELIVER),
	R(preadv, DELIVER),
	R(pwritev, DELIVER),
	R(fsync, DELIVER),
	R(fdatasync, DELIVER),
	/* An hvt guest's core dump (--dumpcore, src/hvt/hvt_dumpcore.c): a
	 * new file, never an existing one, in the directory opened at
	 * set-up, written at offsets and sized. */
	R1(openat, VCPU, EQ32(2, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)),
	R(ftruncate, VCPU),
	/* A parallel VMM that misses its deadline, breaks its protocol or is
	 * stopped is killed through its pidfd: SIGKILL only. */
	R1(pidfd_send_signal, DELIVER | SETUP | CTL, EQ32(1, SIGKILL)),
	/* Reaping a VMM that a stop or a failed set-up ended. */
	R(waitid, DELIVER | SETUP),
	R(wait4, DELIVER | SETUP),
	/* New eventfds: a doorbell's when a parallel VMM (re)starts or a
	 * route is published, the control API's wake-up. */
	R(eventfd2, DELIVER | SETUP | CTL),
	/* The set-up exchange (hello/ready/go) and a swap's state: messages
	 * with descriptors on the set-up socket. */
	R(sendmsg, DELIVER | SETUP | CTL | GDB),
	R(recvmsg, DELIVER | SETUP | CTL | GDB),
	R(sendto, DELIVER | SETUP | CTL | GDB),
	R(recvfrom, DELIVER | SETUP | CTL | GDB),
	R(shutdown, DELIVER | SETUP | CTL | GDB),
	/* Descriptors held across a restart or a swap; the control thread's
	 * copy of a client's connection for the live change it asked (a live
	 * update answers on it). */
	R(dup, DELIVER | SETUP),
	R1(fcntl, DELIVER | SETUP | CTL, EQ32(1, F_DUPFD_CLOEXEC)),

	/* epoll: the control socket's set of clients; the net role's input
	 * (an epoll descriptor of its taps). */
	R(epoll_wait, DELIVER | CTL),
	R(epoll_pwait, DELIVER | CTL),
	R(epoll_ctl, CTL | FORK),
	R(epoll_create1, FORK),

	/* ---- the control socket and the GDB stub ------------------------ */

	/* Clients: accept, who they are (SO_PEERCRED, against vmmux's
	 * effective uid), what they may send. */
	R(geteuid, CTL),
	R(accept4, CTL | GDB | FORK),
	R(accept, CTL | GDB | FORK),
	R(getsockopt, CTL | GDB | FORK),
	R(setsockopt, CTL | GDB | FORK),
	R(getsockname, CTL | GDB | FORK),
	R(getpeername, CTL | GDB | FORK),

	/* ---- threads ---------------------------------------------------- */

	/* pthread_create: the stack (mmap, above), the thread, its kernel
	 * bookkeeping. clone3 fails with ENOSYS (its flags are in memory,
	 * where a filter cannot look), so that glibc falls back to clone,
	 * whose flags are an argument: a thread (CLONE_THREAD) only, never a
	 * process. The new thread names itself and installs its own filter
	 * under its creator's: the creating roles admit that; once a thread's
	 * own filter is on it needs none of it. */
	FAIL0(clone3, SPAWNS, ENOSYS),
	R1(clone, SPAWNS, MASKED(0, CLONE_THREAD, CLONE_THREAD)),
	R(set_robust_list, ALL),
	R(rseq, ALL),
	R2(seccomp, SPAWNS, EQ32(0, SECCOMP_SET_MODE_FILTER), EQ(1, 0)),
	R1(prctl, SPAWNS, EQ32(0, PR_SET_NO_NEW_PRIVS)),
	R1(prctl, SPAWNS, EQ32(0, PR_SET_NAME)),

	/* ---- watching parallel VMMs (supervisor, worker) ---------------- */

	/* A VMM's process is forked, confined and executed by the exec
	 * thread (above): here are only what its watchers do with it and with
	 * their own descriptors, its pidfd, its signals (kill and tgkill for
	 * a thread's abort()), its reaping, the identity read back. */
	R(kill, FORK),
	R(tgkill, FORK), /* abort() and raise() */
	R(pidfd_open, FORK),
	R(pidfd_send_signal, FORK),
	R(pidfd_getfd, FORK),
	R(waitid, FORK),
	R(wait4, FORK),
	R(dup2, FORK),
	R(dup3, FORK),
	R(close_range, FORK),
	R(fcntl, FORK),
	R(pipe2, FORK),
	R(socketpair, FORK),
	R(rt_sigaction, FORK),
	R(getppid, FORK),
	R(getuid, FORK),
	R(geteuid, FORK),
	R(getgid, FORK),
	R(getegid, FORK),
	R(capget, FORK),
	R(prlimit64, FORK),
	R(statfs, FORK),
	R(fstatfs, FORK),
	R(getgroups, FORK),
	R(getresuid, FORK),
	R(getresgid, FORK),
	/* Memory and descriptors for a VMM: its transport region and windows
	 * (memfds, sealed), the set-up socket, stderr's pipe. Never memory
	 * that executes (no thread of vmmux loads code after its start). */
	R(memfd_create, FORK),
	R(ftruncate, FORK),
	R(fallocate, FORK),
	R1(mmap, FORK, MASKED(2, PROT_EXEC, 0)),
	R(madvise, FORK),

	/* ---- files and devices (supervisor, worker) --------------------- */

	/* The worker adds and starts VMMs at run time (their init opens
	 * images, a tap, a socket, starts a thread) and publishes routes;
	 * the supervisor's teardown writes the statistics and the trace,
	 * and stops the VMMs. */
	R(openat, FORK),
	R(open, FORK),
	R(mkdir, FORK), /* the control socket's private directory (mkdtemp) */
	R(mkdirat, FORK),
	R(readlink, FORK),
	R(access, FORK),
	R(faccessat2, FORK),
	R(statx, FORK),
	R(unlink, FORK),
	R(fchmod, FORK),
	R(rmdir, FORK),
	R(renameat2, FORK),
	R(renameat, FORK),
	R(fchmodat, FORK),
	R(signalfd4, FORK),
	R(unlinkat, FORK),
	R(rename, FORK),
	R(getdents64, FORK),
	/* snapshot (src/snapshot/, the live-change worker): which pages of a
	 * restored run's file mapping are in memory; restore (main thread,
	 * before the vCPUs): the snapshot's working directory */
	R(mincore, FORK),
	R(getcwd, FORK),
	R(socket, FORK),
	R(bind, FORK),
	R(listen, FORK),
	R(connect, FORK),
	R(ioctl, FORK),
	R(timerfd_create, FORK),
	R(timerfd_settime, FORK),
	R(timerfd_gettime, FORK),
	R(getrusage, FORK),
	R(sysinfo, FORK),
	R(uname, FORK),

	/* ---- sanitized builds ------------------------------------------- */

	/* The runtimes' reports (every role): /proc/self/maps, exe, cmdline
	 * read-only, the binaries for symbolization (gcc's runtime
	 * symbolizes in-process). TSan's thread set-up and shadow. LSan's
	 * leak check at the main thread's exit stops the world: a tracer
	 * task (clone) ptraces every thread and reads /proc/self/task. */
	R1(openat, SAN(ALL), MASKED(2, OPEN_WRITE_FLAGS, O_RDONLY)),
	R1(open, SAN(ALL), MASKED(1, OPEN_WRITE_FLAGS, O_RDONLY)),
	R(readlink, SAN(ALL)),
	R(getdents64, SAN(ALL)),
	R(getdents, SAN(ALL)), /* the sanitizer runtimes' internal_getdents */
	R(mmap, SAN(ALL)),
	R(mprotect, SAN(ALL)),
	R(madvise, SAN(ALL)),
	R(rt_sigaction, SAN(ALL)),
	R(getppid, SAN(ALL)),
	R(prctl, SAN(ALL)),
	R(clone, SAN(SUP)),
	R(ptrace, SAN(SUP)),
	R(wait4, SAN(SUP)),
	R(getrlimit, SAN(ALL)),
	R(prlimit64, SAN(ALL)),
};

/*
 * The base layer (self_filter.h): the calls no vmmux makes, in any version,
 * on any thread, nor any process it starts before that process's own
 * filters. Everything else is left to the role filters above it. The list
 * may only grow, and only with calls that no version makes: the layer stays
 * on the process across live updates, and a newer vmmux lives under the
 * layer of the oldest one in its process's history.
 */
static const int base_denied[] = {
	/* Reading and changing other processes (LSan's leak check in
	 * sanitized builds ptraces vmmux's own threads). */
	NOSAN_NR(ptrace),
	SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev),
	/* The kernel itself: modules, kexec, BPF programs, the kernel log,
	 * performance counters, port I/O, reboot. */
	SCMP_SYS(init_module),
	SCMP_SYS(finit_module),
	SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load),
	SCMP_SYS(bpf),
	SCMP_SYS(syslog),
	SCMP_SYS(perf_event_open),
	SCMP_SYS(iopl),
	SCMP_SYS(ioperm),
	SCMP_SYS(reboot),
	/* Mounts and the root, old and new API. */
	SCMP_SYS(mount),
	SCMP_SYS(umount2),
	SCMP_SYS(pivot_root),
	SCMP_SYS(chroot),
	SCMP_SYS(open_tree),
	SCMP_SYS(move_mount),
	SCMP_SYS(fsopen),
	SCMP_SYS(fsconfig),
	SCMP_SYS(fsmount),
	SCMP_SYS(fspick),
	SCMP_SYS(mount_setattr),
	/* Files by handle (outside any path check), swap, accounting, quotas. */
	SCMP_SYS(open_by_handle_at),
	SCMP_SYS(name_to_handle_at),
	SCMP_SYS(swapon),
	SCMP_SYS(swapoff),
	SCMP_SYS(acct),
	SCMP_SYS(quotactl),
	SCMP_SYS(quotactl_fd),
	/* The kernel's key rings. */
	SCMP_SYS(keyctl),
	SCMP_SYS(add_key),
	SCMP_SYS(request_key),
	/* The system's clocks (the guest's clock is KVM's). */
	SCMP_SYS(settimeofday),
	SCMP_SYS(clock_settime),
	SCMP_SYS(adjtimex),
	SCMP_SYS(clock_adjtime),
	/* Interfaces with a long record of kernel bugs that vmmux does
	 * without: userfaultfd, io_uring, the execution domain (sanitized
	 * builds: the runtimes may read it at start). */
	SCMP_SYS(userfaultfd),
	SCMP_SYS(io_uring_setup),
	SCMP_SYS(io_uring_enter),
	SCMP_SYS(io_uring_register),
	NOSAN_NR(personality),
	SCMP_SYS(vhangup),
	SCMP_SYS(uselib),
};

/* clang-format on */

static bool base_denies(int nr)
{
	for (size_t i = 0; i < sizeof(base_denied) / sizeof(base_denied[0]); i++)
		if (base_denied[i] == nr && nr >= 0)
			return true;
	return false;
}

size_t self_filter_base_calls(int *nrs, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(base_denied) / sizeof(base_denied[0]); i++) {
		if (base_denied[i] < 0)
			continue;
		if (n < cap)
			nrs[n] = base_denied[i];
		n++;
	}
	return n;
}

static unsigned role_bit(enum self_role role)
{
	return role == SELF_WORKER ? SUP : 1u << role;
}

static const char *const role_names[SELF_NROLES] = {
    [SELF_VCPU] = "vcpu",
    [SELF_SUPERVISOR] = "supervisor",
    [SELF_DISPATCHER] = "dispatcher",
    [SELF_CONTROL] = "control",
    [SELF_WORKER] = "live-worker",
    [SELF_SETUP] = "setup",
    [SELF_IOREGION] = "ioregion",
    [SELF_GDBSTUB] = "gdbstub",
    [SELF_RECLAIM] = "rcu-reclaim",
};

const char *self_filter_role_name(enum self_role role)
{
	return (unsigned)role < SELF_NROLES ? role_names[role] : NULL;
}

/* The largest BPF program the kernel accepts. */
#define BPF_MAX_INSNS 4096u
/* System call numbers the handler can name. */
#define NAMES_MAX 512

static struct {
	bool enabled;
	bool supervisor_on; /* the supervisor's filter is on the run's thread */
	struct sandbox_filter f[SELF_NROLES];
	char *names[NAMES_MAX];
} S;

static _Thread_local enum self_role thread_role = SELF_NROLES;
/* A thread without a role filter that names itself (self_filter_name). */
static _Thread_local const char *thread_label;

/* ---- the SIGSYS handler ------------------------------------------------ */

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, long v)
{
	char tmp[24];
	size_t n = 0;
	unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n < sizeof(tmp));
	if (v < 0 && at < cap)
		buf[at++] = '-';
	while (n && at < cap)
		buf[at++] = tmp[--n];
	return at;
}

/* Async-signal-safe: string copies, write(2), _exit(2). */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char buf[256];
	size_t n = 0, cap = sizeof(buf) - 1;
	enum self_role r = thread_role;
	const char *role = (unsigned)r < SELF_NROLES ? role_names[r]
			   : thread_label != NULL    ? thread_label
						     : "unfiltered";
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < NAMES_MAX && S.names[nr] ? S.names[nr] : "?";
	n = put(buf, n, cap, "vmmux: seccomp: the ");
	n = put(buf, n, cap, role);
	n = put(buf, n, cap, " thread made a forbidden system call: ");
	n = put(buf, n, cap, name);
	n = put(buf, n, cap, " (");
	n = put_num(buf, n, cap, nr);
	n = put(buf, n, cap, "); exiting with status ");
	n = put_num(buf, n, cap, SELF_FILTER_EXIT);
	buf[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, n);
	(void)w;
	_exit(SELF_FILTER_EXIT);
}

static int install_handler(struct errbuf *e)
{
	for (int nr = 0; nr < NAMES_MAX; nr++) {
		if (S.names[nr] == NULL)
			S.names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) != 0)
		return err_set(e, "seccomp: SIGSYS handler: %s", strerror(errno));
	return 0;
}

/* ---- building -------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* The distinct calls that ROLE's rows admit, sorted; returns the count. */
static size_t role_calls(enum self_role role, int *nrs, size_t cap)
{
	int all[sizeof(rules) / sizeof(rules[0])];
	size_t n = 0;
	unsigned bit = role_bit(role);
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if ((rules[i].roles & bit) && rules[i].err == 0)
			all[n++] = rules[i].nr;
	qsort(all, n, sizeof(all[0]), cmp_int);
	size_t d = 0;
	for (size_t i = 0; i < n; i++) {
		if (d > 0 && all[i] == all[d - 1])
			continue;
		all[d++] = all[i];
	}
	for (size_t i = 0; i < d && i < cap; i++)
		nrs[i] = all[i];
	return d;
}

size_t self_filter_role_calls(enum self_role role, int *nrs, size_t cap)
{
	if ((unsigned)role >= SELF_NROLES)
		return 0;
	return role_calls(role, nrs, cap);
}

static void bind_self(struct sandbox_filter *f)
{
	uint32_t self = (uint32_t)getpid();
	for (unsigned i = 0; i < f->prog.len; i++)
		if (f->insns[i].k == SANDBOX_SELF_PID &&
		    f->insns[i].code == (BPF_JMP | BPF_JEQ | BPF_K))
			f->insns[i].k = self;
}

static int add(scmp_filter_ctx ctx, int nr, int err, unsigned ncmp, const struct scmp_arg_cmp *cmp,
	       const char *what, struct errbuf *e)
{
	uint32_t action = err != 0 ? SCMP_ACT_ERRNO((uint32_t)err) : SCMP_ACT_ALLOW;
	int rc = seccomp_rule_add_array(ctx, action, nr, ncmp, cmp);
	if (rc == 0)
		return 0;
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	err_set(e, "%s filter: %s: %s", what, name != NULL ? name : "?", strerror(-rc));
	free(name);
	return -1;
}

static int build(enum self_role role, struct sandbox_filter *f, struct errbuf *e)
{
	const char *what = role_names[role];
	memset(f, 0, sizeof(*f));
	scmp_filter_ctx ctx = sandbox_filter_ctx(SCMP_ACT_TRAP, what, e);
	if (ctx == NULL)
		return -1;
	int rc;
	unsigned bit = role_bit(role);
	/* A row without conditions admits every call; libseccomp refuses
	 * conditional rows after it (and they would add nothing). */
	bool plain[NAMES_MAX] = {false};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if ((rules[i].roles & bit) && rules[i].ncmp == 0 && rules[i].err == 0 &&
		    rules[i].nr < NAMES_MAX)
			plain[rules[i].nr] = true;
	for (int nr = 0; nr < NAMES_MAX; nr++)
		if (plain[nr] && add(ctx, nr, 0, 0, NULL, what, e) != 0)
			goto fail;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct rule *r = &rules[i];
		if (!(r->roles & bit) || (r->ncmp == 0 && r->err == 0) || plain[r->nr])
			continue;
		if (add(ctx, r->nr, r->err, r->ncmp, r->cmp, what, e) != 0)
			goto fail;
	}
	/* The delivery path first. */
	static const int hot[] = {SCMP_SYS(ioctl), SCMP_SYS(futex), SCMP_SYS(read),
				  SCMP_SYS(write), SCMP_SYS(ppoll), SCMP_SYS(poll)};
	for (size_t i = 0; i < sizeof(hot) / sizeof(hot[0]); i++)
		seccomp_syscall_priority(ctx, hot[i], (uint8_t)(255 - i));
	rc = sandbox_filter_export(ctx, f, what, e);
	f->nself = 0;
	seccomp_release(ctx);
	if (rc != 0)
		return -1;
	bind_self(f);
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}

/* Whether the roles in MASK admit everything row R admits: a row of the
 * same call without conditions, or with the same conditions. */
static bool admitted_by(unsigned mask, const struct rule *r)
{
	for (unsigned b = 0; b < SELF_NROLES; b++) {
		if (!(mask & (1u << b)))
			continue;
		bool ok = false;
		for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]) && !ok; i++) {
			const struct rule *s = &rules[i];
			if (!(s->roles & (1u << b)) || s->nr != r->nr)
				continue;
			ok = (s->ncmp == 0 && s->err == 0) ||
			     (s->ncmp == r->ncmp && memcmp(s->cmp, r->cmp, sizeof(s->cmp)) == 0);
		}
		if (!ok)
			return false;
	}
	return true;
}

int self_filter_check(struct errbuf *e)
{
	/* No parallel VMM's stage (whose process inherits the base layer from
	 * the exec thread) admits what the base layer refuses. */
	int vmm[256];
	size_t nvmm = sandbox_filter_calls(vmm, 256);
	for (size_t i = 0; i < nvmm && i < 256; i++) {
		if (!base_denies(vmm[i]))
			continue;
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, vmm[i]);
		err_set(e,
			"seccomp: a parallel VMM's stage admits %s, which the base layer refuses",
			name != NULL ? name : "?");
		free(name);
		return -1;
	}
	/* Nor does any role. */
	for (int r = 0; r < SELF_NROLES; r++) {
		int nrs[NAMES_MAX];
		size_t n = role_calls((enum self_role)r, nrs, NAMES_MAX);
		for (size_t i = 0; i < n && i < NAMES_MAX; i++) {
			if (!base_denies(nrs[i]))
				continue;
			char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nrs[i]);
			err_set(e, "seccomp: the %s filter admits %s, which the base layer refuses",
				role_names[r], name != NULL ? name : "?");
			free(name);
			return -1;
		}
	}
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct rule *r = &rules[i];
		/* Every thread stacks its filter on the supervisor's; the
		 * threads the worker starts, on the worker's too. */
		unsigned need = SUP;
		if (r->roles & (SETUP | IOR | GDB))
			need |= WORK;
		if (r->roles == 0 || r->err != 0 || admitted_by(need, r))
			continue;
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r->nr);
		err_set(e,
			"seccomp: row %zu (%s) is not admitted by the filters its threads "
			"stack on",
			i, name != NULL ? name : "?");
		free(name);
		return -1;
	}
	return 0;
}

static int install(const struct sandbox_filter *f)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	struct sock_fprog prog = f->prog;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* ---- the base layer ----------------------------------------------------- */

static int build_base(struct sandbox_filter *f, struct errbuf *e)
{
	memset(f, 0, sizeof(*f));
	scmp_filter_ctx ctx = sandbox_filter_ctx(SCMP_ACT_ALLOW, "base", e);
	if (ctx == NULL)
		return -1;
	/* Every call that passes is compared with the list: a binary tree
	 * keeps that to a handful of comparisons. */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; rc == 0 && i < sizeof(base_denied) / sizeof(base_denied[0]); i++)
		if (base_denied[i] >= 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_TRAP, base_denied[i], 0);
	/* The mark: prctl(SELF_BASE_PROBE) fails with SELF_BASE_ERRNO +
	 * SELF_BASE_VERSION (the kernel itself: EINVAL). */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(SELF_BASE_ERRNO + SELF_BASE_VERSION),
				      SCMP_SYS(prctl), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, SELF_BASE_PROBE));
	if (rc != 0) {
		seccomp_release(ctx);
		return err_set(e, "base filter: %s", strerror(-rc));
	}
	rc = sandbox_filter_export(ctx, f, "base", e);
	seccomp_release(ctx);
	return rc;
}

unsigned self_filter_base_found(void)
{
	errno = 0;
	if (prctl(SELF_BASE_PROBE, 0, 0, 0, 0) != -1)
		return 0;
	int err = errno;
	return err > SELF_BASE_ERRNO && err <= SELF_BASE_ERRNO + 255
		   ? (unsigned)(err - SELF_BASE_ERRNO)
		   : 0;
}

int self_filter_base(struct errbuf *e)
{
	unsigned found = self_filter_base_found();
	if (found >= SELF_BASE_VERSION)
		return 0;
	struct sandbox_filter f;
	if (build_base(&f, e) != 0)
		return -1;
	long rc = -1;
	int err = 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		err = errno;
	} else {
		struct sock_fprog prog = f.prog;
		rc =
		    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
		err = errno;
	}
	sandbox_filter_free(&f);
	if (rc > 0)
		return err_set(e,
			       "seccomp: the base layer: thread %ld has a filter of its own "
			       "(started before it)",
			       rc);
	if (rc != 0)
		return err_set(e, "seccomp: installing the base layer: %s", strerror(err));
	return 0;
}

void self_filter_label(const char *name)
{
	thread_label = name;
}

void self_filter_name(const char *name)
{
	self_filter_label(name);
	prctl(PR_SET_NAME, name, 0, 0, 0);
}

int self_filter_init(bool enabled, struct errbuf *e)
{
	S.enabled = false;
	if (!enabled)
		return 0;
	if (self_filter_check(e) != 0)
		return -1;
	for (int r = 0; r < SELF_NROLES; r++) {
		sandbox_filter_free(&S.f[r]);
		if (build((enum self_role)r, &S.f[r], e) != 0)
			return -1;
	}
	if (install_handler(e) != 0)
		return -1;
	if (self_filter_base(e) != 0)
		return -1;
	S.enabled = true;
	return 0;
}

bool self_filter_enabled(void)
{
	return S.enabled;
}

int self_filter_enter(enum self_role role)
{
	if ((unsigned)role >= SELF_NROLES) {
		errno = EINVAL;
		return -1;
	}
	thread_role = role;
	prctl(PR_SET_NAME, role_names[role], 0, 0, 0);
	if (!S.enabled)
		return 0;
	/* The worker's filter is the supervisor's: inherited when the
	 * supervisor installed it before starting the worker. */
	if (role == SELF_WORKER && S.supervisor_on)
		return 0;
	int rc = install(&S.f[role]);
	if (rc == 0 && role == SELF_SUPERVISOR)
		S.supervisor_on = true;
	return rc;
}

int self_filter_install_role(enum self_role role, bool trap_handler, struct errbuf *e)
{
	if ((unsigned)role >= SELF_NROLES)
		return err_set(e, "seccomp: no thread role %d", (int)role);
	struct sandbox_filter f;
	if (build(role, &f, e) != 0)
		return -1;
	if (trap_handler && install_handler(e) != 0) {
		sandbox_filter_free(&f);
		return -1;
	}
	thread_role = role;
	int rc = install(&f);
	int err = errno;
	sandbox_filter_free(&f);
	if (rc != 0)
		return err_set(e, "seccomp: installing the %s filter: %s", role_names[role],
			       strerror(err));
	return 0;
}
