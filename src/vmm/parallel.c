/*
 * parallel.c: the main VMM's side of a parallel VMM (parallel.h).
 */
#include "vmm/parallel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event/event.h"
#include "sandbox/sandbox.h"
#include "transport/control.h"
#include "transport/handshake.h"
#include "transport/transport.h"
#include "route/router.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/proc.h"
#include "vm/ioregion.h"
#include "vm/vm.h"
#include "vmm/machine.h"

#define SETUP_TIMEOUT_MS   5000
#define SETUP_EXIT_WAIT_MS 2000 /* a program that hung up its set-up: its exit */
#define STOP_GRACE_MS	   200
#define BACKOFF_MIN_NS	   10000000ull	  /* 10 ms */
#define BACKOFF_MAX_NS	   1000000000ull  /* 1 s */
#define HEALTHY_NS	   10000000000ull /* 10 s up: the backoff starts over */
#define RESTARTS_WINDOW_NS 60000000000ull /* at most RESTARTS_MAX per minute */
#define RESTARTS_MAX	   20
/*
 * The default spin budget of a parallel VMM's transport, chosen from
 * bench/transport (this host, round trip p50): a spin hand-off across CPUs
 * costs 0.15-0.7 us, a blocking wake-up 31-54 us, so each side spins for
 * about as long as one wake-up would cost and sleeps after that; a side never
 * spins while the other last ran on its own CPU.
 */
#define SPIN_DEFAULT_NS 50000

__thread unsigned pvmm_thread_slot;

enum pvmm_owner {
	OWN_NONE = 0, /* the supervisor watches the pidfd and the schedule */
	OWN_SUPER,    /* the supervisor, inside one of its short steps */
	OWN_WORKER,   /* a set-up worker (setup_main) */
	OWN_CONTROL,  /* the control thread (stop, resume, swap) */
};

#define STDERR_ROUND_LINES 64u	      /* a VMM's stderr lines printed per supervisor round */
#define STDERR_ROUND_BYTES (8u << 10) /* and bytes */

enum pvmm_state {
	PV_STARTING = 0,
	PV_UP,
	PV_DOWN,   /* the process is gone; a restart may be scheduled */
	PV_FAILED, /* given up: too many restarts, or it could not start */
	PV_STOPPED,
};

struct pvmm {
	struct vmm *v;
	struct tp_region region; /* outlives the processes: pending requests survive */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* state changes */
	_Atomic int state;
	_Atomic bool dead;	     /* waiters stop waiting for the current process */
	_Atomic uint64_t generation; /* bumped when a process is reaped */
	/* Written by whichever thread manages the process (under lock), read
	 * without it by vmms.list, statistics and the CPU sampling: atomics. */
	_Atomic pid_t pid;
	int pidfd;
	int sock; /* vmmux's end of the set-up socket: non-blocking */
	/* Which thread manages the process now (under lock): OWN_NONE, the
	 * supervisor may reap and restart it; otherwise the owner alone
	 * spawns, sets up, stops, reaps (see own_try, own_wait). */
	int owner;
	pthread_mutex_t async_lock; /* one consumer of the async ring at a time */
	int errfd;		    /* the read end of its stderr pipe (non-blocking), or -1 */
	char errline[256];
	size_t errlen;
	unsigned err_lines;		    /* lines printed this supervisor round */
	size_t err_bytes;		    /* bytes printed this supervisor round */
	uint64_t err_dropped;		    /* lines over the round's budget, not reported yet */
	unsigned setup_pending, setup_busy; /* re-delivered by the restart under way */
	bool restarting;		    /* a vmm.restart between its stop and its start: waiters
					     * keep their requests pending for the new process */
	int fault_reason;		    /* why the current process is being killed */
	char fault_why[160];
	_Atomic unsigned restarts; /* read without the lock (vmms.list, statistics) */
	unsigned recent_restarts;
	uint64_t window_start_ns;
	_Atomic uint64_t up_since_ns; /* set by a set-up worker, read by the supervisor */
	uint64_t backoff_ns;
	uint64_t restart_at_ns;		   /* 0: none scheduled */
	_Atomic uint64_t maybe_duplicated; /* re-delivered after their handler had started */
	_Atomic uint64_t redelivered;	   /* re-delivered in all (both read without the lock) */
	int irqfd[HS_IRQS_MAX], resamplefd[HS_IRQS_MAX];
	struct hs_irq irqs[HS_IRQS_MAX];
	unsigned nirqs;
	bool adopted; /* taken over from a previous program (live update) */
	bool held;    /* taken for a live update (pvmm_handover_take; the worker's) */
	/* The irqfds' attachment to the VM: pvmm_irqs_detach and
	 * pvmm_handover_release (the live-change worker) and pvmm_irq_withdraw
	 * (a delivering thread) change it under irq_lock (held across KVM's
	 * grace period: milliseconds). detached: written under it. */
	pthread_mutex_t irq_lock;
	bool detached;
};

/* A program's Landlock confinement, prepared at its first start. */
struct confinement {
	struct confinement *next;
	char *path;
	struct sandbox_landlock ll;
};

static struct {
	unsigned nslots;
	char self[PATH_MAX];
	struct sandbox_filter stage1;
	bool have_filter;
	struct sandbox_env env;
	char *const *envp;
	pthread_mutex_t confine_lock;
	struct confinement *confined; /* under confine_lock */
	int landlock_abi;	      /* the host's (0: none); set at init */
	bool nested_pid_ns;	      /* vmmux is not in the first PID namespace; at init */
	atomic_flag warned;	      /* the start-up warnings are out */
} G = {.confine_lock = PTHREAD_MUTEX_INITIALIZER, .warned = ATOMIC_FLAG_INIT};

/* The state, and the health that load-aware routing reads. */
static void set_state(struct pvmm *p, int st)
{
	atomic_store(&p->state, st);
	atomic_store(&p->v->load.healthy, st == PV_UP ? 1u : 0u);
}

static uint64_t now_ns(void)
{
	return tp_now_ns();
}

/* The inode number of the first PID namespace (the kernel's
 * PROC_PID_INIT_INO, fixed). */
#define PID_NS_INIT_INO 0xeffffffcu

/* Whether vmmux runs in its host's first PID namespace (a namespace that
 * cannot be told is taken for it). */
static bool in_initial_pid_ns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) != 0 || st.st_ino == PID_NS_INIT_INO;
}

int pvmm_global_init(unsigned nslots, struct errbuf *e)
{
	/* One more slot than asked: the compiled routes' thread's (ioregion.h). */
	if (nslots + 1 > TP_SLOTS_MAX)
		return err_set(e, "%u request slots: at most %u", nslots, TP_SLOTS_MAX - 1);
	G.nslots = nslots + 1;
	ssize_t n = readlink("/proc/self/exe", G.self, sizeof(G.self) - 1);
	if (n <= 0)
		return err_set(e, "cannot find vmmux's own executable: %s", strerror(errno));
	G.self[n] = '\0';
	if (sandbox_filter_stage1(&G.stage1, e) < 0)
		return -1;
	G.have_filter = true;
	G.envp = sandbox_env(&G.env);
	G.landlock_abi = sandbox_landlock_abi();
	G.nested_pid_ns = !in_initial_pid_ns();
	return 0;
}

void pvmm_global_fini(void)
{
	if (G.have_filter)
		sandbox_filter_free(&G.stage1);
	G.have_filter = false;
	pthread_mutex_lock(&G.confine_lock);
	while (G.confined != NULL) {
		struct confinement *c = G.confined;
		G.confined = c->next;
		free(c->path);
		free(c);
	}
	pthread_mutex_unlock(&G.confine_lock);
}

/*
 * Once, at the first parallel VMM's start: say on stderr what isolation of
 * the parallel VMMs this host cannot give (docs/security.md, "Identity and
 * isolation of parallel VMMs").
 */
static void warn_isolation(void)
{
	if (atomic_flag_test_and_set(&G.warned))
		return;
	if (G.landlock_abi == 0)
		log_warn("parallel VMMs are not confined by Landlock (this kernel has none, or it "
			 "is disabled): each can open any file its uid may read (/etc/passwd, "
			 "/proc entries) before its set-up%s",
			 geteuid() == 0 ? ""
					: ", and read the memory of the other parallel VMMs "
					  "(they share vmmux's uid) through /proc/PID/mem");
	else if (G.landlock_abi < 6)
		log_warn("Landlock ABI %d (< 6): no signal scoping of parallel VMMs; only their "
			 "seccomp filter keeps them from signalling processes of their uid",
			 G.landlock_abi);
	if (geteuid() != 0)
		log_warn("vmmux does not run as root: its parallel VMMs run under its own uid, "
			 "not each under a uid of its own%s",
			 G.landlock_abi
			     ? " (each is kept from the others by its own Landlock domain)"
			     : "");
	else if (G.nested_pid_ns)
		log_warn("vmmux runs in a nested PID namespace: the uid of each parallel VMM "
			 "(%u + its pid) is unique within that namespace only",
			 SANDBOX_UID_BASE);
}

struct prepare_call {
	struct sandbox_landlock *ll;
	const char *program;
	struct errbuf *e;
};

static int prepare_call(void *arg)
{
	struct prepare_call *c = arg;
	return sandbox_landlock_prepare(c->ll, c->program, c->e);
}

/* PROGRAM's Landlock confinement (prepared at its first start), or NULL
 * when the host has no Landlock. It is prepared on the exec thread
 * (machine_on_main), the one thread that may start a process (the
 * loader's listing of what the program loads: sandbox/landlock.c) and
 * build a Landlock ruleset: no role filter admits either. */
static const struct sandbox_landlock *confinement_of(const char *program, struct errbuf *e, int *rc)
{
	*rc = 0;
	if (G.landlock_abi == 0)
		return NULL;
	pthread_mutex_lock(&G.confine_lock);
	struct confinement *c = G.confined;
	while (c != NULL && strcmp(c->path, program) != 0)
		c = c->next;
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL || (c->path = strdup(program)) == NULL) {
			free(c);
			pthread_mutex_unlock(&G.confine_lock);
			*rc = err_set(e, "%s: out of memory", program);
			return NULL;
		}
		struct prepare_call pc = {&c->ll, program, e};
		int prc = machine_on_main(prepare_call, &pc);
		if (prc == MACHINE_ON_MAIN_CLOSED)
			err_set(e, "%s: not prepared: the run is ending", program);
		if (prc != 0) {
			free(c->path);
			free(c);
			pthread_mutex_unlock(&G.confine_lock);
			*rc = -1;
			return NULL;
		}
		c->next = G.confined;
		G.confined = c;
	}
	pthread_mutex_unlock(&G.confine_lock);
	return &c->ll; /* never freed before pvmm_global_fini */
}

