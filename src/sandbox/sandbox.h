/*
 * sandbox.h: starting a parallel VMM as an isolated process.
 *
 * sandbox_spawn forks (from a thread that lives as long as the child should:
 * PR_SET_PDEATHSIG is tied to the thread that forks) and, in the child,
 * before it executes the VMM's program, with async-signal-safe calls only:
 *   - moves the inherited descriptors to 0..2 and HS_SOCKET_FD and closes
 *     every other one (close_range): no KVM descriptor, no guest RAM but the
 *     windows that the handshake passes later;
 *   - resets every signal to its default action, ignores SIGINT, SIGQUIT
 *     and SIGTSTP (the terminal's signals are the main VMM's to handle; it
 *     stops its VMMs itself), and unblocks every signal;
 *   - with a Landlock confinement (req.landlock), builds its ruleset while
 *     still privileged (the rules name files by path);
 *   - drops to an unprivileged uid and gid (setgroups(0), setresgid,
 *     setresuid), which clears every capability, and clears the ambient
 *     capabilities in any case; with uid_per_pid, the uid and gid are the
 *     request's plus the child's own pid, so that no two live processes
 *     share them (see sandbox_spawn);
 *   - sets no_new_privs and PR_SET_PDEATHSIG(SIGKILL) (after the uid change,
 *     which would clear it), and exits if the parent is already gone;
 *   - enters its own Landlock domain (landlock_restrict_self);
 *   - installs the stage-1 seccomp filter (prepared before fork as BPF);
 *   - executes the program; a failure is reported on a close-on-exec pipe.
 *
 * Two seccomp stages. Stage 1, installed before exec, admits what the
 * dynamic loader, libc start-up and the VMM library's set-up need
 * (execve, read-only open/openat, mmap of descriptors, sendmsg/recvmsg on
 * the setup socket, building and installing stage 2) and nothing that
 * reaches out (no socket, connect, ptrace, process_vm_*, kexec, bpf, mount,
 * clone/fork, memfd_create, no ioctl but TCGETS on 0-2 for isatty ...).
 * Stage 2, which the VMM library installs once set-up is done, removes
 * execve, every open, descriptor mappings and executable memory: from then
 * on the process can only serve requests (read/write on the descriptors it
 * holds, futex, poll, anonymous memory, clocks, exit). Filters stack: stage
 * 2 only narrows stage 1. A forbidden system call, or one made through a
 * foreign ABI (int 0x80, x32), kills the process with SIGSYS
 * (SECCOMP_RET_KILL_PROCESS), which the main VMM sees as a crash of that
 * VMM. Signals: tgkill on the process itself only (abort, raise), whatever
 * its uid. filter.c lists every admitted call and why.
 *
 * Stage 2 confines a VMM that was compromised while serving; a hostile
 * program simply does not install it. Stage 1, the Landlock domain (which
 * refuses the paths stage 1 cannot see: every file but the loader's) and the
 * uid are what every VMM program is held to, from its first instruction
 * (docs/security.md, "Identity and isolation of parallel VMMs").
 *
 * Sanitizer builds (VMMUX_SANITIZED, defined by the build when b_sanitize
 * is set): the AddressSanitizer and UBSan runtimes' needs at start-up and
 * while serving are within the stages, except for writing an error report:
 * the runtimes then read /proc/self/exe, cmdline, environ and maps, so
 * stage 2 of a sanitized build keeps read-only opens and readlink (the one
 * difference between the builds). Sandboxed children must run without
 * leak detection (LeakSanitizer reads /proc and stops the world at exit,
 * which the filters forbid) and without symbolization (it maps the
 * binaries: frames keep module+offset, for addr2line): sandbox_env sets
 * ASAN_OPTIONS=detect_leaks=0:symbolize=0 and UBSAN_OPTIONS=symbolize=0.
 */
#ifndef VMMUX_SANDBOX_SANDBOX_H
#define VMMUX_SANDBOX_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* Placeholder for "the installing process's pid" in a filter's program:
 * above PID_MAX_LIMIT, so never a real pid. */
#define SANDBOX_SELF_PID 0x7ffff5e1u
#define SANDBOX_SELF_MAX 8

/* A seccomp program in memory (BPF exported from libseccomp). */
struct sandbox_filter {
	struct sock_fprog prog;
	struct sock_filter *insns; /* owned */
	/* instructions that compare with SANDBOX_SELF_PID: install writes
	 * the installing process's pid into them */
	unsigned nself;
	uint16_t self_at[SANDBOX_SELF_MAX];
};

