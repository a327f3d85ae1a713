/*
 * update.c: live update (update.h, docs/snapshot.md "Live update").
 */
#include "snapshot/update.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "sandbox/self_exec.h"
#include "snapshot/format.h"
#include "snapshot/snapshot.h"
#include "transport/transport.h"
#include "util/log.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

extern char **environ;

#define UPDATE_PAUSE_NS 5000000000ull
#define CHECK_OK	"vmmux update-check: ok"
#define CHECK_REFUSED	"vmmux update-check: refused: "

/* ---- parallel VMMs handed over (their processes keep running) ---- */

/* Every parallel VMM given back (pvmm_handover_release). */
static void pvmms_release(struct snapshot_handover *h)
{
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v != NULL && v->placement == VMM_PARALLEL)
			pvmm_handover_release(v);
	}
	h->npvmm = 0;
}

/* Every parallel VMM's irqfds detached (pvmm_irqs_detach), before the
 * pause that ends in the execve. */
static int pvmms_detach(struct errbuf *e)
{
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v != NULL && v->placement == VMM_PARALLEL && pvmm_irqs_detach(v, e) < 0)
			return -1;
	}
	return 0;
}

/* Take every parallel VMM from the supervisor's watch and describe it in
 * H, and the in-process VMMs' descriptors and the dispatcher's queue (the
 * machine paused); -1 with the reason (the caller releases them:
 * pvmms_release). */
static int pvmms_take(struct snapshot_handover *h, struct errbuf *e)
{
	h->npvmm = 0;
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v == NULL || v->placement != VMM_PARALLEL)
			continue;
		if (h->npvmm == SNAP_HO_PVMMS_MAX)
			return err_set(e, "more than %u parallel VMMs", SNAP_HO_PVMMS_MAX);
		if (pvmm_handover_take(v, &h->pvmm[h->npvmm], e) < 0)
			return -1;
		h->npvmm++;
	}
	/* the in-process VMMs' input and output, taken as they are */
	h->nio = 0;
	for (size_t id = 1; id < vmm_count() && h->nio < SNAP_HO_PVMMS_MAX; id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v == NULL || v->placement == VMM_PARALLEL || (v->in_fd < 0 && v->out_fd < 0))
			continue;
		snprintf(h->io[h->nio].name, sizeof(h->io[h->nio].name), "%s", v->name);
		h->io[h->nio].in_fd = v->in_fd;
		h->io[h->nio].out_fd = v->out_fd;
		h->nio++;
	}
	/* and the events its dispatcher, holding for the pause, has not taken,
	 * and when the watchdog expires */
	h->nhost = machine_host_queue_copy(h->host, h->host_src, SNAP_HO_HOSTQ_MAX, &h->watchdog,
					   &h->watchdog_at);
	return 0;
}

/* What cannot be handed over yet: refused before anything changes. */
static int refusable(struct errbuf *e)
{
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v != NULL && v->placement == VMM_PARALLEL && pvmm_handover_refusal(v, e) < 0)
			return -1;
	}
	const struct vmmux_config *c = machine_config();
	for (size_t i = 0; c->hvt.on && i < c->hvt.ndev; i++)
		if (c->hvt.dev[i].net)
			return err_set(e,
				       "the hvt net device '%s' holds the tap '%s', which a new "
				       "program cannot open while this one has it",
				       c->hvt.dev[i].name, c->hvt.dev[i].target);
	return 0;
}

/*
 * The check: `PROGRAM run --update-check-fd 3` with STATE on descriptor 3
 * and its standard output on a pipe, spawned on the exec thread
 * (spawn_check), its answer read on the caller's (finish_check).
 */
struct check {
	const char *program;
	int state;
	pid_t pid;   /* the check's process */
	int out;     /* the read end of its standard output */
	int spawned; /* posix_spawn's result */
};

/* The spawn of the check (on the exec thread: the check inherits its
 * filters, the base layer only); 0, or -1 with C->spawned set. */
static int spawn_check(void *arg)
{
	struct check *c = arg;
	int p[2];
	c->pid = -1;
	c->out = -1;
	if (pipe2(p, O_CLOEXEC) < 0) {
		c->spawned = errno;
		return -1;
	}
	const char *program = c->program;
	int state = c->state;
	int dup_state = fcntl(state, F_DUPFD_CLOEXEC, 10);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, dup_state, 3);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	char *argv[] = {(char *)program, "run", "--update-check-fd", "3", NULL};
	pid_t pid = -1;
	int rc = dup_state < 0 ? errno : posix_spawn(&pid, program, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	if (dup_state >= 0)
		close(dup_state);
	c->spawned = rc;
	c->pid = pid;
	if (rc != 0) {
		close(p[0]);
		return -1;
	}
	c->out = p[0];
	return 0;
}