/* How long V's transport spins before it sleeps (see SPIN_DEFAULT_NS). */
static uint64_t spin_of(const struct vmm *v)
{
	if (v->cfg.spin_set)
		return v->cfg.spin_ns;
	const struct vmmux_config *c = machine_config();
	return c && c->spin_set ? c->spin_ns : SPIN_DEFAULT_NS;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Wire V's granted IRQ lines to KVM with irqfds, when the in-kernel irqchip
 * exists and the table sends interrupt requests to the main VMM (the table
 * stays the single source of truth: with irq events routed elsewhere, the
 * VMM's raises take the ordinary path). */
static void wire_irqs(struct pvmm *p)
{
	struct vm *vm = machine_vm();
	p->nirqs = 0;
	for (unsigned line = 0; line < 256 && p->nirqs < HS_IRQS_MAX; line++) {
		bool wire, level;
		if (!grant_irq(&p->v->grants, line, &wire, &level) || !wire)
			continue;
		struct hs_irq *q = &p->irqs[p->nirqs];
		q->line = line;
		q->level = level;
		q->wired = 0;
		p->irqfd[p->nirqs] = p->resamplefd[p->nirqs] = -1;
		if (vm->irqchip && machine_irq_routed_to_main(p->v->id, line)) {
			int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			int rfd = level ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
			struct kvm_irqfd req = {
			    .fd = (uint32_t)fd,
			    .gsi = line,
			    .flags = level ? KVM_IRQFD_FLAG_RESAMPLE : 0,
			    .resamplefd = (uint32_t)rfd,
			};
			if (fd >= 0 && (!level || rfd >= 0) &&
			    ioctl(vm->vm_fd, KVM_IRQFD, &req) == 0) {
				q->wired = 1;
				p->irqfd[p->nirqs] = fd;
				p->resamplefd[p->nirqs] = rfd;
			} else {
				log_warn(
				    "vmm '%s': IRQ %u cannot be wired with KVM_IRQFD (%s): its "
				    "raises go through the main VMM",
				    p->v->name, line, strerror(errno));
				if (fd >= 0)
					close(fd);
				if (rfd >= 0)
					close(rfd);
			}
		}
		p->nirqs++;
	}
}

/*
 * Attach (ON) or detach the irqfds of P's first N wired IRQ lines to this
 * program's VM. Detached, a pulse the process makes stays counted in its
 * eventfd, and KVM injects an eventfd already signalled when it is
 * attached: a live update detaches them from the old VM before taking its
 * irqchip's state, and the new program (or this one, if the update is
 * refused) attaches them, so no edge is lost. Detaching the last irqfd of
 * a resampled line lowers it; attached again, the line is resampled, so
 * the process asserts it again if it is still high (one acknowledged in
 * between would otherwise wait for an end of interrupt that never comes).
 * Returns N, or the index of the first line that failed: with E, the
 * reason in E and the lines after it untouched; without, every failure
 * logged and the others done.
 */
static unsigned irqs_attach(struct pvmm *p, unsigned n, bool on, struct errbuf *e)
{
	struct vm *vm = machine_vm();
	const struct hs_irq *irqs = p->irqs;
	const int *fd = p->irqfd, *rfd = p->resamplefd;
	unsigned first = n;
	for (unsigned i = 0; i < n; i++) {
		if (!irqs[i].wired || fd[i] < 0)
			continue;
		bool level = irqs[i].level && rfd[i] >= 0;
		struct kvm_irqfd req = {
		    .fd = (uint32_t)fd[i],
		    .gsi = irqs[i].line,
		    .flags = !on     ? KVM_IRQFD_FLAG_DEASSIGN
			     : level ? KVM_IRQFD_FLAG_RESAMPLE
				     : 0,
		    .resamplefd = on && level ? (uint32_t)rfd[i] : 0,
		};
		if (ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0) {
			struct errbuf local;
			err_set(e ? e : &local, "parallel VMM '%s': %s IRQ %u (KVM_IRQFD): %s",
				p->v->name, on ? "wiring" : "detaching", irqs[i].line,
				strerror(errno));
			if (e != NULL)
				return i;
			log_error("%s", local.msg);
			first = first < n ? first : i;
			continue;
		}
		if (on && level) {
			uint64_t one = 1;
			ssize_t w = write(rfd[i], &one, sizeof(one));
			(void)w;
		}
	}
	return first;
}

int pvmm_irq_withdraw(uint16_t id, unsigned line)
{
	struct vmm *v = vmm_get(id);
	struct pvmm *p = v ? v->p : NULL;
	if (p == NULL)
		return -1;
	struct vm *vm = machine_vm();
	for (unsigned i = 0; i < p->nirqs; i++) {
		if (p->irqs[i].line != line || !p->irqs[i].wired || !p->irqs[i].level)
			continue;
		int rc = 0;
		pthread_mutex_lock(&p->irq_lock);
		if (p->detached) {
			/* a live update detached it (which lowered the line): an
			 * assertion made since waits in the eventfd; taken back */
			uint64_t n;
			ssize_t r = read(p->irqfd[i], &n, sizeof(n));
			(void)r;
			pthread_mutex_unlock(&p->irq_lock);
			return 0;
		}
		/* Detaching the last irqfd of a resampled line lowers it; then it
		 * is attached again, idle, for the next assertion. */
		struct kvm_irqfd req = {
		    .fd = (uint32_t)p->irqfd[i],
		    .gsi = line,
		    .flags = KVM_IRQFD_FLAG_DEASSIGN,
		};
		if (ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0) {
			rc = -1;
		} else {
			req.flags = KVM_IRQFD_FLAG_RESAMPLE;
			req.resamplefd = (uint32_t)p->resamplefd[i];
			if (ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0) {
				log_error("vmm '%s': re-wiring IRQ %u: %s", v->name, line,
					  strerror(errno));
				rc = -1;
			}
		}
		pthread_mutex_unlock(&p->irq_lock);
		return rc;
	}
	return -1;
}

static void unwire_irqs(struct pvmm *p)
{
	struct vm *vm = machine_vm();
	for (unsigned i = 0; i < p->nirqs; i++) {
		if (p->irqfd[i] >= 0) {
			struct kvm_irqfd req = {
			    .fd = (uint32_t)p->irqfd[i],
			    .gsi = p->irqs[i].line,
			    .flags = KVM_IRQFD_FLAG_DEASSIGN,
			};
			ioctl(vm->vm_fd, KVM_IRQFD, &req);
		}
		close_fd(&p->irqfd[i]);
		close_fd(&p->resamplefd[i]);
	}
	p->nirqs = 0;
}

/* A read-only descriptor of memfd FD (the same file, reopened O_RDONLY:
 * the VMM can map it for reading only, and mprotect cannot change that). */
static int reopen_ro(int fd)
{
	char path[40];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* The hello of V, and its descriptors in order; RO_FDS (*NRO of them)
 * gets the read-only descriptors opened for it, which the caller closes
 * once they are sent. */
static int build_hello(struct pvmm *p, struct hs_hello *h, int *fds, unsigned *nfds, int *ro_fds,
		       unsigned *nro, struct errbuf *e)
{
	struct vmm *v = p->v;
	const struct guest_mem *m = &machine_vm()->mem;
	memset(h, 0, sizeof(*h));
	h->magic = HS_MAGIC;
	h->version_min = HS_VERSION_MIN;
	h->version_max = HS_VERSION_MAX;
	h->features = HS_F_POSTED | HS_F_STATE | HS_F_IRQFD;
	snprintf(h->name, sizeof(h->name), "%s", v->name);
	if (v->cfg.program == NULL)
		snprintf(h->role, sizeof(h->role), "%s", v->cfg.role);
	h->id = v->id;
	h->nslots = G.nslots;
	h->spin_ns = spin_of(v);
	h->log_level = (uint32_t)log_level;
	unsigned n = 0;
	fds[n++] = p->region.memfd;
	fds[n++] = p->region.vmm_efd;
	fds[n++] = p->region.async_efd;
	/* the pieces of RAM inside the granted windows */
	for (unsigned i = 0; i < m->npieces; i++) {
		const struct gm_piece *pc = &m->pieces[i];
		bool in = v->cfg.memory_all, ro = false;
		for (size_t w = 0; w < v->nwindows && !in; w++) {
			in = pc->gpa >= v->windows[w].gpa &&
			     pc->gpa + pc->size <= v->windows[w].gpa + v->windows[w].size;
			ro = in && v->windows[w].ro;
		}
		if (!in)
			continue;
		if (h->npieces >= HS_PIECES_MAX)
			return err_set(e, "vmm '%s': more than %d pieces of guest RAM granted",
				       v->name, HS_PIECES_MAX);
		int fd = pc->memfd;
		if (ro) {
			fd = reopen_ro(pc->memfd);
			if (fd < 0)
				return err_set(e,
					       "vmm '%s': a read-only descriptor of guest RAM: %s",
					       v->name, strerror(errno));
			ro_fds[(*nro)++] = fd;
			h->pieces[h->npieces].flags = HS_PIECE_RO;
		}
		h->pieces[h->npieces].gpa = pc->gpa;
		h->pieces[h->npieces].size = pc->size;
		h->npieces++;
		fds[n++] = fd;
	}
	if (v->in_fd >= 0) {
		h->has_input = 1;
		fds[n++] = v->in_fd;
	}
	if (v->out_fd >= 0) {
		h->has_output = 1;
		fds[n++] = v->out_fd;
	}
	h->nirqs = p->nirqs;
	for (unsigned i = 0; i < p->nirqs; i++) {
		h->irqs[i] = p->irqs[i];
		if (p->irqs[i].wired) {
			fds[n++] = p->irqfd[i];
			if (p->irqs[i].level)
				fds[n++] = p->resamplefd[i];
		}
	}
	if (v->nfds > HS_EXTRA_FDS_MAX)
		return err_set(e, "vmm '%s': %zu further descriptors; at most %d", v->name, v->nfds,
			       HS_EXTRA_FDS_MAX);
	h->nextra = (uint32_t)v->nfds;
	for (size_t i = 0; i < v->nfds; i++)
		fds[n++] = v->fds[i];
	h->nargs = (uint32_t)v->cfg.nargs;
	for (size_t i = 0; i < v->cfg.nargs && i < HS_ARGS_MAX; i++) {
		if (strlen(v->cfg.args[i].key) >= HS_ARG_KEY_MAX ||
		    strlen(v->cfg.args[i].value) >= HS_ARG_VALUE_MAX)
			return err_set(e, "vmm '%s': argument '%s' is too long for a parallel VMM",
				       v->name, v->cfg.args[i].key);
		snprintf(h->arg_key[i], HS_ARG_KEY_MAX, "%s", v->cfg.args[i].key);
		snprintf(h->arg_value[i], HS_ARG_VALUE_MAX, "%s", v->cfg.args[i].value);
	}
	*nfds = n;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Who manages the process                                                  */
/* ---------------------------------------------------------------------- */

/* The supervisor takes P for one short step, never waiting: false when
 * another thread manages the process now (it hands it back later). */
static bool own_try(struct pvmm *p)
{
	pthread_mutex_lock(&p->lock);
	bool ok = p->owner == OWN_NONE;
	if (ok)
		p->owner = OWN_SUPER;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* Hand P back to the supervisor's watch (the last use of P by a set-up
 * worker: P may be freed as soon as the lock is released). */
static void own_release(struct pvmm *p)
{
	pthread_mutex_lock(&p->lock);
	p->owner = OWN_NONE;
	pthread_cond_broadcast(&p->cond);
	/* under the lock: once the teardown has taken P (own_wait), no worker
	 * that released it still writes the wake descriptor it closes */
	machine_wake_supervisor();
	pthread_mutex_unlock(&p->lock);
}

/* Wait until P is free, then take it for the control thread (or the main
 * thread at the end of the run). A set-up worker's process is killed first
 * when KILL_SETUP, so that its wait ends at once. Bounded: the supervisor
 * holds P only for a short step, a worker for at most its set-up timeout.
 * Offline for the router meanwhile. */
static void own_wait(struct pvmm *p, bool kill_setup)
{
	bool on = router_wait_begin();
	pthread_mutex_lock(&p->lock);
	while (p->owner != OWN_NONE) {
		if (kill_setup && p->owner == OWN_WORKER && p->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
		struct timespec ts = clock_deadline_in(10000000ull);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	p->owner = OWN_CONTROL;
	pthread_mutex_unlock(&p->lock);
	router_wait_end(on);
}

/* ---------------------------------------------------------------------- */
/* A VMM's standard error                                                   */
/* ---------------------------------------------------------------------- */

/* Lines of VMMs' standard error that vmmux's own standard error could not
 * take at once (a pipe nobody reads, a stopped terminal), not reported yet. */
static _Atomic uint64_t own_stderr_dropped;

/*
 * Write LINE (LEN bytes, its newline included) to vmmux's standard error
 * without blocking for long: only when it can take more now (poll, no
 * wait); otherwise the line is counted and the count reported with the
 * next line that goes out. One write(2) a line: lines from threads do not
 * mix.
 */
static void own_stderr_write(const char *line, size_t len)
{
	struct pollfd pf = {.fd = STDERR_FILENO, .events = POLLOUT};
	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT)) {
		atomic_fetch_add(&own_stderr_dropped, 1);
		return;
	}
	uint64_t lost = atomic_exchange(&own_stderr_dropped, 0);
	if (lost > 0) {
		char note[128];
		int n = snprintf(note, sizeof(note),
				 "vmmux: warning: %llu lines of parallel VMMs' standard error "
				 "dropped (vmmux's standard error was not writable)\n",
				 (unsigned long long)lost);
		ssize_t w = write(STDERR_FILENO, note, (size_t)n);
		(void)w;
	}
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

/* Print one line of P's stderr (escaped already). A line the VMM library
 * logged names its VMM already ("vmmux: LEVEL: vmm 'NAME': ...", after the
 * "[    0.123456] " of --log-timestamps when it is on): when NAME is P's
 * own, it is printed as it is; any other line is prefixed with
 * "vmm 'NAME': " (after its timestamp, if it starts with one), so that every
 * line says which VMM it came from. */
static void stderr_line(struct pvmm *p)
{
	const char *l = p->errline;
	int stamp = 0; /* the length of a leading "[ seconds.micros] " */
	if (l[0] == '[') {
		const char *close = strchr(l, ']');
		if (close != NULL && close - l <= 20 && close[1] == ' ' &&
		    strspn(l + 1, " 0123456789.") == (size_t)(close - l - 1))
			stamp = (int)(close - l) + 2;
	}
	const char *body = l + stamp;
	char own[VMMUX_NAME_MAX + 16];
	snprintf(own, sizeof(own), "vmm '%s': ", p->v->name);
	if (strncmp(body, "vmmux: ", 7) == 0) {
		const char *lvl_end = strstr(body + 7, ": ");
		if (lvl_end && lvl_end - (body + 7) <= 8 &&
		    strncmp(lvl_end + 2, own, strlen(own)) == 0) {
			stamp = 0;
			body = l;
			own[0] = '\0';
		}
	}
	char out[sizeof(p->errline) + sizeof(own) + 2];
	int n = snprintf(out, sizeof(out), "%.*s%s%s\n", stamp, l, own, body);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1;
	out[len - 1] = '\n';
	p->err_lines++;
	p->err_bytes += len;
	own_stderr_write(out, len);
}

/* Report the lines of P's stderr dropped for its budget. */
static void stderr_report_dropped(struct pvmm *p)
{
	if (p->err_dropped == 0)
		return;
	char out[VMMUX_NAME_MAX + 160];
	int n = snprintf(out, sizeof(out),
			 "vmmux: warning: vmm '%s': %llu lines of its standard error dropped (at "
			 "most %u lines or %u KiB are printed per supervisor round)\n",
			 p->v->name, (unsigned long long)p->err_dropped, STDERR_ROUND_LINES,
			 STDERR_ROUND_BYTES >> 10);
	p->err_dropped = 0;
	if (n > 0)
		own_stderr_write(out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

/* One complete line of P's stderr: printed, or counted when the round's
 * budget is spent (not when ALL: the process is gone, what it said last
 * matters most, and the bound is the drain's). */
static void stderr_take_line(struct pvmm *p, bool all)
{
	if (!all && (p->err_lines >= STDERR_ROUND_LINES || p->err_bytes >= STDERR_ROUND_BYTES)) {
		p->err_dropped++;
		return;
	}
	stderr_line(p);
}

/* Print what P's process wrote to its standard error, line by line,
 * prefixed with its name, every byte that is not printable ASCII escaped
 * (\xNN): nothing raw from a sandbox reaches the terminal. ALL: also what
 * is left without a newline (the process is gone). Never blocks. */
static void stderr_drain(struct pvmm *p, bool all)
{
	if (p->errfd < 0)
		return;
	/* at most 16 KiB read a call (the rest on the next round; 128 KiB once
	 * the process is gone), and at most STDERR_ROUND_LINES lines or
	 * STDERR_ROUND_BYTES printed (the other lines counted and reported): a
	 * VMM that writes without end does not hold the supervisor */
	p->err_lines = 0;
	p->err_bytes = 0;
	for (unsigned rounds = 0; rounds < (all ? 256u : 32u); rounds++) {
		char buf[512];
		ssize_t n = read(p->errfd, buf, sizeof(buf));
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				close_fd(&p->errfd);
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];
			if (c == '\n' || p->errlen + 5 >= sizeof(p->errline)) {
				p->errline[p->errlen] = '\0';
				stderr_take_line(p, all);
				p->errlen = 0;
				if (c == '\n')
					continue;
			}
			if (c >= 0x20 && c < 0x7f) {
				p->errline[p->errlen++] = (char)c;
			} else if (c == '\t') {
				p->errline[p->errlen++] = ' ';
			} else {
				snprintf(p->errline + p->errlen, 5, "\\x%02x", c);
				p->errlen += 4;
			}
		}
	}
	if (all && p->errlen) {
		p->errline[p->errlen] = '\0';
		stderr_line(p);
		p->errlen = 0;
	}
	stderr_report_dropped(p); /* one line a round at most */
}

/* ---------------------------------------------------------------------- */
/* Start                                                                    */
/* ---------------------------------------------------------------------- */

/* Let the set-up process start serving: after its state is PV_UP, so that
 * nothing takes a pending request back once it serves. */
static int send_go(struct pvmm *p, struct errbuf *e)
{
	struct hs_go go = {.magic = HS_MAGIC, .go = 1};
	if (hs_send(p->sock, &go, sizeof(go), NULL, 0) < 0)
		return err_set(e, "vmm '%s': %s", p->v->name, strerror(errno));
	p->up_since_ns = now_ns();
	log_info("vmm '%s': parallel VMM started as pid %d", p->v->name, (int)p->pid);
	return 0;
}

/*
 * After a failed set-up exchange with P's process (program PATH): when the
 * process is gone, or hung up its socket and is going (waited for, at most
 * SETUP_EXIT_WAIT_MS: a program that exits at once closes its socket a
 * moment before it can be reaped, and the message must not depend on which
 * comes first), replace E's message by one that names PATH and its exit
 * status or signal, and return true. Leaves the process to be reaped.
 */
static bool exited_before_setup(struct pvmm *p, const char *path, struct errbuf *e)
{
	struct pollfd ps = {.fd = p->sock, .events = POLLIN};
	if (poll(&ps, 1, 0) == 1 && (ps.revents & (POLLHUP | POLLERR))) {
		struct pollfd pp = {.fd = p->pidfd, .events = POLLIN};
		while (poll(&pp, 1, SETUP_EXIT_WAIT_MS) < 0 && errno == EINTR)
			;
	}
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOWAIT | WNOHANG) < 0 || si.si_pid == 0)
		return false;
	if (si.si_code == CLD_EXITED)
		err_set(e,
			"vmm '%s': %s exited with status %d before it answered its set-up (is it "
			"a vmmux VMM program?)",
			p->v->name, path, si.si_status);
	else
		err_set(e,
			"vmm '%s': %s died of signal %d (%s) before it answered its set-up (is it "
			"a vmmux VMM program?)",
			p->v->name, path, si.si_status, strsignal(si.si_status));
	return true;
}

/* Kill and reap a process whose set-up failed (its owner does it). */
static void setup_abandon(struct pvmm *p)
{
	syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	waitpid(p->pid, NULL, 0);
	stderr_drain(p, true);
	pthread_mutex_lock(&p->lock);
	close_fd(&p->pidfd);
	close_fd(&p->sock);
	p->pid = 0;
	pthread_mutex_unlock(&p->lock);
	close_fd(&p->errfd);
}

/* Spawn the process, on the exec thread (spawn_process), confined by LL
 * (prepared by the caller). */
static int spawn_here(struct pvmm *p, const struct sandbox_landlock *ll, struct errbuf *e)
{
	struct vmm *v = p->v;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set(e, "vmm '%s': socketpair: %s", v->name, strerror(errno));
	/* vmmux's end never blocks: a VMM that does not read its socket is at
	 * fault (pvmm_send), it cannot hold a thread of vmmux */
	int fl = fcntl(sv[0], F_GETFL);
	if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) {
		close(sv[0]);
		close(sv[1]);
		return err_set(e, "vmm '%s': set-up socket: %s", v->name, strerror(errno));
	}
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0) {
		close(sv[0]);
		close(sv[1]);
		return err_set(e, "vmm '%s': stderr pipe: %s", v->name, strerror(errno));
	}
	fl = fcntl(ep[0], F_GETFL);
	if (fl >= 0)
		fcntl(ep[0], F_SETFL, fl | O_NONBLOCK);

	warn_isolation();
	const char *path = v->cfg.program ? v->cfg.program : G.self;

	char *argv[VMM_PROGRAM_ARGS_MAX + 4];
	size_t argc = 0;
	if (v->cfg.program) {
		argv[argc++] = v->cfg.program;
		for (size_t i = 0; i < v->cfg.nprogram_args; i++)
			argv[argc++] = v->cfg.program_args[i];
	} else {
		argv[argc++] = G.self;
		argv[argc++] = "vmm";
		argv[argc++] = v->name;
	}
	argv[argc] = NULL;

	struct sandbox_spawn_req req = {
	    .path = path,
	    .argv = argv,
	    .envp = G.envp,
	    .stdin_fd = -1,
	    .stdout_fd = -1,
	    .stderr_fd = ep[1],
	    .setup_sock = sv[1],
	    /* as root: a uid and gid of its own (SANDBOX_UID_BASE + its pid) */
	    .drop_uid = geteuid() == 0,
	    .uid = SANDBOX_UID_BASE,
	    .gid = SANDBOX_UID_BASE,
	    .uid_per_pid = geteuid() == 0,
	    .cpu = v->cfg.cpu_set ? (int)v->cfg.cpu : -1,
	    .stage1 = &G.stage1,
	    .landlock = ll,
	};
	int pidfd = -1;
	pid_t pid = sandbox_spawn(&req, &pidfd, e);
	close(sv[1]);
	close(ep[1]);
	if (pid < 0) {
		close(sv[0]);
		close(ep[0]);
		return err_prefix(e, "vmm '%s'", v->name);
	}
	pthread_mutex_lock(&p->lock);
	p->pid = pid;
	p->pidfd = pidfd;
	p->sock = sv[0];
	pthread_mutex_unlock(&p->lock);
	close_fd(&p->errfd);
	p->errfd = ep[0];
	p->errlen = 0;
	return 0;
}

struct spawn_call {
	struct pvmm *p;
	const struct sandbox_landlock *ll;
	struct errbuf *e;
};

static int spawn_call(void *arg)
{
	struct spawn_call *c = arg;
	return spawn_here(c->p, c->ll, c->e);
}

/*
 * Spawn P's process on the exec thread, the main thread (machine_on_main,
 * for the set-up, the supervisor's restarts and the worker's starts). The
 * thread that forks is the process's parent for PR_SET_PDEATHSIG, which
 * fires when that thread ends: every parallel VMM is a child of the main
 * thread, which a live update's execve keeps (it is the thread that
 * execs), so that the VMMs outlive the old program's other threads.
 */
static int spawn_process(struct pvmm *p, struct errbuf *e)
{
	/* its confinement, then the process: both on the exec thread */
	const char *path = p->v->cfg.program ? p->v->cfg.program : G.self;
	int lrc;
	const struct sandbox_landlock *ll = confinement_of(path, e, &lrc);
	if (lrc != 0)
		return err_prefix(e, "vmm '%s'", p->v->name);
	struct spawn_call c = {p, ll, e};
	int rc = machine_on_main(spawn_call, &c);
	if (rc == MACHINE_ON_MAIN_CLOSED)
		return err_set(e, "vmm '%s': not started: the run is ending", p->v->name);
	return rc;
}

/* The hello and its answer (up to SETUP_TIMEOUT_MS); on failure the process
 * is killed and reaped. Runs on the thread that owns P. */
static int setup_process(struct pvmm *p, struct errbuf *e)
{
	struct vmm *v = p->v;
	struct hs_hello hello;
	int fds[HS_FDS_MAX];
	unsigned nfds = 0;
	struct hs_ready ready;
	unsigned nready = 0;
	int ro_fds[HS_PIECES_MAX];
	unsigned nro = 0;
	int built = build_hello(p, &hello, fds, &nfds, ro_fds, &nro, e);
	int sent = built < 0 ? -1 : hs_send(p->sock, &hello, sizeof(hello), fds, nfds);
	int err = errno;
	for (unsigned i = 0; i < nro; i++)
		close(ro_fds[i]);
	if (built < 0)
		goto fail;
	if (sent < 0) {
		err_set(e, "vmm '%s': sending its set-up: %s", v->name, strerror(err));
		exited_before_setup(p, v->cfg.program ? v->cfg.program : G.self, e);
		goto fail;
	}
	if (hs_recv(p->sock, &ready, sizeof(ready), NULL, 0, &nready, SETUP_TIMEOUT_MS, e) < 0) {
		if (!exited_before_setup(p, v->cfg.program ? v->cfg.program : G.self, e))
			err_prefix(e, "vmm '%s': no answer to its set-up", v->name);
		goto fail;
	}
	if (hs_ready_check(&ready, &hello, e) < 0) {
		err_prefix(e, "vmm '%s'", v->name);
		goto fail;
	}
	if (ready.status != 0) {
		err_set(e, "vmm '%s': its set-up failed: %s", v->name, ready.msg);
		goto fail;
	}
	return 0;
fail:
	setup_abandon(p);
	return -1;
}

/* Spawn and set up, synchronously (at the start of the run, or on the
 * control thread: threads that may wait). */
static int start_process(struct pvmm *p, struct errbuf *e)
{
	if (spawn_process(p, e) < 0)
		return -1;
	bool on = router_wait_begin();
	int rc = setup_process(p, e);
	router_wait_end(on);
	return rc;
}

/* The successor is set up: it is up, gets its go and its doorbells. */
static void bring_up(struct pvmm *p)
{
	struct errbuf e;
	/* The go and the state change at once, under the lock: no delivering
	 * thread takes a pending request back once the process may serve, and
	 * no other message (pvmm_send: only to a VMM that is up) reaches the
	 * socket before the go. */
	pthread_mutex_lock(&p->lock);
	int rc = send_go(p, &e);
	set_state(p, PV_UP);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (rc < 0) {
		log_error("%s", e.msg);
		pvmm_fault(p->v, "could not be started");
		return;
	}
	ioregion_vmm_started(p->v); /* its doorbells, to the new process */
}

/* ---------------------------------------------------------------------- */
/* Live update                                                              */
/* ---------------------------------------------------------------------- */

/* New program: the parallel VMMs handed over (pvmm_adopt_set), by name. */
static struct {
	struct pvmm_handover *h;
	unsigned n;
	bool *taken; /* adopted by pvmm_start */
} A;

static const struct pvmm_handover *adoption_of(const char *name)
{
	for (unsigned i = 0; i < A.n; i++)
		if (!A.taken[i] && strcmp(A.h[i].name, name) == 0)
			return &A.h[i];
	return NULL;
}

int pvmm_adopt_set(const struct pvmm_handover *h, unsigned n, struct errbuf *e)
{
	A.h = calloc(n ? n : 1, sizeof(*h));
	A.taken = calloc(n ? n : 1, sizeof(bool));
	if (A.h == NULL || A.taken == NULL)
		return err_set(e, "out of memory");
	memcpy(A.h, h, n * sizeof(*h));
	A.n = n;
	/* (the descriptors were made close-on-exec again, as in the previous
	 * program, by snapshot_restore_claim_fds, before this program opened
	 * anything) */
	return 0;
}

bool pvmm_adopted_fds(const char *name, int *in_fd, int *out_fd)
{
	const struct pvmm_handover *h = adoption_of(name);
	if (h == NULL)
		return false;
	*in_fd = h->in_fd;
	*out_fd = h->out_fd;
	return true;
}

bool pvmm_adopted(const struct vmm *v)
{
	return v->p != NULL && v->p->adopted;
}

unsigned pvmm_handover_fds(const struct pvmm_handover *h, int *fds)
{
	unsigned n = 0;
	const int one[] = {h->pidfd,   h->sock,	     h->errfd, h->memfd,
			   h->vmm_efd, h->async_efd, h->in_fd, h->out_fd};
	for (unsigned i = 0; i < sizeof(one) / sizeof(one[0]); i++)
		if (one[i] > STDERR_FILENO) /* vmmux's own standard ones stay as they are */
			fds[n++] = one[i];
	for (unsigned i = 0; i < h->nirqs && i < HS_IRQS_MAX; i++) {
		if (h->irqfd[i] >= 0)
			fds[n++] = h->irqfd[i];
		if (h->resamplefd[i] >= 0)
			fds[n++] = h->resamplefd[i];
	}
	return n;
}

int pvmm_handover_refusal(struct vmm *v, struct errbuf *e)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return err_set(e,
			       "parallel VMM '%s' is stopped: a live update hands over parallel "
			       "VMMs whose process is up (start it, or remove it, first)",
			       v->name);
	int st = atomic_load(&p->state);
	if (st != PV_UP)
		return err_set(e,
			       "parallel VMM '%s' is %s: a live update hands over parallel VMMs "
			       "whose process is up (try again once it is up)",
			       v->name, pvmm_state_name(v));
	return 0;
}