/*
 * Build the stage-1 (pre-exec) and stage-2 (post-setup) filters (x86-64
 * only). Stage 2 allows read, write and poll on any descriptor the process
 * holds: it can no longer obtain new ones. Building stage 2 is allowed under
 * stage 1 (the VMM library does it in the sandboxed process). 0, or -1 with
 * a message in e.
 */
int sandbox_filter_stage1(struct sandbox_filter *f, struct errbuf *e);
int sandbox_filter_stage2(struct sandbox_filter *f, struct errbuf *e);
void sandbox_filter_free(struct sandbox_filter *f);

/*
 * The system calls either stage admits in this build (with or without
 * argument conditions), by number: the calls a forked VMM may make under
 * the filter of the thread that forked it (sandbox/self_filter.h). Fills
 * NRS up to CAP, distinct, and returns how many there are.
 */
size_t sandbox_filter_calls(int *nrs, size_t cap);

/*
 * A new libseccomp filter context (a scmp_filter_ctx) whose default action
 * is DEF_ACTION (an SCMP_ACT_*), for x86-64 only; a call from another ABI
 * kills the process. NULL with a message naming WHAT when it cannot be made.
 */
void *sandbox_filter_ctx(uint32_t def_action, const char *what, struct errbuf *e);

/*
 * The BPF program of libseccomp filter context CTX (a scmp_filter_ctx) into
 * F (F->insns allocated, F->prog set; F->nself left as it is), read back
 * through a pipe: one byte written after the program proves it whole. 0, or
 * -1 with a message naming WHAT ("stage 1", a thread role).
 */
int sandbox_filter_export(void *ctx, struct sandbox_filter *f, const char *what, struct errbuf *e);

/*
 * Install F on the calling thread and its future children (and set
 * no_new_privs first). The self-only rules (tgkill) are bound to the
 * calling process: its pid is written into F's program (F->insns is the
 * caller's memory; after fork, the child's own copy, so that
 * sandbox_spawn never changes the caller's filter). Async-signal-safe.
 * 0, or -1 with errno (EINVAL: F is not a built filter).
 */
int sandbox_filter_install(const struct sandbox_filter *f);

/*
 * Landlock (landlock.c): the files a program may read and execute, from its
 * execve to its exit, whatever it does. Each spawned child enters a Landlock
 * domain of its own, in which the kernel refuses:
 *   - every open of a path outside the listed files (and of a listed file
 *     for writing), every file creation, removal, rename or link, every
 *     truncate and device ioctl (as the host's ABI knows them);
 *   - every ptrace-mode access to a process outside the domain: ptrace,
 *     process_vm_readv/writev, /proc/PID/mem, maps, environ, fd (any ABI);
 *   - with ABI 6 and later, every signal to a process outside the domain,
 *     and every connection to an abstract unix socket outside it;
 *   - with ABI 4 and later, every TCP bind and connect.
 * The listed files are the program itself, the dynamic loader its PT_INTERP
 * names, the objects that loader maps for it (asked of the loader:
 * "ld.so --list PROGRAM") and /etc/ld.so.cache (and ld.so.preload, where it
 * exists); a static program gets its own file only; a script gets the
 * system's directories (/usr, /bin, /lib, /lib64) for its interpreter. In
 * sanitized builds also /proc, for the runtimes (sandbox.h, top).
 * Each file is read and executed, never written.
 */
#define SANDBOX_LL_FILES_MAX 48
struct sandbox_landlock {
	int abi; /* the host's Landlock ABI version (>= 1) */
	unsigned nfiles;
	size_t used;				 /* bytes of names */
	uint16_t at[SANDBOX_LL_FILES_MAX];	 /* each file's name: names + at[i] */
	unsigned char dir[SANDBOX_LL_FILES_MAX]; /* a directory (rules beneath it) */
	char names[8192];
};

/* The host's Landlock ABI version, or 0 when it has none (or it is off). */
int sandbox_landlock_abi(void);

/*
 * Fill LL with the files PROGRAM needs (above): runs its loader to list
 * them. 0, or -1 with a message in e ("Landlock is not available ...",
 * "/x/y: library libz.so.1 => not found", ...). Not async-signal-safe.
 */
int sandbox_landlock_prepare(struct sandbox_landlock *ll, const char *program, struct errbuf *e);

/* Add one more file or directory (absolute PATH, which must exist) to LL. */
int sandbox_landlock_add(struct sandbox_landlock *ll, const char *path, struct errbuf *e);