/* The check's answer, read on the calling thread (the exec thread waits for
 * nobody): 0 when it printed CHECK_OK and exited 0, else -1 with what it
 * said or did. */
static int finish_check(struct check *c, struct errbuf *e)
{
	const char *program = c->program;
	pid_t pid = c->pid;
	char out[512];
	size_t n = 0;
	uint64_t deadline = tp_now_ns() + UPDATE_CHECK_NS;
	bool timed_out = false, ending = false;
	for (;;) {
		uint64_t now = tp_now_ns();
		if (now >= deadline) {
			timed_out = true;
			break;
		}
		if (machine_stopping()) { /* the run ends: no need to wait */
			ending = true;
			break;
		}
		uint64_t slice = deadline - now < 100000000ull ? deadline - now : 100000000ull;
		struct pollfd pf = {.fd = c->out, .events = POLLIN};
		int r = poll(&pf, 1, (int)(slice / 1000000 + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t got = read(c->out, out + n, sizeof(out) - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
		if (n == sizeof(out) - 1)
			break;
	}
	close(c->out);
	if (timed_out || ending)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	out[n] = '\0';
	char *nl = strchr(out, '\n');
	if (nl != NULL)
		*nl = '\0';
	if (ending)
		return err_set(e, "the run is ending");
	if (timed_out)
		return err_set(e, "%s: its check of the state did not end within %llu s", program,
			       UPDATE_CHECK_NS / 1000000000ull);
	if (strncmp(out, CHECK_REFUSED, strlen(CHECK_REFUSED)) == 0)
		return err_set(e, "%s refused the state: %s", program, out + strlen(CHECK_REFUSED));
	if (strcmp(out, CHECK_OK) != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_set(e,
			       "%s is not a vmmux that takes a live update: `%s run "
			       "--update-check-fd 3` printed '%.80s' and %s %d",
			       program, program, out,
			       WIFEXITED(status) ? "exited with status" : "was killed by signal",
			       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return 0;
}

/* The check's spawn and the execve run on the exec thread (self_exec.h):
 * under the base layer alone, never under this thread's role filter, and
 * the execve from the thread that forked the parallel VMMs. */
struct exec_job {
	const char *program;
	char **argv;
	int err; /* the execve's errno */
};

/*
 * The old address space, held past the execve. An execve tears the old
 * address space down before the new program starts, and with guest RAM
 * mapped (its page tables' entries to clear) that took 6 to 12 ms here,
 * inside the pause. A child that shares the address space (CLONE_VM, not a
 * thread: the execve does not end it) keeps it alive, so that the execve
 * only drops a reference; the child keeps the old VM's descriptors too
 * (its teardown is as costly) and closes every other one at once (a
 * socket the new program binds again, a gdb stub's, must be gone, and a
 * peer waiting for an end of file must get it as before); it waits for
 * the end of a close-on-exec pipe, which the execve closes, and exits
 * (the execve waits until it has closed the others):
 * both are torn down in its exit, on the other CPU, while the new program
 * starts. It has no exit signal (no SIGCHLD to interrupt the new program's
 * system calls). The new program reaps it, and the holders of earlier
 * updates not reaped yet: their pids are in UPDATE_REAP_ENV
 * (update_reap_take), which an older vmmux ignores (they then stay
 * zombies until that program's end). The child makes raw system calls
 * only (it shares the exec thread's thread-local storage, errno
 * included), and is not made in sanitized builds (whose runtimes would
 * see a task they do not know).
 */
#define UPDATE_REAP_ENV "VMMUX_UPDATE_REAP"
#define REAP_MAX	8

#ifndef VMMUX_SANITIZED
#define HOLDER_STACK_SIZE 16384
#define HOLDER_KEEP_MAX	  (SNAP_VCPUS_MAX + 3) /* the two pipes, the VM, its vCPUs */

/* What the child keeps: the hold pipe's read end, the ack pipe's write
 * end, the VM and its vCPUs, in increasing order (set before the clone,
 * read by the child). */
static int holder_keep[HOLDER_KEEP_MAX];
static unsigned holder_nkeep;
static int holder_fd[2];  /* the execve closes [1]; the child reads [0] */
static int holder_ack[2]; /* the child says on [1] it has closed the rest */

static long raw_syscall3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static int holder_main(void *arg)
{
	(void)arg;
	/* every descriptor but those kept: the ranges between them */
	long from = 0;
	for (unsigned i = 0; i < holder_nkeep; i++) {
		if (holder_keep[i] > from)
			raw_syscall3(SYS_close_range, from, holder_keep[i] - 1, 0);
		from = holder_keep[i] + 1;
	}
	raw_syscall3(SYS_close_range, from, ~0u, 0);
	char c = 'x';
	raw_syscall3(SYS_write, holder_ack[1], (long)&c, 1);
	raw_syscall3(SYS_close, holder_ack[1], 0, 0);
	while (raw_syscall3(SYS_read, holder_fd[0], (long)&c, 1) > 0)
		;
	raw_syscall3(SYS_exit_group, 0, 0, 0);
	return 0;
}

static int cmp_fd(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}
#endif

struct holder {
	pid_t pid; /* -1: none */
	void *stack;
	char **envp; /* environ with UPDATE_REAP_ENV=pids, or environ */
};

/* Start the holder (exec thread); on failure none, and the execve tears
 * the address space down itself, as without. */
static void holder_start(struct holder *h)
{
	h->pid = -1;
	h->stack = NULL;
	h->envp = environ;
#ifndef VMMUX_SANITIZED
	struct vm *vm = machine_vm();
	size_t n = 0;
	while (environ[n] != NULL)
		n++;
	char **envp = calloc(n + 2, sizeof(char *));
	void *stack = malloc(HOLDER_STACK_SIZE);
	holder_fd[0] = holder_fd[1] = -1;
	if (envp == NULL || stack == NULL || vm->ncpus + 3 > HOLDER_KEEP_MAX ||
	    pipe2(holder_fd, O_CLOEXEC) < 0 || pipe2(holder_ack, O_CLOEXEC) < 0)
		goto fail;
	holder_nkeep = 0;
	holder_keep[holder_nkeep++] = holder_fd[0];
	holder_keep[holder_nkeep++] = holder_ack[1];
	holder_keep[holder_nkeep++] = vm->vm_fd;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].fd >= 0)
			holder_keep[holder_nkeep++] = vm->vcpus[i].fd;
	qsort(holder_keep, holder_nkeep, sizeof(int), cmp_fd);
	pid_t pid = clone(holder_main, (char *)stack + HOLDER_STACK_SIZE, CLONE_VM, NULL);
	/* Its other descriptors are closed before the execve, not after: a
	 * socket the new program binds again must be gone by then (a wait of
	 * a context switch; an end of file if the child died). */
	close(holder_ack[1]);
	if (pid >= 0) {
		char c;
		while (read(holder_ack[0], &c, 1) < 0 && errno == EINTR)
			;
	}
	close(holder_ack[0]);
	if (pid < 0)
		goto fail;
	/* this holder and the earlier ones not reaped yet */
	pid_t reap[REAP_MAX];
	unsigned nreap = machine_leftovers(reap, REAP_MAX - 1);
	reap[nreap++] = pid;
	static char entry[sizeof(UPDATE_REAP_ENV) + REAP_MAX * 12];
	size_t at = (size_t)snprintf(entry, sizeof(entry), "%s=", UPDATE_REAP_ENV);
	for (unsigned i = 0; i < nreap && at < sizeof(entry); i++)
		at += (size_t)snprintf(entry + at, sizeof(entry) - at, "%s%d", i ? "," : "",
				       (int)reap[i]);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) /* (one inherited is stale: dropped) */
		if (strncmp(environ[i], UPDATE_REAP_ENV "=", sizeof(UPDATE_REAP_ENV)) != 0)
			envp[k++] = environ[i];
	envp[k] = entry;
	h->pid = pid;
	h->stack = stack;
	h->envp = envp;
	return;
fail:
	if (holder_fd[0] >= 0) {
		close(holder_fd[0]);
		close(holder_fd[1]);
	}
	free(envp);
	free(stack);
#endif
}

/* The execve failed: the holder ends (killed: whatever stopped it) and is
 * reaped. */
static void holder_end(struct holder *h)
{
	if (h->pid < 0)
		return;
	kill(h->pid, SIGKILL);
	while (waitpid(h->pid, NULL, __WALL) < 0 && errno == EINTR)
		;
#ifndef VMMUX_SANITIZED
	close(holder_fd[0]);
	close(holder_fd[1]);
#endif
	free(h->stack);
	free(h->envp);
	h->pid = -1;
}

unsigned update_reap_take(pid_t *pids, unsigned max)
{
	const char *s = getenv(UPDATE_REAP_ENV);
	unsigned n = 0;
	while (s != NULL && *s != '\0' && n < max) {
		char *end = NULL;
		long pid = strtol(s, &end, 10);
		if (end == s || pid <= 0 || pid > INT32_MAX || (*end != ',' && *end != '\0'))
			break;
		pids[n++] = (pid_t)pid;
		s = *end == ',' ? end + 1 : end;
	}
	unsetenv(UPDATE_REAP_ENV);
	return n;
}

static int execve_job(void *arg)
{
	struct exec_job *j = arg;
	struct holder h;
	holder_start(&h);
	execve(j->program, j->argv, h.envp);
	j->err = errno;
	holder_end(&h);
	return -1;
}

/* Run `PROGRAM run --update-check-fd 3` on STATE: 0 when it answers
 * CHECK_OK, else -1 with what it said or did. */
static int run_check(const char *program, int state, struct errbuf *e)
{
	struct check c = {.program = program, .state = state, .spawned = 0};
	if (self_exec_call(spawn_check, &c) < 0) {
		if (c.spawned == 0)
			return err_set(e, "the exec thread does not run");
		return err_set(e, "%s: cannot start it: %s", program, strerror(c.spawned));
	}
	return finish_check(&c, e);
}

static void set_cloexec(int fd, bool on)
{
	if (fd >= 0)
		(void)fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0);
}

/* INHERITED: every descriptor H names, and STATE, kept across the execve
 * (FD_CLOEXEC off), else closed by it again (on). The standard streams
 * are left as they are. */
static void set_inherited(const struct snapshot_handover *h, int state, bool inherited)
{
	bool cloexec = !inherited;
	set_cloexec(state, cloexec);
	set_cloexec(h->api_fd, cloexec);
	set_cloexec(h->client_fd, cloexec);
	for (unsigned k = 0; k < h->npieces; k++)
		set_cloexec(h->pieces[k].fd, cloexec);
	for (unsigned k = 0; k < h->npvmm; k++) {
		int fds[PVMM_HANDOVER_FDS];
		unsigned n = pvmm_handover_fds(&h->pvmm[k], fds);
		for (unsigned i = 0; i < n; i++)
			set_cloexec(fds[i], cloexec);
	}
	for (unsigned k = 0; k < h->nio; k++) {
		if (h->io[k].in_fd > STDERR_FILENO)
			set_cloexec(h->io[k].in_fd, cloexec);
		if (h->io[k].out_fd > STDERR_FILENO)
			set_cloexec(h->io[k].out_fd, cloexec);
	}
}

int update_run(const char *program, int client_fd, const char *reply_id, struct errbuf *e)
{
	char self[PATH_MAX];
	if (program == NULL || program[0] == '\0') {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return err_set(e, "/proc/self/exe: %s", strerror(errno));
		self[n] = '\0';
		if (n > 10 && strcmp(self + n - 10, " (deleted)") == 0)
			return err_set(e,
				       "the running program %s was removed or replaced on disk: "
				       "name the new one with --program",
				       self);
		program = self;
	}
	if (program[0] != '/')
		return err_set(e, "program '%s': not an absolute path", program);
	if (access(program, X_OK) < 0)
		return err_set(e, "program %s: %s", program, strerror(errno));
	if (refusable(e) < 0)
		return -1;
	int state = memfd_create("vmmux-update-state", MFD_CLOEXEC);
	if (state < 0)
		return err_set(e, "memfd_create: %s", strerror(errno));

	static struct snapshot_handover h; /* large: one update at a time (the worker) */
	memset(&h, 0, sizeof(h));
	h.pause_ns = tp_now_ns();
	h.api_fd = api_listen_fd();
	h.client_fd = client_fd;
	h.reply_id = reply_id;
	/* First the new program checks a state written in a short pause, the
	 * guest running meanwhile; then the state is written again in the
	 * pause that lasts until the new program resumes the vCPUs. Live
	 * changes (this worker's) cannot come in between: the configuration
	 * the check saw is the one handed over. */
	struct snapshot_result r;
	uint64_t t_write = tp_now_ns();
	if (machine_pause(UPDATE_PAUSE_NS, e) < 0) {
		close(state);
		return err_prefix(e, "pausing the machine");
	}
	/* a run restored from a snapshot: its RAM becomes memfds first */
	struct guest_mem *m = &machine_vm()->mem;
	int rc = snapshot_memory_to_memfds(m, e);
	h.npieces = m->npieces;
	for (unsigned k = 0; k < m->npieces; k++) {
		h.pieces[k].gpa = m->pieces[k].gpa;
		h.pieces[k].size = m->pieces[k].size;
		h.pieces[k].fd = m->pieces[k].memfd;
	}
	if (rc == 0 && (rc = pvmms_take(&h, e)) == 0)
		rc = snapshot_write_handover(state, &h, &r, e);
	machine_resume(); /* the guest runs on while the VMMs are given back */
	pvmms_release(&h);
	uint64_t t_check = tp_now_ns();
	if (rc == 0)
		rc = run_check(program, state, e);
	uint64_t t_checked = tp_now_ns();
	if (rc == 0 && (rc = pvmms_detach(e)) < 0)
		pvmms_release(&h);
	if (rc == 0) {
		h.pause_ns = tp_now_ns();
		rc = machine_pause(UPDATE_PAUSE_NS, e);
		if (rc < 0) {
			err_prefix(e, "pausing the machine");
			pvmms_release(&h);
		} else if ((rc = pvmms_take(&h, e)) < 0 ||
			   (rc = snapshot_write_handover(state, &h, &r, e)) < 0) {
			machine_resume();
			pvmms_release(&h);
		}
	}
	if (rc < 0) {
		close(state);
		log_warn("live update refused: %s (the guest runs on)", e->msg);
		return -1;
	}
	/* From here to the execve the run's signals stay pending, for the new
	 * program; one the supervisor read already ends the run instead. */
	machine_signals_hold(true);
	if (machine_stopping()) {
		machine_signals_hold(false);
		machine_resume();
		pvmms_release(&h);
		close(state);
		err_set(e, "the run is ending");
		log_warn("live update refused: %s", e->msg);
		return -1;
	}
	log_info("live update: state written in %llu us (%llu bytes), %s checked it in %llu "
		 "us; exec",
		 (unsigned long long)((t_check - t_write) / 1000), (unsigned long long)r.file_bytes,
		 program, (unsigned long long)((t_checked - t_check) / 1000));
	char fdarg[16];
	snprintf(fdarg, sizeof(fdarg), "%d", state);
	char *argv[] = {(char *)program, "run", "--resume-from-fd", fdarg, NULL};
	set_inherited(&h, state, true);
	fflush(NULL);
	vmm_tty_handover(false);
	struct exec_job job = {.program = program, .argv = argv, .err = 0};
	int err = machine_on_main(execve_job, &job) < 0 && job.err != 0 ? job.err : ESRCH;
	machine_signals_hold(false);
	vmm_tty_handover(true);
	set_inherited(&h, state, false);
	machine_resume();
	pvmms_release(&h);
	close(state);
	err_set(e, "execve %s: %s", program, strerror(err));
	log_warn("live update refused: %s (the guest runs on)", e->msg);
	return -1;
}

void update_resumed(const struct snap_view *v)
{
	uint64_t paused = tp_now_ns() - v->ho_pause_ns;
	log_info("live update: the vCPUs resume %llu us after they were paused (pid %d)",
		 (unsigned long long)(paused / 1000), (int)getpid());
	if (v->ho_client_fd < 0)
		return;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	json_t *id = json_loadb(v->ho_reply_id.p, v->ho_reply_id.len, JSON_DECODE_ANY, NULL);
	json_t *r = json_pack("{s:o, s:b, s:{s:s, s:i, s:I}}", "id", id ? id : json_null(), "ok", 1,
			      "result", "program", self, "pid", (int)getpid(), "pause_ns",
			      (json_int_t)paused);
	char *reply = r ? json_dumps(r, JSON_COMPACT) : NULL;
	json_decref(r);
	size_t len = reply ? strlen(reply) : 0;
	char *line = reply ? malloc(len + 2) : NULL;
	if (line != NULL) {
		memcpy(line, reply, len);
		line[len] = '\n';
		line[len + 1] = '\0';
	}
	if (line == NULL ||
	    send(v->ho_client_fd, line, len + 1, MSG_NOSIGNAL) != (ssize_t)(len + 1))
		log_warn("live update: the reply to the client that asked was not sent: %s",
			 line ? strerror(errno) : "out of memory");
	free(line);
	free(reply);
	close(v->ho_client_fd);
}

int update_check_open(int fd, int *argc, char ***argv, struct errbuf *e)
{
	const char *cwd;
	if (snapshot_restore_open_fd(fd, "the live update's state", argc, argv, &cwd, e) < 0)
		return -1;
	const struct snap_view *v;
	if (!snapshot_restore_handover(&v))
		return err_set(e, "the live update's state: section HANDOVER: missing");
	return 0;
}