int pvmm_irqs_detach(struct vmm *v, struct errbuf *e)
{
	struct pvmm *p = v->p;
	/* not up (being set up: a worker may own it for seconds): the update
	 * is refused now rather than in the pause */
	if (pvmm_handover_refusal(v, e) < 0)
		return -1;
	/* Its irqfds are its process's for its whole life (a successor gets the
	 * same ones: wire_irqs runs only at pvmm_start, on this worker), so
	 * only a delivering thread's pvmm_irq_withdraw can change them now. */
	pthread_mutex_lock(&p->irq_lock);
	unsigned k = irqs_attach(p, p->nirqs, false, e);
	if (k < p->nirqs)
		(void)irqs_attach(p, k, true, NULL);
	else
		p->detached = true;
	pthread_mutex_unlock(&p->irq_lock);
	return k < p->nirqs ? -1 : 0;
}

int pvmm_handover_take(struct vmm *v, struct pvmm_handover *h, struct errbuf *e)
{
	struct pvmm *p = v->p;
	if (pvmm_handover_refusal(v, e) < 0)
		return -1;
	own_wait(p, false); /* the supervisor's short step, at most */
	if (pvmm_handover_refusal(v, e) < 0) {
		own_release(p);
		return -1;
	}
	p->held = true;
	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&p->lock);
	snprintf(h->name, sizeof(h->name), "%s", v->name);
	h->pid = (int32_t)p->pid;
	h->pidfd = p->pidfd;
	h->sock = p->sock;
	h->errfd = p->errfd;
	h->memfd = p->region.memfd;
	h->vmm_efd = p->region.vmm_efd;
	h->async_efd = p->region.async_efd;
	h->in_fd = v->in_fd;
	h->out_fd = v->out_fd;
	int rc = tp_main_save(&p->region, &h->tp);
	h->generation = atomic_load(&p->generation);
	h->restarts = atomic_load(&p->restarts);
	h->recent_restarts = p->recent_restarts;
	h->window_start_ns = p->window_start_ns;
	h->up_since_ns = p->up_since_ns;
	h->backoff_ns = p->backoff_ns;
	h->maybe_duplicated = atomic_load(&p->maybe_duplicated);
	h->redelivered = atomic_load(&p->redelivered);
	h->nirqs = p->nirqs;
	for (unsigned i = 0; i < p->nirqs; i++) {
		h->irqs[i] = p->irqs[i];
		h->irqfd[i] = p->irqfd[i];
		h->resamplefd[i] = p->resamplefd[i];
	}
	pthread_mutex_unlock(&p->lock);
	if (rc < 0 || h->pid <= 0 || h->pidfd < 0 || h->sock < 0)
		return err_set(e, "parallel VMM '%s': %s", v->name,
			       rc < 0 ? "a request to it is pending" : "its process went away");
	return 0;
}