/*
 * In the child (async-signal-safe, raw system calls): create the ruleset of
 * LL (its descriptor, close-on-exec, or -1 with errno), and enter it
 * (landlock_restrict_self; needs no_new_privs or CAP_SYS_ADMIN; 0 or -1).
 */
int sandbox_landlock_ruleset(const struct sandbox_landlock *ll);
int sandbox_landlock_restrict(int ruleset);

/*
 * The uids and gids of parallel VMMs run by a privileged vmmux: this base
 * plus the VMM process's pid (uid_per_pid). pids are below 2^22
 * (PID_MAX_LIMIT), so the range is 0x70000000-0x703fffff, above the ranges
 * that systemd hands out to users, containers (up to 0x6fffffff) and
 * dynamic users, and below its foreign-uid range (0x7ffe0000).
 */
#define SANDBOX_UID_BASE  0x70000000u
#define SANDBOX_PID_LIMIT 0x400000u

struct sandbox_spawn_req {
	const char *path;  /* the program */
	char *const *argv; /* NULL-terminated */
	char *const *envp; /* NULL-terminated: see sandbox_env */
	int stdin_fd;	   /* descriptors for 0, 1, 2 (-1: /dev/null) */
	int stdout_fd;
	int stderr_fd;
	int setup_sock; /* becomes HS_SOCKET_FD (-1: none, 3 stays closed) */
	bool drop_uid;	/* false when vmmux does not run as root */
	uid_t uid;	/* with drop_uid: neither 0 nor -1 */
	gid_t gid;
	/* with drop_uid: the uid and gid are uid + pid and gid + pid, pid the
	 * child's own (each below uid + SANDBOX_PID_LIMIT) */
	bool uid_per_pid;
	int cpu; /* pin the program to this CPU (-1: where vmmux may run) */
	const struct sandbox_filter *stage1;
	/* the program's Landlock confinement (NULL: none) */
	const struct sandbox_landlock *landlock;
};

/*
 * Start the program as the request says. Returns the child's pid and sets
 * *pidfd (pidfd_open, close-on-exec), or -1 with a message in e naming the
 * program and the step that failed ("cannot execute /x/y: No such file or
 * directory", "starting /x/y: setresuid(61001): Operation not permitted").
 *
 * A request that would run the program as root (drop_uid false while
 * vmmux runs as root) is refused. With uid_per_pid the child's uid is unique
 * among the live processes of vmmux's PID namespace by construction (a pid
 * is not handed out again until its process is reaped; a VMM cannot fork),
 * across every vmmux instance, with nothing to allocate or release. With drop_uid false the program
 * shares the caller's uid, and stage 1 lets it open files read-only: the caller is made
 * non-dumpable (PR_SET_DUMPABLE 0), so that /proc/PID/mem and /proc/PID/fd/N (guest memory) stay
 * out of the program's reach. For the same reason each VMM should make itself non-dumpable before
 * it receives its windows (stage 1 admits PR_SET_DUMPABLE).
 *
 * The child is the caller's to reap (waitid with P_PIDFD, or waitpid);
 * SIGCHLD must not be ignored (the child would be reaped behind the
 * caller's back). Safe to call from a multi-threaded process; concurrent
 * calls share no state, and the caller's filter is never modified.
 */
pid_t sandbox_spawn(const struct sandbox_spawn_req *req, int *pidfd, struct errbuf *e);

/*
 * The environment to give a sandboxed VMM (req.envp): a minimal one, so
 * that nothing of vmmux's environment leaks to an untrusted program: PATH;
 * with log timestamps on (util/log.h), VMMUX_LOG_ORIGIN, the clock the
 * VMM's log lines are stamped from; in sanitized builds also ASAN_OPTIONS
 * (the caller's, followed by detect_leaks=0:symbolize=0) and UBSAN_OPTIONS
 * (the caller's, followed by symbolize=0); options too long to keep are
 * replaced by those alone. A caller that builds its own environment for a
 * sanitized build must add ASAN_OPTIONS=detect_leaks=0:symbolize=0 and
 * UBSAN_OPTIONS=symbolize=0.
 * Options that make a runtime write files (log_path) cannot work in the
 * sandbox. Fills ENV (the caller's) and returns env->envp.
 */
#define SANDBOX_ENV_OPTS_MAX 1024
struct sandbox_env {
	char *envp[5];
	char path[64];
	char log_origin[48]; /* with log timestamps on: LOG_ORIGIN_ENV (util/log.h) */
	char asan[SANDBOX_ENV_OPTS_MAX];
	char ubsan[SANDBOX_ENV_OPTS_MAX];
};
char *const *sandbox_env(struct sandbox_env *env);

#endif