void pvmm_handover_release(struct vmm *v)
{
	struct pvmm *p = v != NULL ? v->p : NULL;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->irq_lock);
	if (p->detached)
		(void)irqs_attach(p, p->nirqs, true, NULL);
	p->detached = false;
	pthread_mutex_unlock(&p->irq_lock);
	if (p->held) {
		p->held = false;
		own_release(p);
	}
}

/* Take over the process H describes into P (pvmm_start, new program). */
static int adopt(struct pvmm *p, const struct pvmm_handover *h, struct errbuf *e)
{
	struct vmm *v = p->v;
	if (h->tp.nslots != G.nslots)
		return err_set(e,
			       "parallel VMM '%s': its region has %u request slots, this machine "
			       "uses %u",
			       v->name, h->tp.nslots, G.nslots);
	if (h->nirqs > HS_IRQS_MAX)
		return err_set(e, "parallel VMM '%s': %u IRQ lines handed over", v->name, h->nirqs);
	if (tp_region_adopt(&p->region, h->memfd, h->vmm_efd, h->async_efd, &h->tp, spin_of(v)) < 0)
		return err_set(e, "parallel VMM '%s': its transport region (descriptor %d): %s",
			       v->name, h->memfd, strerror(errno));
	/* its IRQ lines, wired to this program's VM with the same eventfds
	 * (the process writes its copies) */
	p->nirqs = h->nirqs;
	for (unsigned i = 0; i < h->nirqs; i++) {
		p->irqs[i] = h->irqs[i];
		p->irqfd[i] = h->irqfd[i];
		p->resamplefd[i] = h->resamplefd[i];
	}
	unsigned k = irqs_attach(p, p->nirqs, true, e);
	if (k < p->nirqs) {
		(void)irqs_attach(p, k, false, NULL);
		return -1;
	}
	pthread_mutex_lock(&p->lock);
	p->pid = h->pid;
	p->pidfd = h->pidfd;
	p->sock = h->sock;
	p->errfd = h->errfd;
	atomic_store(&p->generation, h->generation);
	atomic_store(&p->restarts, h->restarts);
	p->recent_restarts = h->recent_restarts;
	p->window_start_ns = h->window_start_ns;
	p->up_since_ns = h->up_since_ns;
	p->backoff_ns = h->backoff_ns;
	atomic_store(&p->maybe_duplicated, h->maybe_duplicated);
	atomic_store(&p->redelivered, h->redelivered);
	p->adopted = true;
	set_state(p, PV_UP);
	pthread_mutex_unlock(&p->lock);
	A.taken[h - A.h] = true;
	log_info("vmm '%s': parallel VMM pid %d taken over (%u restarts so far)", v->name,
		 (int)h->pid, h->restarts);
	return 0;
}

int pvmm_start(struct vmm *v, struct errbuf *e)
{
	struct pvmm *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return err_set(e, "out of memory");
	p->v = v;
	p->pidfd = p->sock = p->errfd = -1;
	/* no region's descriptors yet (an adoption refused before it takes
	 * them must not close descriptor 0) */
	p->region.memfd = p->region.vmm_efd = p->region.async_efd = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->async_lock, NULL);
	pthread_mutex_init(&p->irq_lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (adoption_of(v->name) == NULL &&
	    tp_region_create(&p->region, G.nslots, spin_of(v)) < 0) {
		free(p);
		return err_set(e, "vmm '%s': transport: %s", v->name, strerror(errno));
	}
	p->owner = OWN_CONTROL; /* the supervisor leaves it alone until it is up */
	v->p = p;
	const struct pvmm_handover *h = adoption_of(v->name);
	if (h != NULL) {
		if (adopt(p, h, e) < 0) {
			tp_region_destroy(&p->region);
			free(p);
			v->p = NULL;
			return -1;
		}
		own_release(p);
		return 0;
	}
	wire_irqs(p);
	set_state(p, PV_STARTING);
	if (start_process(p, e) < 0) {
		unwire_irqs(p);
		tp_region_destroy(&p->region);
		free(p);
		v->p = NULL;
		return -1;
	}
	pthread_mutex_lock(&p->lock);
	int rc = send_go(p, e);
	set_state(p, PV_UP);
	pthread_mutex_unlock(&p->lock);
	if (rc < 0) {
		p->owner = OWN_NONE;
		pvmm_stop(v);
		return -1;
	}
	own_release(p);
	return 0;
}

static void kill_process(struct pvmm *p, int reason, const char *why);

/* End P's process and mark P stopped (P owned by the caller): its socket
 * closes (the library then returns), or after a grace period it is
 * killed; then it is reaped. Only then is P marked stopped and its waiters
 * released: until the process is gone it may still complete the request
 * it is handling, and that reply must be taken (deliver_sync's take_done),
 * not withdrawn and handed to a fallback or the default as well. Bounded
 * by STOP_GRACE_MS. A stop the control API asks for is not a fault. */
static void stop_owned(struct pvmm *p)
{
	pthread_mutex_lock(&p->lock);
	p->restart_at_ns = 0;
	int pidfd = p->pidfd;
	pid_t pid = p->pid;
	close_fd(&p->sock); /* the VMM sees the socket close and exits */
	pthread_mutex_unlock(&p->lock);
	if (pid > 0) {
		bool on = router_wait_begin();
		struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
		if (poll(&pfd, 1, STOP_GRACE_MS) <= 0)
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		waitpid(pid, NULL, 0);
		router_wait_end(on);
		stderr_drain(p, true);
	}
	pthread_mutex_lock(&p->lock);
	if (p->fault_reason) {
		/* killed for a fault that the supervisor has not reported yet
		 * (the run is ending, or a stop overtook it): say why now */
		log_warn("vmm '%s': parallel VMM %s; killed", p->v->name, p->fault_why);
		p->fault_reason = 0;
	}
	set_state(p, PV_STOPPED);
	atomic_store(&p->dead, true);
	p->restart_at_ns = 0;
	if (pid > 0) {
		p->pid = 0;
		atomic_fetch_add(&p->generation, 1);
	}
	close_fd(&p->pidfd);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	tp_main_wake_all(&p->region);
	close_fd(&p->errfd);
}

static void stop_process(struct pvmm *p)
{
	own_wait(p, true);
	stop_owned(p);
	own_release(p);
}

int pvmm_halt(struct vmm *v, struct errbuf *e)
{
	struct pvmm *p = v->p;
	if (p == NULL || atomic_load(&p->state) == PV_STOPPED)
		return err_set(e, "vmm '%s' is not running", v->name);
	stop_process(p);
	log_info("vmm '%s': stopped", v->name);
	return 0;
}

static int start_owned(struct pvmm *p, struct errbuf *e);

int pvmm_resume(struct vmm *v, struct errbuf *e)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return err_set(e, "vmm '%s' is not a parallel VMM", v->name);
	own_wait(p, false);
	int st = atomic_load(&p->state);
	if (st == PV_UP || st == PV_STARTING) {
		own_release(p);
		return err_set(e, "vmm '%s' is running already", v->name);
	}
	int rc = start_owned(p, e);
	own_release(p);
	return rc;
}

int pvmm_restart(struct vmm *v, struct errbuf *e)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return err_set(e, "vmm '%s' is not a parallel VMM", v->name);
	own_wait(p, true);
	/* One owner from the stop to the start, and the requests that wait
	 * for this VMM keep waiting through the stop (wait_up, wait_replaced):
	 * a restart the operator asks for loses nothing. */
	pthread_mutex_lock(&p->lock);
	p->restarting = true;
	pthread_mutex_unlock(&p->lock);
	int rc = start_owned(p, e);
	own_release(p);
	if (rc == 0)
		log_info("vmm '%s': restarted", v->name);
	return rc;
}

/* Start P's process again (P owned by the caller): a process still there
 * (up, or down and not reaped yet) is stopped first; its pending requests
 * and saved state carry over. Clears p->restarting. */
static int start_owned(struct pvmm *p, struct errbuf *e)
{
	if (p->pid > 0)
		stop_owned(p); /* a running one (restart), or a down one not reaped yet */
	pthread_mutex_lock(&p->lock);
	p->restarting = false;
	unsigned pending = 0;
	p->maybe_duplicated += tp_main_recover(&p->region, &pending);
	p->redelivered += pending;
	set_state(p, PV_STARTING);
	atomic_store(&p->dead, false);
	p->restart_at_ns = 0;
	p->recent_restarts = 0;
	p->backoff_ns = 0;
	pthread_mutex_unlock(&p->lock);
	int rc = start_process(p, e);
	if (rc == 0) {
		bring_up(p);
	} else {
		pthread_mutex_lock(&p->lock);
		set_state(p, PV_FAILED);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

long pvmm_state_save(struct vmm *v, void *buf, size_t cap)
{
	return v->p ? tp_state_load(&v->p->region, buf, cap) : -1;
}

/* The event that carries control request TYPE (TP_CTL_*). */
static void control_event(struct vmmux_event *ev, uint16_t type)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->count = 1;
	ev->vcpu = VMMUX_NO_VCPU;
}

/* Send the control request TYPE to V through SLOT and wait for its answer;
 * pvmm_deliver's result (0: answered). */
static int control_request(struct vmm *v, unsigned slot, uint16_t type)
{
	struct vmmux_event ev;
	control_event(&ev, type);
	struct vmmux_reply rep;
	struct vmmux_event raised[VMM_RAISE_MAX];
	unsigned n;
	uint16_t fb;
	return pvmm_deliver(v, slot, NULL, &ev, &rep, raised, &n, &fb);
}

static uint64_t timeout_for(const struct vmm *v, const struct route *r);

int pvmm_state_restore(struct vmm *v, const void *buf, size_t len, struct errbuf *e)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return err_set(e, "vmm '%s' is not a parallel VMM", v->name);
	if (tp_state_store(&p->region, buf, len) < 0)
		return err_set(e, "vmm '%s': a state of %zu bytes does not fit", v->name, len);
	if (vmm_get(v->id) == v) {
		if (control_request(v, pvmm_thread_slot, TP_CTL_RESTORE) != 0)
			return err_set(e, "vmm '%s' did not take the state", v->name);
		return 0;
	}
	/* An instance that is not in the registry (a swap's new one): the
	 * supervisor does not watch it, so nobody would replace it if it failed.
	 * One try, bounded by its timeout; on failure its process is killed and
	 * reaped here, and the caller keeps the old instance. */
	struct vmmux_event ev;
	control_event(&ev, TP_CTL_RESTORE);
	struct vmmux_reply rep;
	struct vmmux_event raised[VMM_RAISE_MAX];
	uint32_t n = 0;
	int32_t result = 0;
	uint64_t timeout = timeout_for(v, NULL);
	unsigned slot = pvmm_thread_slot;
	if (atomic_load(&p->state) != PV_UP || slot >= G.nslots)
		return err_set(e, "vmm '%s': the new instance is not up to take the state",
			       v->name);
	bool on = router_wait_begin();
	enum tp_result tr = tp_main_call(&p->region, slot, &ev, &rep, &result, raised, &n,
					 now_ns() + timeout, &p->dead);
	router_wait_end(on);
	if (tr == TP_OK && result >= 0)
		return 0;
	if (tr == TP_OK)
		return err_set(e, "vmm '%s' refused the state of the instance it replaces",
			       v->name);
	pthread_mutex_lock(&p->lock);
	if (p->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	pthread_mutex_unlock(&p->lock);
	stop_process(p); /* reaped now: nobody else would */
	tp_main_cancel(&p->region, slot);
	if (tr == TP_TIMEOUT)
		return err_set(e,
			       "vmm '%s': the new instance did not take the state within %llu ms "
			       "(its timeout); it was killed",
			       v->name, (unsigned long long)(timeout / 1000000ull));
	return err_set(e,
		       "vmm '%s': the new instance failed while taking the state (%s); it was "
		       "killed",
		       v->name, tr == TP_PROTOCOL ? "a malformed reply" : "it died");
}

bool pvmm_drained(const struct vmm *v)
{
	return v->p == NULL || tp_main_posted_empty(&v->p->region);
}

void pvmm_retire(struct vmm *v)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return;
	stop_process(p);
	unwire_irqs(p);
}

void pvmm_stop(struct vmm *v)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return;
	stop_process(p);
	unwire_irqs(p);
	tp_region_destroy(&p->region);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->async_lock);
	pthread_mutex_destroy(&p->irq_lock);
	free(p);
	v->p = NULL;
}

void pvmm_abort_waits(void)
{
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		struct pvmm *p = v ? v->p : NULL;
		if (p == NULL)
			continue;
		pthread_mutex_lock(&p->lock);
		atomic_store(&p->dead, true);
		/* a set-up under way ends now (its process killed), so that no
		 * thread waits out the set-up timeout when the run ends */
		if (atomic_load(&p->state) == PV_STARTING && p->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		tp_main_wake_all(&p->region);
	}
}

/* Kill the process of generation GEN (any thread; UINT64_MAX: the current
 * one) for a fault; the supervisor reaps it. A process already replaced
 * is not its successor's business: a late kill never hits the successor. */
static void kill_gen(struct pvmm *p, uint64_t gen, int reason, const char *why)
{
	pthread_mutex_lock(&p->lock);
	if (atomic_load(&p->state) == PV_UP && p->fault_reason == 0 && p->pidfd >= 0 &&
	    (gen == UINT64_MAX || atomic_load(&p->generation) == gen)) {
		p->fault_reason = reason;
		snprintf(p->fault_why, sizeof(p->fault_why), "%s", why);
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	}
	pthread_mutex_unlock(&p->lock);
}

static void kill_process(struct pvmm *p, int reason, const char *why)
{
	kill_gen(p, UINT64_MAX, reason, why);
}

void pvmm_fault(struct vmm *v, const char *why)
{
	if (v->p)
		kill_process(v->p, VMMUX_FAULT_PROTOCOL, why);
}

/* ---------------------------------------------------------------------- */
/* Delivery                                                                 */
/* ---------------------------------------------------------------------- */

/* The time V may take to answer an event of route R. */
static uint64_t timeout_for(const struct vmm *v, const struct route *r)
{
	uint64_t t = r && (r->flags & ROUTE_OPT_TIMEOUT) ? r->timeout_ns : v->cfg.timeout_ns;
	return t ? t : VMM_TIMEOUT_DEFAULT_NS;
}

/*
 * Wait (p->lock held, the caller offline) until the VMM is up; true when
 * it is. A request waits while a successor is on its way (a restart is
 * scheduled or being set up): it stays pending until the VMM is up, given
 * up (failed), stopped, or the run ends. A VMM that is down with no
 * restart on its way (a type:fault route took over) is waited for only up
 * to TIMEOUT_NS from the last time one was.
 */
static bool wait_up(struct pvmm *p, uint64_t timeout_ns)
{
	uint64_t deadline = now_ns() + timeout_ns;
	for (;;) {
		int st = atomic_load(&p->state);
		if (st == PV_UP)
			return true;
		if (st == PV_FAILED || (st == PV_STOPPED && !p->restarting) || machine_stopping())
			return false;
		uint64_t now = now_ns();
		if (st == PV_STARTING || p->restart_at_ns != 0 || p->pid > 0 || p->restarting)
			deadline = now + timeout_ns; /* a successor is on its way */
		if (now >= deadline)
			return false;
		uint64_t left = deadline - now;
		struct timespec ts = clock_deadline_in(left < 50000000ull ? left : 50000000ull);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
}

/* Wait (p->lock not held, the caller offline) until the process of
 * generation GEN has been reaped (its successor may be up already), the VMM
 * is stopped or given up, or the run ends. The process was killed or died:
 * the supervisor reaps it at once. */
static void wait_replaced(struct pvmm *p, uint64_t gen)
{
	pthread_mutex_lock(&p->lock);
	while (atomic_load(&p->generation) == gen && !machine_stopping()) {
		int st = atomic_load(&p->state);
		if ((st == PV_STOPPED && !p->restarting) || st == PV_FAILED)
			break;
		struct timespec ts = clock_deadline_in(10000000ull);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
}

/* A reply the VMM completed before it went away is taken, whatever came
 * since (a stop, a fallback, a restart): its side effect happened. */
static bool take_done(struct pvmm *p, unsigned slot, struct vmmux_event *ev,
		      struct vmmux_reply *rep, int32_t *result, struct vmmux_event *raised,
		      uint32_t *n)
{
	static const _Atomic bool now = true;
	if (!tp_main_pending(&p->region, slot))
		return false;
	return tp_main_wait(&p->region, slot, ev, rep, result, raised, n, 0, &now) == TP_OK;
}

/* pvmm_deliver's synchronous part; the caller is offline for the router and
 * passes what it needs of the route (R is not read here). */
static int deliver_sync(struct pvmm *p, unsigned slot, uint64_t timeout, uint16_t rfallback,
			struct vmmux_event *ev, struct vmmux_reply *rep, struct vmmux_event *raised,
			unsigned *nraised, uint16_t *fallback)
{
	bool sent = false; /* the request is in the slot (pending) */
	for (;;) {
		int32_t result = 0;
		uint32_t n = 0;
		if (atomic_load(&p->state) != PV_UP) {
			/* No process serves the region now (a new one is set up, or
			 * none): the pending request may be taken back safely, unless
			 * it was answered already. */
			pthread_mutex_lock(&p->lock);
			if (atomic_load(&p->state) != PV_UP) {
				if (sent && take_done(p, slot, ev, rep, &result, raised, &n)) {
					pthread_mutex_unlock(&p->lock);
					*nraised = n;
					return result < 0 ? -1 : 0;
				}
				if (rfallback != VMM_ID_NONE) {
					if (sent)
						tp_main_cancel(&p->region, slot);
					pthread_mutex_unlock(&p->lock);
					*fallback = rfallback;
					return 1;
				}
				bool up = wait_up(p, timeout);
				if (!up && sent)
					tp_main_cancel(&p->region, slot);
				pthread_mutex_unlock(&p->lock);
				if (!up)
					return -1;
			} else {
				pthread_mutex_unlock(&p->lock);
			}
		}
		enum tp_result tr;
		uint64_t gen = atomic_load(&p->generation); /* the process we talk to */
		/* The deadline starts now that a process serving it is up. */
		uint64_t deadline = now_ns() + timeout;
		if (!sent) {
			tr = tp_main_call(&p->region, slot, ev, rep, &result, raised, &n, deadline,
					  &p->dead);
			sent = tr != TP_INVAL;
		} else {
			tr = tp_main_wait(&p->region, slot, ev, rep, &result, raised, &n, deadline,
					  &p->dead);
		}
		switch (tr) {
		case TP_OK:
			*nraised = n;
			return result < 0 ? -1 : 0;
		case TP_INVAL:
			return -2; /* an event the transport cannot carry */
		case TP_PROTOCOL:
			kill_gen(p, gen, VMMUX_FAULT_PROTOCOL, "wrote a malformed reply");
			break;
		case TP_TIMEOUT: {
			char why[96];
			snprintf(why, sizeof(why), "did not answer within %llu ms",
				 (unsigned long long)(timeout / 1000000ull));
			kill_gen(p, gen, VMMUX_FAULT_TIMEOUT, why);
			break;
		}
		case TP_ABORTED:
		case TP_FULL:
			break;
		}
		/* The process is being replaced; the request stays pending for its
		 * successor, which gets the full timeout once it is up. */
		wait_replaced(p, gen);
		if (machine_stopping()) {
			if (take_done(p, slot, ev, rep, &result, raised, &n)) {
				*nraised = n;
				return result < 0 ? -1 : 0;
			}
			return -1;
		}
	}
}

int pvmm_deliver(struct vmm *v, unsigned slot, const struct route *r, struct vmmux_event *ev,
		 struct vmmux_reply *rep, struct vmmux_event *raised, unsigned *nraised,
		 uint16_t *fallback)
{
	struct pvmm *p = v->p;
	*nraised = 0;
	if (p == NULL || slot >= G.nslots)
		return -1;
	/* What the wait needs of the route, copied: the wait is offline, and
	 * the table may be freed meanwhile. */
	uint32_t rflags = r ? r->flags : 0;
	uint16_t rfallback = r ? r->fallback : VMM_ID_NONE;
	uint64_t timeout = timeout_for(v, r);
	/* Posted: a write the guest does not wait for. */
	if ((rflags & (ROUTE_OPT_POSTED | ROUTE_OPT_COALESCED | ROUTE_OPT_DOORBELL)) &&
	    (ev->flags & VMMUX_EVF_WRITE) && ev->data == NULL && atomic_load(&p->state) == PV_UP &&
	    tp_main_post(&p->region, ev) == TP_OK) {
		rep->action = VMMUX_ACT_DONE;
		rep->value = 0;
		return 0;
	}
	bool on = router_wait_begin();
	int rc = deliver_sync(p, slot, timeout, rfallback, ev, rep, raised, nraised, fallback);
	router_wait_end(on);
	return rc;
}

void pvmm_stop_announce(struct vmm *v)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->sock >= 0)
		shutdown(p->sock, SHUT_RDWR); /* the library sees the end and returns */
	pthread_mutex_unlock(&p->lock);
}

int pvmm_sync(struct vmm *v)
{
	return control_request(v, pvmm_thread_slot, TP_CTL_SYNC) == 0 ? 0 : -1;
}

void pvmm_reset(struct vmm *v, unsigned slot)
{
	if (control_request(v, slot, TP_CTL_RESET) != 0)
		log_warn("vmm '%s': did not confirm the reset of its role", v->name);
}

/* ---------------------------------------------------------------------- */
/* Supervision (the supervisor thread)                                      */
/* ---------------------------------------------------------------------- */

unsigned pvmm_sup_fds(struct vmm *v, int *fds)
{
	struct pvmm *p = v->p;
	unsigned n = 0;
	if (p == NULL)
		return 0;
	pthread_mutex_lock(&p->lock);
	if (p->owner == OWN_NONE && p->pidfd >= 0)
		fds[n++] = p->pidfd;
	if (p->owner == OWN_NONE && p->errfd >= 0)
		fds[n++] = p->errfd;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int pvmm_async_fd(struct vmm *v)
{
	return v->p ? v->p->region.async_efd : -1;
}

/* Hand a VMMUX_EV_FAULT event about P to the dispatcher (never waits). */
static void raise_fault(struct pvmm *p, int reason, int status)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_FAULT;
	ev.key = p->v->id;
	ev.value = (uint64_t)reason;
	ev.aux = (uint64_t)(unsigned)status;
	ev.count = 1;
	ev.vcpu = VMMUX_NO_VCPU;
	/* The main VMM's default for a fault is the restart: the supervisor
	 * delivers it itself (the handling never waits), since the dispatcher
	 * may be waiting for this VMM's successor; a type:fault route to a VMM
	 * replaces the default: the dispatcher delivers the event to it. */
	router_thread_online();
	int r = vmm_host_deliver_main(&ev);
	router_thread_offline();
	if (r == 1 && machine_post_event(&ev) == 0 && !machine_stopping())
		log_error("vmm '%s': its fault event could not be routed (the host's queue is "
			  "full); it is not restarted",
			  p->v->name);
}

/* The process exited: reap it, mark the VMM down, hand the fault on (P
 * owned by the supervisor). */
static void reap_exit(struct pvmm *p)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (p->pidfd < 0 || waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0 ||
	    si.si_pid == 0)
		return;
	stderr_drain(p, true);
	pthread_mutex_lock(&p->lock);
	int reason = p->fault_reason ? p->fault_reason : VMMUX_FAULT_CRASH;
	bool killed = p->fault_reason != 0;
	char why[200];
	if (p->fault_reason)
		snprintf(why, sizeof(why), "%s; killed", p->fault_why);
	else if (si.si_code == CLD_EXITED)
		snprintf(why, sizeof(why), "exited with status %d", si.si_status);
	else
		snprintf(why, sizeof(why), "died of signal %s", strsignal(si.si_status));
	close_fd(&p->pidfd);
	close_fd(&p->sock);
	p->pid = 0;
	p->fault_reason = 0;
	bool stopping = atomic_load(&p->state) == PV_STOPPED;
	if (!stopping)
		set_state(p, PV_DOWN);
	atomic_store(&p->dead, true);
	atomic_fetch_add(&p->generation, 1);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	close_fd(&p->errfd);
	tp_main_wake_all(&p->region);
	if (stopping || machine_stopping()) {
		if (killed) /* vmmux killed it for a fault: say why even now */
			log_warn("vmm '%s': parallel VMM %s", p->v->name, why);
		return;
	}
	log_warn("vmm '%s': parallel VMM %s", p->v->name, why);
	raise_fault(p, reason, si.si_status);
}

void pvmm_schedule_restart(uint16_t id)
{
	struct vmm *v = vmm_get(id);
	struct pvmm *p = v ? v->p : NULL;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if (atomic_load(&p->state) == PV_DOWN && p->restart_at_ns == 0) {
		uint64_t now = now_ns();
		if (now - p->up_since_ns > HEALTHY_NS)
			p->backoff_ns = 0;
		if (now - p->window_start_ns > RESTARTS_WINDOW_NS) {
			p->window_start_ns = now;
			p->recent_restarts = 0;
		}
		if (p->recent_restarts >= RESTARTS_MAX) {
			set_state(p, PV_FAILED);
			pthread_cond_broadcast(&p->cond);
			log_error("vmm '%s': %d restarts within a minute: given up; its events get "
				  "the built-in defaults from now on",
				  v->name, RESTARTS_MAX);
		} else {
			p->restart_at_ns = now + p->backoff_ns;
			p->backoff_ns = p->backoff_ns ? p->backoff_ns * 2 : BACKOFF_MIN_NS;
			if (p->backoff_ns > BACKOFF_MAX_NS)
				p->backoff_ns = BACKOFF_MAX_NS;
		}
	}
	pthread_mutex_unlock(&p->lock);
	machine_wake_supervisor();
}

/* A set-up worker: the exchange with a process the supervisor spawned,
 * which may take up to SETUP_TIMEOUT_MS; never on the supervisor. */
static void *setup_main(void *arg)
{
	struct pvmm *p = arg;
	struct errbuf e;
	machine_thread_enter(SELF_SETUP);
	if (setup_process(p, &e) == 0) {
		bring_up(p);
		pthread_mutex_lock(&p->lock);
		unsigned pending = p->setup_pending, busy = p->setup_busy;
		pthread_mutex_unlock(&p->lock);
		if (pending)
			log_info("vmm '%s': restarted; %u pending request(s) re-delivered (%u may "
				 "repeat a side effect)",
				 p->v->name, pending, busy);
	} else {
		log_error("%s", e.msg);
		pthread_mutex_lock(&p->lock);
		set_state(p, PV_DOWN);
		atomic_fetch_add(&p->generation, 1);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		/* counts toward the restart limit like any other restart */
		if (!machine_stopping())
			pvmm_schedule_restart(p->v->id);
	}
	own_release(p); /* the last use of P */
	return NULL;
}

/* Begin a restart (supervisor, P owned by it): the successor is spawned
 * here (its parent thread lives as long as the run), its set-up goes to a
 * worker. */
static void restart(struct pvmm *p)
{
	struct errbuf e;
	pthread_mutex_lock(&p->lock);
	p->restart_at_ns = 0;
	if (atomic_load(&p->state) != PV_DOWN) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	unsigned pending = 0;
	unsigned busy = tp_main_recover(&p->region, &pending);
	p->maybe_duplicated += busy;
	p->redelivered += pending;
	p->setup_pending = pending;
	p->setup_busy = busy;
	set_state(p, PV_STARTING);
	atomic_store(&p->dead, false);
	p->restarts++;
	p->recent_restarts++;
	pthread_mutex_unlock(&p->lock);

	if (spawn_process(p, &e) < 0) {
		log_error("%s", e.msg);
		pthread_mutex_lock(&p->lock);
		set_state(p, PV_DOWN);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pvmm_schedule_restart(p->v->id);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->owner = OWN_WORKER;
	pthread_mutex_unlock(&p->lock);
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, setup_main, p);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		log_error("vmm '%s': cannot start a set-up thread: %s", p->v->name, strerror(rc));
		setup_abandon(p);
		pthread_mutex_lock(&p->lock);
		p->owner = OWN_SUPER;
		set_state(p, PV_DOWN);
		atomic_fetch_add(&p->generation, 1);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pvmm_schedule_restart(p->v->id);
	}
}

void pvmm_sup_ready(struct vmm *v, int fd)
{
	struct pvmm *p = v->p;
	if (p == NULL || !own_try(p))
		return;
	if (fd == p->errfd)
		stderr_drain(p, false);
	else if (fd == p->pidfd)
		reap_exit(p);
	pthread_mutex_lock(&p->lock);
	if (p->owner == OWN_SUPER)
		p->owner = OWN_NONE;
	pthread_cond_broadcast(&p->cond); /* own_wait: at once, not at its next slice */
	pthread_mutex_unlock(&p->lock);
}

/* Take what V raised on its async ring (at most TP_ASYNC_ENTRIES). */
static unsigned async_take(struct pvmm *p, struct vmmux_event *raised)
{
	pthread_mutex_lock(&p->async_lock);
	uint64_t cnt;
	ssize_t rd = read(p->region.async_efd, &cnt, sizeof(cnt));
	(void)rd;
	unsigned n = 0;
	while (n < TP_ASYNC_ENTRIES && tp_main_async_pop(&p->region, &raised[n]))
		n++;
	pthread_mutex_unlock(&p->async_lock);
	return n;
}

void pvmm_async_ready(struct vmm *v)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return;
	struct vmmux_event raised[TP_ASYNC_ENTRIES];
	unsigned n = async_take(p, raised);
	vmm_dispatch_raised_from(v, raised, n);
}

unsigned pvmm_async_handoff(struct vmm *v)
{
	struct pvmm *p = v->p;
	if (p == NULL)
		return 0;
	unsigned total = 0;
	for (;;) {
		struct vmmux_event raised[TP_ASYNC_ENTRIES];
		unsigned n = async_take(p, raised);
		for (unsigned i = 0; i < n; i++) {
			raised[i].src_kind = VMMUX_SRC_VMM;
			raised[i].src_id = v->id;
			raised[i].data = NULL;
			if (!grant_allows(&v->grants, &raised[i], NULL)) { /* async: no request */
				char desc[256];
				log_warn("vmm '%s' raised an event it was not granted: %s; dropped",
					 v->name, event_describe(&raised[i], desc, sizeof(desc)));
				continue;
			}
			machine_post_raised(v->id, &raised[i]);
			total++;
		}
		if (n < TP_ASYNC_ENTRIES)
			return total;
	}
}

#define CPU_SAMPLE_NS 250000000ull /* the CPU time of parallel VMMs, every 250 ms */

/* The CPU time (user + system) of process PID from the kernel's accounting
 * (/proc/PID/stat fields 14 and 15, in clock ticks), in ns; 0 on error. */
static uint64_t process_cpu_ns(pid_t pid)
{
	char buf[1024];
	const char *p = proc_stat_fields(pid, buf, sizeof(buf));
	if (p == NULL)
		return 0;
	unsigned long long utime = 0, stime = 0;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
	    2)
		return 0;
	long hz = sysconf(_SC_CLK_TCK);
	return (utime + stime) * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
}

/* Off the dispatch path: the main loop samples what each process used. */
static void sample_cpu(uint64_t now)
{
	static uint64_t last;
	if (now - last < CPU_SAMPLE_NS)
		return;
	last = now;
	static uint64_t prev_cpu[VMM_MAX], prev_at[VMM_MAX];
	for (size_t id = 1; id < vmm_count() && id < VMM_MAX; id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		struct pvmm *p = v ? v->p : NULL;
		pid_t pid = p != NULL ? atomic_load(&p->pid) : 0;
		if (pid <= 0)
			continue;
		uint64_t cpu = process_cpu_ns(pid);
		atomic_store(&v->load.cpu_ns, cpu);
		if (prev_at[id] && now > prev_at[id] && cpu >= prev_cpu[id])
			atomic_store(&v->load.cpu_permille,
				     (uint32_t)((cpu - prev_cpu[id]) * 1000 / (now - prev_at[id])));
		prev_cpu[id] = cpu;
		prev_at[id] = now;
	}
}

/* The heartbeat (tp_main_progress_stalled): an up VMM that has posted
 * writes or doorbell rings waiting and has not moved its progress counter
 * for its timeout is hung, and killed like one that misses a deadline. */
static void check_heartbeat(struct pvmm *p, uint64_t now)
{
	if (atomic_load(&p->state) != PV_UP)
		return;
	uint64_t t = timeout_for(p->v, NULL);
	if (!tp_main_progress_stalled(&p->region, ioregion_doorbells_waiting(p->v), now, t))
		return;
	char why[128];
	snprintf(why, sizeof(why),
		 "took none of its waiting posted writes or doorbell rings for %llu ms",
		 (unsigned long long)(t / 1000000ull));
	kill_process(p, VMMUX_FAULT_TIMEOUT, why);
}

int pvmm_tick(void)
{
	int next = -1;
	uint64_t now = now_ns();
	sample_cpu(now);
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v && v->p && next < 0)
			next = (int)(CPU_SAMPLE_NS / 1000000ull);
	}
	for (size_t id = 1; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		struct pvmm *p = v ? v->p : NULL;
		if (p == NULL)
			continue;
		check_heartbeat(p, now);
		pthread_mutex_lock(&p->lock);
		uint64_t at = p->restart_at_ns;
		pthread_mutex_unlock(&p->lock);
		if (at == 0)
			continue;
		if (at <= now) {
			/* another thread manages the process now: next round */
			if (own_try(p)) {
				restart(p);
				pthread_mutex_lock(&p->lock);
				if (p->owner == OWN_SUPER)
					p->owner = OWN_NONE;
				pthread_cond_broadcast(&p->cond);
				pthread_mutex_unlock(&p->lock);
			} else if (next < 0 || next > 10) {
				next = 10;
			}
			continue;
		}
		int ms = (int)((at - now + 999999) / 1000000);
		if (next < 0 || ms < next)
			next = ms;
	}
	return next;
}

const char *pvmm_where(const struct vmm *v, char *buf, size_t len)
{
	const struct pvmm *p = v->p;
	if (p == NULL) {
		snprintf(buf, len, "stopped");
		return buf;
	}
	switch (atomic_load(&p->state)) {
	case PV_UP:
		snprintf(buf, len, "pid %d", (int)atomic_load(&p->pid));
		break;
	case PV_FAILED:
		snprintf(buf, len, "failed");
		break;
	default:
		snprintf(buf, len, "down");
		break;
	}
	return buf;
}

bool pvmm_irq_wired(const struct vmm *v, unsigned line)
{
	const struct pvmm *p = v->p;
	for (unsigned i = 0; p && i < p->nirqs; i++)
		if (p->irqs[i].line == line && p->irqs[i].wired)
			return true;
	return false;
}

const char *pvmm_state_name(const struct vmm *v)
{
	if (v->p == NULL)
		return "stopped";
	switch (atomic_load(&v->p->state)) {
	case PV_STARTING:
		return "starting";
	case PV_UP:
		return "up";
	case PV_DOWN:
		return "down";
	case PV_FAILED:
		return "failed";
	default:
		return "stopped";
	}
}

int pvmm_pid(const struct vmm *v)
{
	pid_t pid = v->p ? atomic_load(&v->p->pid) : 0;
	return pid > 0 ? (int)pid : 0;
}

unsigned pvmm_restarts(const struct vmm *v)
{
	return v->p ? atomic_load(&v->p->restarts) : 0;
}

int pvmm_send(struct vmm *v, const void *msg, size_t len, int fd)
{
	struct pvmm *p = v ? v->p : NULL;
	if (p == NULL)
		return -1;
	/* Never blocks: the socket is non-blocking; one the VMM leaves full is
	 * its protocol fault. Under the lock: the supervisor closes the socket
	 * when it reaps. */
	pthread_mutex_lock(&p->lock);
	int rc = -1, err = 0;
	if (p->sock >= 0 && p->pid > 0 && atomic_load(&p->state) == PV_UP) {
		rc = hs_send(p->sock, msg, len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1u : 0u);
		err = rc < 0 ? errno : 0;
	}
	pthread_mutex_unlock(&p->lock);
	if (rc < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS))
		kill_process(p, VMMUX_FAULT_PROTOCOL, "does not read its set-up socket (full)");
	errno = err;
	return rc;
}

uint64_t pvmm_doorbell_rings(const struct vmm *v, unsigned index)
{
	const struct pvmm *p = v ? v->p : NULL;
	if (p == NULL || p->region.hdr == NULL || index >= TP_DOORBELLS_MAX)
		return 0;
	return atomic_load_explicit(&p->region.hdr->doorbell_rings[index], memory_order_relaxed);
}

void pvmm_stats_extra(uint16_t id, struct stats_vmm_extra *x)
{
	const struct vmm *v = vmm_get(id);
	const struct pvmm *p = v ? v->p : NULL;
	if (p == NULL)
		return;
	x->restarts = atomic_load(&p->restarts);
	x->redelivered = atomic_load(&p->redelivered);
	x->maybe_duplicated = atomic_load(&p->maybe_duplicated);
}
