/*
 * machine.c: the life of a run (machine.h).
 *
 * Threads (docs/architecture.md, "Threads and who waits for whom"): one per
 * vCPU (exit/vcpu.c); the supervisor (the main thread: signals, the
 * watchdog timer, parallel VMMs' exits, stderr and restarts; it never
 * waits); the dispatcher (the host's own deliveries, the events VMMs raise
 * on their own, in-process VMMs' inputs such as the UART's stdin); the
 * control thread (the API socket and live changes). Lifecycle state lives
 * under one mutex; the vCPU fast path reads three atomics only
 * (machine_vcpu_gate).
 *
 * Reset is a rendezvous: machine_reset marks it pending and kicks every vCPU
 * out of KVM_RUN; each vCPU completes its pending I/O and arrives; the last
 * to arrive reloads the guest image, returns every vCPU, the in-kernel
 * irqchip and every role to their boot state, and releases the others.
 */
#include "vmm/machine.h"
#include "vm/ioregion.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "api/api.h"
#include "event/event.h"
#include "exit/vcpu.h"
#include "route/router.h"
#include "sandbox/self_exec.h"
#include "snapshot/format.h"
#include "snapshot/snapshot.h"
#include "stats/metrics.h"
#include "stats/stats.h"
#include "stats/trace.h"
#include "transport/transport.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/proc.h"
#include "vm/cpu_setup.h"
#include "vm/vm.h"
#include "vmm/live.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

struct vcpu_boot_state {
	struct kvm_lapic_state lapic;
	struct kvm_fpu fpu;
	bool have_lapic;
};

static struct {
	struct vmmux_config *cfg;
	struct vm vm;
	uint8_t *image;
	size_t image_len;
	struct load_opts load;
	char *cmdline;
	struct boot_image boot;
	struct vcpu_boot_state *boot_state;
	struct kvm_irqchip irqchip_boot[3];
	struct kvm_pit_state2 pit_boot;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic bool stopping;
	_Atomic bool reset_pending;
	_Atomic bool any_halted;
	_Atomic bool pause_pending; /* machine_pause: vCPUs and dispatcher hold */
	unsigned paused;	    /* threads holding for it */
	int status;
	bool *halted; /* per vCPU: stopped for good (HLT, or waiting for SIPI) */
	unsigned nhalted;
	unsigned arrived;
	uint64_t reset_gen;
	unsigned resets;
	int wake_fd; /* wakes the supervisor */
	int stop_fd; /* written once when the run ends, never read: every
		      * poller but the supervisor has it in its set */
	int kill_signal;
	FILE *stats_json;			   /* opened before the run, written at its end */
	const struct machine_boot_hook *boot_hook; /* or NULL */
} M = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .wake_fd = -1,
    .stop_fd = -1,
};

struct vm *machine_vm(void)
{
	return &M.vm;
}

const struct vmmux_config *machine_config(void)
{
	return M.cfg;
}

bool machine_stopping(void)
{
	return atomic_load(&M.stopping);
}

int machine_exit_status(void)
{
	pthread_mutex_lock(&M.lock);
	int s = M.status;
	pthread_mutex_unlock(&M.lock);
	return s;
}

unsigned machine_resets(void)
{
	pthread_mutex_lock(&M.lock);
	unsigned n = M.resets;
	pthread_mutex_unlock(&M.lock);
	return n;
}

bool machine_reset_pending(void)
{
	return atomic_load(&M.reset_pending);
}

void machine_wake_supervisor(void)
{
	if (M.wake_fd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(M.wake_fd, &one, sizeof(one));
		(void)w;
	}
}

int machine_on_main(int (*fn)(void *arg), void *arg)
{
	bool on = router_wait_begin();
	int rc = self_exec_call(fn, arg);
	if (rc < 0 && errno == ESRCH && !self_exec_running())
		rc = MACHINE_ON_MAIN_CLOSED;
	router_wait_end(on);
	return rc;
}

static void wake_main_loop(void)
{
	machine_wake_supervisor();
	if (M.stop_fd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(M.stop_fd, &one, sizeof(one));
		(void)w;
	}
}

static void host_queue_wake(void);

static void kick_all(void)
{
	for (unsigned i = 0; i < M.vm.ncpus; i++)
		vcpu_kick(i);
}

void machine_stop(int status, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&M.lock);
	bool first = !atomic_load(&M.stopping);
	if (first) {
		M.status = status;
		atomic_store(&M.stopping, true);
	}
	pthread_cond_broadcast(&M.cond);
	pthread_mutex_unlock(&M.lock);

	if (!first) {
		log_debug("already ending; ignored: %s", why);
		return;
	}
	bool failure = status != 0 && status % 2 == 0;
	log_msg(failure ? VMMUX_LOG_ERROR : VMMUX_LOG_INFO, "%s (exit status %d)", why, status);
	pvmm_abort_waits();
	kick_all();
	wake_main_loop();
	host_queue_wake(); /* a control thread waiting for a raise stops waiting */
}

void machine_reset(const char *why)
{
	pthread_mutex_lock(&M.lock);
	bool already = atomic_load(&M.reset_pending);
	atomic_store(&M.reset_pending, true);
	pthread_cond_broadcast(&M.cond);
	pthread_mutex_unlock(&M.lock);
	if (!already) {
		log_info("reset: %s", why);
		kick_all();
	}
}

int machine_irq_line(uint32_t line, int level)
{
	return vm_irq_line(&M.vm, line, level);
}

void machine_vcpu_halt(unsigned index)
{
	pthread_mutex_lock(&M.lock);
	if (index < M.vm.ncpus && !M.halted[index]) {
		M.halted[index] = true;
		M.nhalted++;
		atomic_store(&M.any_halted, true);
	}
	bool all = M.nhalted == M.vm.ncpus;
	pthread_mutex_unlock(&M.lock);
	log_info("vCPU %u halted; without the in-kernel irqchip nothing can wake it", index);
	if (all)
		machine_stop(EXIT_GUEST_CRASH, "guest halted: every vCPU executed HLT and "
					       "nothing can wake them (no in-kernel irqchip)");
}

bool machine_vcpu_parked(unsigned index)
{
	pthread_mutex_lock(&M.lock);
	bool parked = M.halted != NULL && index < M.vm.ncpus && M.halted[index];
	pthread_mutex_unlock(&M.lock);
	return parked;
}

void machine_set_boot_hook(const struct machine_boot_hook *h)
{
	M.boot_hook = h;
}

/* Save what KVM gave each vCPU and the irqchip at creation, for resets. */
static int save_boot_state(struct errbuf *e)
{
	M.boot_state = calloc(M.vm.ncpus, sizeof(*M.boot_state));
	if (M.boot_state == NULL)
		return err_set(e, "out of memory");
	for (unsigned i = 0; i < M.vm.ncpus; i++) {
		struct vcpu_boot_state *b = &M.boot_state[i];
		int fd = M.vm.vcpus[i].fd;
		if (ioctl(fd, KVM_GET_FPU, &b->fpu) < 0)
			return err_set(e, "vCPU %u: KVM_GET_FPU: %s", i, strerror(errno));
		if (M.vm.irqchip) {
			if (ioctl(fd, KVM_GET_LAPIC, &b->lapic) < 0)
				return err_set(e, "vCPU %u: KVM_GET_LAPIC: %s", i, strerror(errno));
			b->have_lapic = true;
		}
	}
	if (M.vm.irqchip) {
		for (unsigned chip = 0; chip < 3; chip++) {
			M.irqchip_boot[chip].chip_id = chip;
			if (ioctl(M.vm.vm_fd, KVM_GET_IRQCHIP, &M.irqchip_boot[chip]) < 0)
				return err_set(e, "KVM_GET_IRQCHIP %u: %s", chip, strerror(errno));
		}
		if (ioctl(M.vm.vm_fd, KVM_GET_PIT2, &M.pit_boot) < 0)
			return err_set(e, "KVM_GET_PIT2: %s", strerror(errno));
	}
	return 0;
}

/* Load the image and set every vCPU to its boot state (then the boot hook's,
 * machine.h). Called at start and on reset (with every vCPU thread waiting
 * outside KVM_RUN). */
static int boot_machine(bool reset, struct errbuf *e)
{
	if (loader_load(M.cfg->kernel, M.image, M.image_len, &M.load, &M.vm.mem, &M.boot, e))
		return -1;
	if (cpu_setup_tables(&M.vm.mem, M.boot.mode, e))
		return -1;
	if (reset && M.vm.irqchip) {
		for (unsigned chip = 0; chip < 3; chip++)
			if (ioctl(M.vm.vm_fd, KVM_SET_IRQCHIP, &M.irqchip_boot[chip]) < 0)
				return err_set(e, "KVM_SET_IRQCHIP %u: %s", chip, strerror(errno));
		if (ioctl(M.vm.vm_fd, KVM_SET_PIT2, &M.pit_boot) < 0)
			return err_set(e, "KVM_SET_PIT2: %s", strerror(errno));
	}
	M.nhalted = 0;
	for (unsigned i = 0; i < M.vm.ncpus; i++) {
		int fd = M.vm.vcpus[i].fd;
		if (reset) {
			struct vcpu_boot_state *b = &M.boot_state[i];
			struct kvm_vcpu_events events;
			memset(&events, 0, sizeof(events));
			if (ioctl(fd, KVM_SET_VCPU_EVENTS, &events) < 0)
				return err_set(e, "vCPU %u: KVM_SET_VCPU_EVENTS: %s", i,
					       strerror(errno));
			if (ioctl(fd, KVM_SET_FPU, &b->fpu) < 0)
				return err_set(e, "vCPU %u: KVM_SET_FPU: %s", i, strerror(errno));
			if (b->have_lapic && ioctl(fd, KVM_SET_LAPIC, &b->lapic) < 0)
				return err_set(e, "vCPU %u: KVM_SET_LAPIC: %s", i, strerror(errno));
		}
		if (reset) {
			vcpu_reset_debug(i);
			if (vm_vcpu_guest_debug(&M.vm, i, M.cfg, false, e) < 0)
				return -1;
		}
		int r = cpu_setup_vcpu(fd, &M.boot, &M.vm.mem, i, M.vm.ncpus, M.vm.irqchip, e);
		if (r < 0)
			return -1;
		M.halted[i] = r == 1;
		M.nhalted += r == 1;
	}
	atomic_store(&M.any_halted, M.nhalted > 0);
	/* A guest kind's own boot state, over the loader's. */
	if (M.boot_hook != NULL && M.boot_hook->boot(&M.vm, reset, e) < 0)
		return err_prefix(e, "%s boot", M.boot_hook->name);
	return 0;
}

/* The last vCPU to arrive performs the reset; called with M.lock held. */
static void perform_reset(void)
{
	struct errbuf e;
	log_info("resetting the VM (reset %u)", M.resets + 1);
	/* The roles' resets may wait for a parallel VMM (and its successor):
	 * not under the machine's mutex, which the supervisor takes (a signal
	 * ends the run through machine_stop). The other vCPUs wait for
	 * reset_gen meanwhile; every vCPU has arrived, so none reads what is
	 * reset below. */
	pthread_mutex_unlock(&M.lock);
	vmm_reset_all();
	pthread_mutex_lock(&M.lock);
	if (boot_machine(true, &e) < 0) {
		pthread_mutex_unlock(&M.lock);
		machine_stop(EXIT_HOST, "reset failed: %s", e.msg);
		pthread_mutex_lock(&M.lock);
	}
	M.resets++;
}

bool machine_vcpu_gate(unsigned index)
{
	if (!atomic_load_explicit(&M.reset_pending, memory_order_acquire) &&
	    !atomic_load_explicit(&M.stopping, memory_order_acquire) &&
	    !atomic_load_explicit(&M.any_halted, memory_order_acquire) &&
	    !atomic_load_explicit(&M.pause_pending, memory_order_acquire))
		return true;

	/* This vCPU may wait here for long (halted, or for a reset): it must
	 * not hold back the router's grace periods meanwhile. */
	router_thread_offline();
	bool flushed = false;
	pthread_mutex_lock(&M.lock);
	for (;;) {
		if (atomic_load(&M.stopping)) {
			pthread_mutex_unlock(&M.lock);
			router_thread_online();
			return false;
		}
		if (atomic_load(&M.reset_pending)) {
			if (!flushed) {
				/* Finish an I/O that KVM left pending before state is reset. */
				pthread_mutex_unlock(&M.lock);
				vcpu_flush(index);
				flushed = true;
				pthread_mutex_lock(&M.lock);
				continue;
			}
			uint64_t gen = M.reset_gen;
			if (++M.arrived == M.vm.ncpus) {
				perform_reset();
				M.arrived = 0;
				M.reset_gen++;
				atomic_store(&M.reset_pending, false);
				pthread_cond_broadcast(&M.cond);
			} else {
				while (M.reset_gen == gen && !atomic_load(&M.stopping))
					pthread_cond_wait(&M.cond, &M.lock);
			}
			flushed = false;
			continue;
		}
		if (atomic_load(&M.pause_pending)) {
			/* machine_pause: at an event boundary, its I/O completed */
			if (!flushed) {
				pthread_mutex_unlock(&M.lock);
				vcpu_flush(index);
				flushed = true;
				pthread_mutex_lock(&M.lock);
				continue;
			}
			M.paused++;
			pthread_cond_broadcast(&M.cond);
			while (atomic_load(&M.pause_pending) && !atomic_load(&M.stopping) &&
			       !atomic_load(&M.reset_pending))
				pthread_cond_wait(&M.cond, &M.lock);
			M.paused--;
			flushed = false;
			continue;
		}
		if (M.halted[index]) {
			pthread_cond_wait(&M.cond, &M.lock);
			continue;
		}
		pthread_mutex_unlock(&M.lock);
		router_thread_online();
		return true;
	}
}

static void wake_dispatcher(void);

bool machine_pause_pending(void)
{
	return atomic_load(&M.pause_pending);
}

/* Nothing in flight: no VMM handling an event, every parallel VMM's posted
 * ring consumed, no doorbell count left unread. */
static bool quiet(const char **who)
{
	for (size_t id = 0; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v == NULL)
			continue;
		*who = v->name;
		if (atomic_load(&v->load.inflight) != 0 || !pvmm_drained(v) ||
		    ioregion_doorbells_waiting(v))
			return false;
	}
	*who = "(the compiled routes' thread)";
	return ioregion_quiet();
}

int machine_pause(uint64_t timeout_ns, struct errbuf *e)
{
	uint64_t until = tp_now_ns() + timeout_ns;
	pthread_mutex_lock(&M.lock);
	if (atomic_load(&M.stopping) || atomic_load(&M.reset_pending) ||
	    atomic_load(&M.pause_pending)) {
		pthread_mutex_unlock(&M.lock);
		return err_set(e, "the machine is %s",
			       atomic_load(&M.stopping)	       ? "stopping"
			       : atomic_load(&M.reset_pending) ? "being reset"
							       : "paused already");
	}
	atomic_store(&M.pause_pending, true);
	pthread_cond_broadcast(&M.cond); /* halted vCPUs wait on it */
	pthread_mutex_unlock(&M.lock);
	kick_all();
	wake_dispatcher(); /* it holds at the top of its loop */
	bool on = router_wait_begin();
	unsigned want = M.vm.ncpus + 1;
	int rc = 0;
	pthread_mutex_lock(&M.lock);
	while (M.paused < want && rc == 0) {
		if (atomic_load(&M.stopping) || atomic_load(&M.reset_pending)) {
			rc = err_set(e, "the machine began to %s meanwhile",
				     atomic_load(&M.stopping) ? "stop" : "reset");
			break;
		}
		/* re-check every 10 ms; kicked again */
		struct timespec ts = clock_deadline_in(10000000ull);
		pthread_cond_timedwait(&M.cond, &M.lock, &ts);
		if (M.paused < want && tp_now_ns() > until)
			rc = err_set(e,
				     "the vCPUs did not reach an event boundary within %llu ms (%u "
				     "of %u threads held)",
				     (unsigned long long)(timeout_ns / 1000000), M.paused, want);
		else if (M.paused < want) {
			pthread_mutex_unlock(&M.lock);
			kick_all();
			pthread_mutex_lock(&M.lock);
		}
	}
	pthread_mutex_unlock(&M.lock);
	/* What the routes compiled into KVM hold is delivered, and what is in
	 * flight to the VMMs (posted rings, doorbells, a delivery of the
	 * compiled-routes thread) finishes; stable over two looks. */
	unsigned calm = 0;
	while (rc == 0 && calm < 2) {
		ioregion_drain();
		const char *who = "";
		if (quiet(&who)) {
			calm++;
		} else {
			calm = 0;
			if (tp_now_ns() > until)
				rc = err_set(e,
					     "vmm '%s' did not finish its events within %llu ms (a "
					     "delivery, its posted ring or its doorbells)",
					     who, (unsigned long long)(timeout_ns / 1000000));
		}
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	router_wait_end(on);
	if (rc < 0)
		machine_resume();
	return rc;
}

void machine_resume(void)
{
	pthread_mutex_lock(&M.lock);
	atomic_store(&M.pause_pending, false);
	pthread_cond_broadcast(&M.cond);
	pthread_mutex_unlock(&M.lock);
}

/* The dispatcher holds while the machine is paused (machine_pause). */
static void dispatcher_hold(void)
{
	if (!atomic_load(&M.pause_pending))
		return;
	router_thread_offline();
	pthread_mutex_lock(&M.lock);
	M.paused++;
	pthread_cond_broadcast(&M.cond);
	while (atomic_load(&M.pause_pending) && !atomic_load(&M.stopping))
		pthread_cond_wait(&M.cond, &M.lock);
	M.paused--;
	pthread_mutex_unlock(&M.lock);
	router_thread_online();
}

/* The watchdog's expiry, CLOCK_MONOTONIC ns (tp_now_ns); 0: none to come
 * (no watchdog, or it expired). Written by the supervisor: when the event
 * goes to the dispatcher's queue, under the queue's lock with the event
 * (post), so that a live update's copy of both (machine_host_queue_copy)
 * has the event or the expiry to come, never neither nor both. */
static _Atomic uint64_t watchdog_at;
static bool watchdog_on; /* the run has one, expired or not (set before the threads start) */

static uint64_t post(uint16_t src, const struct vmmux_event *ev, bool watchdog);

static void raise_watchdog(void)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_PLATFORM;
	ev.key = VMMUX_PLAT_WATCHDOG;
	ev.count = 1;
	ev.vcpu = VMMUX_NO_VCPU;
	/* Routed to the main VMM (the default: the run ends), the supervisor
	 * delivers it itself, whatever the dispatcher is waiting for; routed
	 * to a VMM, the dispatcher delivers it. */
	router_thread_online();
	int r = vmm_host_deliver_main(&ev);
	router_thread_offline();
	if (r == 1)
		post(VMM_ID_NONE, &ev, true);
	else
		atomic_store(&watchdog_at, 0);
}

#define POLL_MAX       (3 * VMM_MAX + 4)
#define INPUT_RETRY_MS 10
#define HOSTQ_MAX      256 /* host events waiting for the dispatcher */

enum poll_kind {
	POLL_WAKE,
	POLL_SIGNAL,
	POLL_TIMER,
	POLL_INPUT,
	POLL_PARALLEL,
	POLL_API,
	POLL_LEFTOVER
};

/* Children of the previous programs to reap (live updates' address-space
 * holders, src/snapshot/update.c): their pids (machine_reap_later, before
 * the run), then their pidfds (set-up), which the supervisor polls; a
 * live update's holder_start asks which are left (machine_leftovers). */
#define LEFTOVERS_MAX 8
static struct {
	pthread_mutex_t lock;
	pid_t pid[LEFTOVERS_MAX];
	int pidfd[LEFTOVERS_MAX]; /* -1: reaped, or not ours */
	unsigned n;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

void machine_reap_later(pid_t pid)
{
	if (L.n < LEFTOVERS_MAX) {
		L.pid[L.n] = pid;
		L.pidfd[L.n++] = -1;
	}
}

unsigned machine_leftovers(pid_t *pids, unsigned max)
{
	unsigned k = 0;
	pthread_mutex_lock(&L.lock);
	for (unsigned i = 0; i < L.n && k < max; i++)
		if (L.pidfd[i] >= 0)
			pids[k++] = L.pid[i];
	pthread_mutex_unlock(&L.lock);
	return k;
}

/* Whether PID is a child of this process (its parent in /proc/PID/stat):
 * a pid named in the environment is trusted only then. */
static bool is_our_child(pid_t pid)
{
	char buf[512];
	const char *p = proc_stat_fields(pid, buf, sizeof(buf)); /* state ppid ... */
	int ppid = 0;
	return p != NULL && sscanf(p, " %*c %d", &ppid) == 1 && ppid == (int)getpid();
}

/* The supervisor: leftover I's pidfd is readable (it exited). */
static void reap_leftover(unsigned i)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)L.pidfd[i], &si, WEXITED | WNOHANG | __WALL) == 0 &&
	    si.si_pid == 0)
		return; /* not yet */
	pthread_mutex_lock(&L.lock);
	close(L.pidfd[i]);
	L.pidfd[i] = -1;
	pthread_mutex_unlock(&L.lock);
}

struct poll_set {
	struct pollfd fds[POLL_MAX];
	uint8_t kind[POLL_MAX];
	uint16_t owner[POLL_MAX];
	nfds_t n;
};

static void poll_add(struct poll_set *ps, int fd, enum poll_kind k, uint16_t owner)
{
	if (ps->n >= POLL_MAX)
		return;
	ps->fds[ps->n] = (struct pollfd){.fd = fd, .events = POLLIN};
	ps->kind[ps->n] = (uint8_t)k;
	ps->owner[ps->n++] = owner;
}

/* The dispatcher's queue of host events. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	struct vmmux_event q[HOSTQ_MAX];
	uint16_t src[HOSTQ_MAX]; /* VMM_ID_NONE: the host; else the VMM that raised it */
	uint64_t posted;	 /* tickets handed out (queue tail) */
	uint64_t taken;		 /* events taken (queue head) */
	uint64_t done;		 /* events delivered */
	uint64_t dropped;
	int efd; /* written for each event; the dispatcher polls it */
} H = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .done_cond = PTHREAD_COND_INITIALIZER,
    .efd = -1,
};

uint64_t machine_post_event(const struct vmmux_event *ev)
{
	return post(VMM_ID_NONE, ev, false);
}

uint64_t machine_post_raised(uint16_t src, const struct vmmux_event *ev)
{
	return post(src, ev, false);
}

/* WATCHDOG: EV is the watchdog's expiry, which is then no longer to come
 * (watchdog_at cleared with the event queued, under the lock). */
static uint64_t post(uint16_t src, const struct vmmux_event *ev, bool watchdog)
{
	if (machine_stopping()) {
		if (watchdog)
			atomic_store(&watchdog_at, 0);
		return 0;
	}
	pthread_mutex_lock(&H.lock);
	if (watchdog)
		atomic_store(&watchdog_at, 0);
	if (H.posted - H.taken >= HOSTQ_MAX || H.efd < 0) {
		uint64_t d = ++H.dropped;
		pthread_mutex_unlock(&H.lock);
		if ((d & (d - 1)) == 0) { /* logged at 1, 2, 4, 8... */
			char desc[256];
			log_error("the host's event queue is full: %s dropped (%llu so far)",
				  event_describe(ev, desc, sizeof(desc)), (unsigned long long)d);
		}
		return 0;
	}
	H.q[H.posted % HOSTQ_MAX] = *ev;
	H.src[H.posted % HOSTQ_MAX] = src;
	uint64_t ticket = ++H.posted;
	pthread_mutex_unlock(&H.lock);
	uint64_t one = 1;
	ssize_t w = write(H.efd, &one, sizeof(one));
	(void)w;
	return ticket;
}

unsigned machine_host_queue_copy(struct vmmux_event *ev, uint16_t *src, unsigned max,
				 bool *watchdog, uint64_t *watchdog_expiry)
{
	unsigned n = 0;
	pthread_mutex_lock(&H.lock);
	*watchdog = watchdog_on;
	*watchdog_expiry = atomic_load(&watchdog_at);
	for (uint64_t t = H.taken; t < H.posted && n < max; t++, n++) {
		ev[n] = H.q[t % HOSTQ_MAX];
		ev[n].data = NULL;
		src[n] = H.src[t % HOSTQ_MAX];
	}
	pthread_mutex_unlock(&H.lock);
	return n;
}

static void wake_dispatcher(void)
{
	uint64_t one = 1;
	if (H.efd >= 0) {
		ssize_t w = write(H.efd, &one, sizeof(one));
		(void)w;
	}
}

static void host_queue_wake(void)
{
	pthread_mutex_lock(&H.lock);
	pthread_cond_broadcast(&H.done_cond);
	pthread_mutex_unlock(&H.lock);
}

bool machine_wait_event(uint64_t ticket, uint64_t timeout_ns)
{
	if (ticket == 0)
		return false;
	bool on = router_wait_begin();
	struct timespec ts = clock_deadline_in(timeout_ns);
	pthread_mutex_lock(&H.lock);
	int rc = 0;
	while (H.done < ticket && rc == 0 && !machine_stopping())
		rc = pthread_cond_timedwait(&H.done_cond, &H.lock, &ts);
	bool done = H.done >= ticket;
	pthread_mutex_unlock(&H.lock);
	router_wait_end(on);
	return done;
}

/* Deliver what the queue holds (the dispatcher). */
static void host_events(void)
{
	for (;;) {
		pthread_mutex_lock(&H.lock);
		if (H.taken == H.posted) {
			pthread_mutex_unlock(&H.lock);
			return;
		}
		struct vmmux_event ev = H.q[H.taken % HOSTQ_MAX];
		uint16_t src = H.src[H.taken % HOSTQ_MAX];
		H.taken++;
		pthread_mutex_unlock(&H.lock);
		vmm_dispatch_raised(src, &ev, src == VMM_ID_NONE ? 0 : 1);
		pthread_mutex_lock(&H.lock);
		H.done++;
		pthread_cond_broadcast(&H.done_cond);
		pthread_mutex_unlock(&H.lock);
	}
}

/*
 * The dispatcher: the host's own deliveries (fault, watchdog and control
 * API events from its queue), events VMMs raised on their async rings, and
 * in-process VMMs' input. It may wait for a parallel VMM (offline, bounded);
 * nobody but the control thread's platform.raise waits for it (bounded).
 */
static void *dispatch_main(void *arg)
{
	(void)arg;
	machine_thread_enter(SELF_DISPATCHER);
	router_thread_register();
	pvmm_thread_slot = M.vm.ncpus; /* the host's request slot */
	bool paused[VMM_MAX] = {false};
	while (!machine_stopping()) {
		dispatcher_hold();
		struct poll_set ps = {.n = 0};
		bool any_paused = false;
		poll_add(&ps, M.stop_fd, POLL_WAKE, VMM_ID_NONE);
		poll_add(&ps, H.efd, POLL_WAKE, VMM_ID_NONE);
		for (size_t id = 1; id < vmm_count(); id++) {
			struct vmm *v = vmm_get((uint16_t)id);
			int afd = v ? pvmm_async_fd(v) : -1;
			if (afd >= 0)
				poll_add(&ps, afd, POLL_PARALLEL, (uint16_t)id);
			int fd = vmm_input_fd((uint16_t)id);
			if (fd < 0)
				continue;
			if (paused[id]) {
				any_paused = true;
				continue;
			}
			poll_add(&ps, fd, POLL_INPUT, (uint16_t)id);
		}
		/* a VMM added at run time is polled within 100 ms */
		int timeout = any_paused ? INPUT_RETRY_MS : 100;
		router_thread_offline();
		int r = poll(ps.fds, ps.n, timeout);
		router_thread_online();
		if (r < 0) {
			if (errno == EINTR)
				continue;
			machine_stop(EXIT_HOST, "dispatcher: poll: %s", strerror(errno));
			break;
		}
		memset(paused, 0, sizeof(paused));
		for (nfds_t i = 0; i < ps.n && !machine_stopping(); i++) {
			if (!ps.fds[i].revents)
				continue;
			switch (ps.kind[i]) {
			case POLL_WAKE:
				if (ps.fds[i].fd == H.efd) {
					uint64_t n;
					ssize_t rd = read(H.efd, &n, sizeof(n));
					(void)rd;
					host_events();
				}
				break;
			case POLL_INPUT:
				if (vmm_input(ps.owner[i]) == 0)
					paused[ps.owner[i]] = true;
				break;
			case POLL_PARALLEL: {
				struct vmm *v = vmm_get(ps.owner[i]);
				if (v && pvmm_async_fd(v) == ps.fds[i].fd)
					pvmm_async_ready(v);
				break;
			}
			default:
				break;
			}
		}
	}
	router_thread_unregister();
	return NULL;
}

/*
 * The control thread: the API socket. It reads, parses and answers
 * read-only requests, and sends the replies, never waiting: every live
 * change goes to the live-change worker (below), in order, and its reply
 * comes back through the socket's work eventfd (src/api/api.h).
 *
 * The live-change worker: the live changes (src/vmm/live.c), one at a
 * time in the order they were received. Its waits are bounded
 * (docs/architecture.md); it never delivers to a registered parallel VMM
 * (platform.raise goes to the dispatcher; a swap's state restore goes to
 * the new instance, which no other thread reaches yet, through the host's
 * slot).
 *
 * The parallel VMMs that live changes start are forked by the main thread
 * (machine_on_main: their parent for PR_SET_PDEATHSIG, which fires when
 * that thread ends, and the thread that outlives a live update's execve).
 * After its loop the worker parks until the teardown has stopped every VMM
 * (control_release), and only then ends; the control thread parks
 * likewise, so that the run's end knows both have left their loops.
 */
static pthread_mutex_t control_park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t control_park_cond = PTHREAD_COND_INITIALIZER;
static bool control_released;
static unsigned control_parked;	 /* threads out of their loop: they touch nothing any more */
static unsigned control_threads; /* the control thread and the worker, once started */

static void control_park(void)
{
	pthread_mutex_lock(&control_park_lock);
	control_parked++;
	pthread_cond_broadcast(&control_park_cond);
	while (!control_released)
		pthread_cond_wait(&control_park_cond, &control_park_lock);
	pthread_mutex_unlock(&control_park_lock);
}

/* Wait until the control thread and the worker have left their loops (a
 * change the worker was executing when the run began to end is finished,
 * its reply queued): only then may the run's end close the control
 * socket, stop the compiled routes and the VMMs. Bounded: every wait of
 * the worker ends when the machine stops, or at its own deadline; the
 * control thread waits for nothing. */
static void control_wait_parked(void)
{
	pthread_mutex_lock(&control_park_lock);
	while (control_parked < control_threads)
		pthread_cond_wait(&control_park_cond, &control_park_lock);
	pthread_mutex_unlock(&control_park_lock);
}

static void control_release(void)
{
	pthread_mutex_lock(&control_park_lock);
	control_released = true;
	pthread_cond_broadcast(&control_park_cond);
	pthread_mutex_unlock(&control_park_lock);
}

static void *control_main(void *arg)
{
	(void)arg;
	machine_thread_enter(SELF_CONTROL);
	router_thread_register();
	pvmm_thread_slot = M.vm.ncpus;
	while (!machine_stopping()) {
		struct pollfd pf[2];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){.fd = M.stop_fd, .events = POLLIN};
		int api_fd[1];
		if (api_poll_fds(api_fd, 1) == 1)
			pf[n++] = (struct pollfd){.fd = api_fd[0], .events = POLLIN};
		router_thread_offline();
		int r = poll(pf, n, -1);
		router_thread_online();
		if (r < 0) {
			if (errno == EINTR)
				continue;
			machine_stop(EXIT_HOST, "control thread: poll: %s", strerror(errno));
			break;
		}
		if (n > 1 && pf[1].revents && !machine_stopping())
			api_ready(pf[1].fd);
	}
	api_worker_stop(); /* the worker ends its change and takes no more */
	router_thread_unregister();
	control_park();
	return NULL;
}

static void *worker_main(void *arg)
{
	(void)arg;
	machine_thread_enter(SELF_WORKER);
	router_thread_register();
	pvmm_thread_slot = M.vm.ncpus; /* a swapped-in VMM's state restore */
	for (;;) {
		router_thread_offline();
		struct api_job *j = api_job_next();
		router_thread_online();
		if (j == NULL)
			break;
		api_job_run(j);
	}
	router_thread_unregister();
	control_park(); /* until the VMMs it forked are stopped */
	return NULL;
}

/*
 * The supervisor (the main thread): signals, the watchdog, parallel VMMs'
 * exits (pidfds) and stderr, and their restarts; until the run ends. It
 * waits for nothing but its poll: fault and watchdog events go to the
 * dispatcher, restarts' set-up to workers.
 */
/* machine_signals_hold: the supervisor leaves the run's signals pending. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool want; /* asked for */
	bool held; /* the supervisor's poll set has no signalfd */
} SH = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

void machine_signals_hold(bool on)
{
	pthread_mutex_lock(&SH.lock);
	SH.want = on;
	pthread_mutex_unlock(&SH.lock);
	machine_wake_supervisor();
	if (!on)
		return;
	pthread_mutex_lock(&SH.lock);
	while (!SH.held && !machine_stopping()) {
		struct timespec until = clock_deadline_in(10000000ull);
		pthread_cond_timedwait(&SH.cond, &SH.lock, &until);
	}
	pthread_mutex_unlock(&SH.lock);
}

static void supervise(int sig_fd, int timer_fd)
{
	while (!machine_stopping()) {
		/* Restarts first: a restarted VMM's new pidfd must be in this
		 * round's poll set. */
		int timeout = pvmm_tick();
		struct poll_set ps = {.n = 0};
		poll_add(&ps, M.wake_fd, POLL_WAKE, VMM_ID_NONE);
		/* the run's signals, unless a live update's execve is at hand:
		 * then they stay pending, for the new program */
		pthread_mutex_lock(&SH.lock);
		bool hold = SH.want;
		SH.held = hold;
		pthread_cond_broadcast(&SH.cond);
		pthread_mutex_unlock(&SH.lock);
		if (!hold)
			poll_add(&ps, sig_fd, POLL_SIGNAL, VMM_ID_NONE);
		if (timer_fd >= 0)
			poll_add(&ps, timer_fd, POLL_TIMER, VMM_ID_NONE);
		for (unsigned i = 0; i < L.n; i++)
			if (L.pidfd[i] >= 0)
				poll_add(&ps, L.pidfd[i], POLL_LEFTOVER, (uint16_t)i);
		for (size_t id = 1; id < vmm_count(); id++) {
			struct vmm *v = vmm_get((uint16_t)id);
			int pf[2];
			unsigned np = v ? pvmm_sup_fds(v, pf) : 0;
			for (unsigned k = 0; k < np; k++)
				poll_add(&ps, pf[k], POLL_PARALLEL, (uint16_t)id);
		}
		/* a VMM added at run time is watched within 100 ms */
		if (timeout < 0 || timeout > 100)
			timeout = 100;
		int r = poll(ps.fds, ps.n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			machine_stop(EXIT_HOST, "supervisor: poll: %s", strerror(errno));
			break;
		}
		for (nfds_t i = 0; i < ps.n; i++) {
			if (!ps.fds[i].revents)
				continue;
			uint64_t v;
			ssize_t rd;
			switch (ps.kind[i]) {
			case POLL_WAKE:
				rd = read(M.wake_fd, &v, sizeof(v));
				(void)rd;
				break;
			case POLL_SIGNAL: {
				struct signalfd_siginfo si;
				if (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					M.kill_signal = (int)si.ssi_signo;
					machine_stop(128 + (int)si.ssi_signo,
						     "stopped by signal %s",
						     strsignal((int)si.ssi_signo));
				}
				break;
			}
			case POLL_TIMER:
				rd = read(timer_fd, &v, sizeof(v));
				(void)rd;
				raise_watchdog();
				break;
			case POLL_PARALLEL: {
				struct vmm *vm = vmm_get(ps.owner[i]);
				if (vm && !(ps.fds[i].revents & POLLNVAL))
					pvmm_sup_ready(vm, ps.fds[i].fd);
				break;
			}
			case POLL_LEFTOVER:
				reap_leftover(ps.owner[i]);
				break;
			default:
				break;
			}
		}
	}
}

/* The watchdog's timer, expiring NS from now, or at AT (CLOCK_MONOTONIC,
 * when not 0: a live update's, which keeps the old program's expiry; in the
 * past, it expires at once). -1 without one, -2 and E on error. */
static int start_watchdog(uint64_t ns, uint64_t at, struct errbuf *e)
{
	if (ns == 0 && at == 0)
		return -1;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (fd < 0)
		return err_set(e, "timerfd_create: %s", strerror(errno)), -2;
	if (at == 0)
		at = tp_now_ns() + ns;
	struct itimerspec its = {
	    .it_value = {.tv_sec = (time_t)(at / 1000000000ull),
			 .tv_nsec = (long)(at % 1000000000ull)},
	};
	atomic_store(&watchdog_at, at);
	if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		close(fd);
		return err_set(e, "timerfd_settime: %s", strerror(errno)), -2;
	}
	return fd;
}

static char *build_cmdline(const struct vmmux_config *c)
{
	/* As QEMU builds the multiboot command line: the kernel's path, a space,
	 * the appended text. */
	const char *append = c->append ? c->append : "";
	size_t len = strlen(c->kernel) + 1 + strlen(append) + 1;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s %s", c->kernel, append);
	return s;
}

static void write_stats(const struct vmmux_config *c)
{
	stats_set_vmm_extra(pvmm_stats_extra);
	if (c->stats)
		stats_print(stderr, vmm_stats_name);
	if (M.stats_json) {
		stats_print_json(M.stats_json, vmm_stats_name);
		if (fclose(M.stats_json) != 0)
			log_error("--stats-json %s: %s", c->stats_json, strerror(errno));
		M.stats_json = NULL;
	}
}

void machine_thread_enter(enum self_role role)
{
	if (self_filter_enter(role) < 0)
		machine_stop(EXIT_HOST, "the %s thread: cannot install its seccomp filter: %s",
			     self_filter_role_name(role), strerror(errno));
}

/* On liburcu's call_rcu thread (router_reclaimer_run). */
static void reclaimer_enter(void)
{
	if (self_filter_enter(SELF_RECLAIM) < 0)
		log_error("the %s thread: cannot install its seccomp filter: %s",
			  self_filter_role_name(SELF_RECLAIM), strerror(errno));
}

/* Build everything; returns 0 or an exit status with the error logged. */
static int machine_setup(struct vmmux_config *c)
{
	struct errbuf e;
	M.cfg = c;
	if (snapshot_restoring() && snapshot_restore_check(c, &e) < 0) {
		log_error("restore refused: %s", e.msg);
		return EXIT_USAGE;
	}

	/* vmmux's own filters, built before any thread of the run starts, and
	 * the base layer under them all (self_filter.h); each thread installs
	 * its role's (machine_thread_enter); the exec thread (the main thread,
	 * self_exec.h) has none. The reclamation thread is liburcu's: it
	 * installs its filter from a callback, now. */
	/* jansson seeds its hash function from /dev/urandom with its first
	 * object: now, not on a filtered thread (the control socket's). */
	json_object_seed(0);
	if (self_filter_init(!c->no_seccomp, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}
	{
		/* liburcu's thread starts now if it is not running yet: with
		 * every signal blocked, so that the run's signals go to the
		 * supervisor's signalfd, never to it. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		router_reclaimer_run(reclaimer_enter);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (c->no_seccomp)
		log_warn("--no-seccomp: vmmux's own threads run without their seccomp filters%s",
			 self_filter_base_found()
			     ? " (the base layer a live update inherited stays: it cannot be "
			       "removed)"
			     : ", and without the base layer under them");

	/* A statistics file that cannot be written is a bad command line, found
	 * before the guest runs rather than after. */
	if (c->stats_json && (M.stats_json = fopen(c->stats_json, "we")) == NULL) {
		log_error("--stats-json %s: %s", c->stats_json, strerror(errno));
		return EXIT_USAGE;
	}
	/* The same for the trace; its rings (one per vCPU and the main loop's)
	 * are allocated now, off the event path. */
	if (c->trace && trace_open(c->trace, c->cpus, c->trace_events, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}

	if (vm_create(&M.vm, c, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}
	M.halted = calloc(M.vm.ncpus, sizeof(bool));
	if (M.halted == NULL || save_boot_state(&e) < 0) {
		log_error("%s", M.halted ? e.msg : "out of memory");
		return EXIT_HOST;
	}
	/* The table first (VMM ids are the config's order, as the registry
	 * gives them): parallel VMMs are wired to KVM as the table says. */
	const struct route_spec *specs = c->routes;
	size_t nspecs = c->nroutes;
	struct route_spec *restored = NULL;
	uint64_t generation = 0;
	if (snapshot_restoring()) { /* the route set the snapshot holds */
		if (snapshot_restore_routes(&restored, &nspecs, &generation, &e) < 0) {
			log_error("%s", e.msg);
			return EXIT_USAGE;
		}
		specs = restored;
	}
	struct route_table *t = route_table_build(specs, nspecs, config_vmm_resolve, c, &e);
	if (t == NULL) {
		free(restored);
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}
	struct route_range ranges[16];
	if (route_table_msr_ranges(t, ranges, 16, &e) < 0) {
		route_table_free(t);
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}
	router_init(t);
	if (restored != NULL)
		t->generation = generation; /* no reader yet */
	int lrc = live_init(specs, nspecs, &e);
	free(restored);
	if (lrc < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}
	if (vm_set_msr_filter(&M.vm, t, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}

	if (loader_read_file(c->kernel, M.vm.mem.size, &M.image, &M.image_len, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_IMAGE;
	}
	M.load = c->load;
	M.cmdline = build_cmdline(c);
	M.load.cmdline = M.cmdline;
	if (boot_machine(false, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_IMAGE;
	}
	if (snapshot_restoring()) { /* memory, KVM state, vCPUs: the snapshot's */
		if (snapshot_restore_machine(&M.vm, M.halted, &e) < 0) {
			log_error("%s", e.msg);
			return EXIT_HOST;
		}
		M.nhalted = 0;
		for (unsigned i = 0; i < M.vm.ncpus; i++)
			M.nhalted += M.halted[i];
		atomic_store(&M.any_halted, M.nhalted > 0);
	}
	if (pvmm_global_init(M.vm.ncpus + 1, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}
	/* The run's thread's own filter (the supervisor's), from before the
	 * first parallel VMM starts to the end of the run: every thread of
	 * the run stacks its role's on this one. The VMM processes are forked
	 * by the exec thread (the main thread, base layer only) and inherit
	 * only the base layer. */
	if (self_filter_enter(SELF_SUPERVISOR) < 0) {
		log_error("the supervisor thread: cannot install its seccomp filter: %s",
			  strerror(errno));
		return EXIT_HOST;
	}
	vmm_registry_set_memory(&M.vm.mem);
	pvmm_thread_slot = M.vm.ncpus; /* the main thread's request slot */
	if (snapshot_restoring() && snapshot_restore_pvmms(&e) < 0) { /* live update */
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (vmm_registry_init(c->vmms, c->nvmms, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (snapshot_restoring() && snapshot_restore_vmms(&e) < 0) {
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}
	/* The control socket, once there are VMMs to act on; a path that is
	 * taken is a bad command line. */
	const struct snap_view *ho;
	bool adopt = snapshot_restore_handover(&ho) && ho->ho_api_fd >= 0; /* live update */
	if (c->api_sock != NULL &&
	    (adopt ? api_adopt(ho->ho_api_fd, c->api_sock, &e) : api_open(c->api_sock, &e)) < 0) {
		log_error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (vm_set_guest_debug(&M.vm, c, &e) < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}
	M.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	M.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	H.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (M.wake_fd < 0 || M.stop_fd < 0 || H.efd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return EXIT_HOST;
	}
	if (snapshot_restoring()) /* a live update: what its dispatcher had queued */
		(void)snapshot_restore_host_queue();
	/* our children: their pids stay theirs until we reap them */
	for (unsigned i = 0; i < L.n; i++)
		if (is_our_child(L.pid[i]))
			L.pidfd[i] = (int)syscall(SYS_pidfd_open, L.pid[i], 0);
	return 0;
}

bool machine_irq_routed_to_main(uint16_t vmm, unsigned line)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_IRQ;
	ev.key = line;
	ev.value = 1;
	ev.count = 1;
	ev.src_kind = VMMUX_SRC_VMM;
	ev.src_id = vmm;
	return router_resolve(router_current(), &ev).vmm == VMM_ID_MAIN;
}

static void machine_teardown(void)
{
	api_close(); /* first: nothing is served while the machine goes */
	if (M.stats_json) {
		/* The run failed before it started: its (empty) statistics are
		 * still a valid JSON document. */
		stats_print_json(M.stats_json, vmm_stats_name);
		fclose(M.stats_json);
	}
	M.stats_json = NULL;
	/* The trace of the run (or, when it failed to start, an empty one), with
	 * the VMMs' names while the registry still has them. */
	struct errbuf te;
	if (trace_write(vmm_stats_name, &te) < 0)
		log_error("%s", te.msg);
	metrics_stop();
	vmm_registry_fini();
	control_release(); /* every VMM stopped: the worker may end */
	live_fini();
	pvmm_global_fini();
	router_fini();
	vm_destroy(&M.vm);
	free(M.image);
	free(M.cmdline);
	free(M.halted);
	free(M.boot_state);
	if (M.wake_fd >= 0)
		close(M.wake_fd);
	if (M.stop_fd >= 0)
		close(M.stop_fd);
	pthread_mutex_lock(&H.lock);
	if (H.efd >= 0)
		close(H.efd);
	H.efd = -1;
	pthread_mutex_unlock(&H.lock);
	M.stop_fd = -1;
	M.image = NULL;
	M.cmdline = NULL;
	M.halted = NULL;
	M.boot_state = NULL;
	M.wake_fd = -1;
}

/* The run, on its own thread (machine_run): set-up, the vCPUs and the other
 * threads, the supervisor's loop, the end. */
static int run_body(void *arg)
{
	struct vmmux_config *c = arg;
	int status = machine_setup(c);
	if (status != 0) {
		machine_teardown();
		return status;
	}

	/* Signals that end the run are read by the main loop; every thread
	 * inherits the mask, so none of them is interrupted by these. */
	sigset_t stop_sigs;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	int sig_fd = signalfd(-1, &stop_sigs, SFD_CLOEXEC);
	struct errbuf e;
	/* a live update keeps the old program's expiry (or its having expired) */
	watchdog_on = c->watchdog_ns != 0;
	uint64_t wd_ns = c->watchdog_ns, wd_at = 0;
	if (snapshot_restore_watchdog(&wd_at) && wd_at == 0)
		wd_ns = 0;
	int timer_fd = start_watchdog(wd_ns, wd_at, &e);
	if (sig_fd < 0 || timer_fd == -2) {
		log_error("%s", sig_fd < 0 ? strerror(errno) : e.msg);
		machine_teardown();
		return EXIT_HOST;
	}
	vcpu_kick_signal_init();
	snapshot_restore_done();
	router_set_kick(kick_all); /* vCPUs stay online in KVM_RUN (vcpu.c) */
	router_thread_register();
	stats_start();
	static const struct metrics_vmm_source metrics_src = {vmm_count, vmm_get, vmm_stats_name,
							      pvmm_stats_extra};
	metrics_start(&metrics_src);

	pthread_t *tids = calloc(M.vm.ncpus, sizeof(pthread_t));
	unsigned started = 0;
	for (; tids && started < M.vm.ncpus; started++) {
		if (pthread_create(&tids[started], NULL, vcpu_thread_main,
				   (void *)(uintptr_t)started) != 0) {
			machine_stop(EXIT_HOST, "cannot start the thread of vCPU %u", started);
			break;
		}
	}
	pthread_t dispatcher, control, worker;
	bool have_dispatcher = false, have_control = false, have_worker = false;
	if (tids == NULL) {
		machine_stop(EXIT_HOST, "out of memory");
	} else {
		have_dispatcher = pthread_create(&dispatcher, NULL, dispatch_main, NULL) == 0;
		control_released = false;
		control_parked = 0;
		control_threads = 0;
		have_worker = pthread_create(&worker, NULL, worker_main, NULL) == 0;
		control_threads += have_worker;
		have_control = pthread_create(&control, NULL, control_main, NULL) == 0;
		control_threads += have_control;
		if (!have_control && have_worker)
			api_worker_stop(); /* nobody else would stop it */
		if (!have_dispatcher || !have_control || !have_worker)
			machine_stop(EXIT_HOST,
				     "cannot start the dispatcher, control or live-change thread");
		/* The supervisor is offline for as long as it runs, and has no
		 * request slot or trace track (the dispatcher has the host's): it
		 * delivers only to the main VMM (vmm_host_deliver_main). */
		pvmm_thread_slot = UINT_MAX;
		router_thread_offline();
		supervise(sig_fd, timer_fd);
		router_thread_online();
	}

	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	if (have_dispatcher)
		pthread_join(dispatcher, NULL);
	control_wait_parked();	       /* no request of the socket runs any more */
	pvmm_thread_slot = M.vm.ncpus; /* the host's slot is free again */
	router_set_kick(NULL);	       /* no vCPU thread left to kick */
	/* What the routes compiled into KVM still hold (the coalesced ring,
	 * doorbell counts) is delivered before the statistics are written. */
	ioregion_fini();
	router_thread_unregister();

	write_stats(c);
	status = M.status;
	int sig = M.kill_signal;
	close(sig_fd);
	if (timer_fd >= 0)
		close(timer_fd);
	machine_teardown(); /* releases the control thread and the worker (control_park) */
	if (have_control)
		pthread_join(control, NULL);
	if (have_worker)
		pthread_join(worker, NULL);
	if (sig) {
		/* Die of the signal, as a shell expects, once the terminal is back. */
		signal(sig, SIG_DFL);
		pthread_sigmask(SIG_UNBLOCK, &stop_sigs, NULL);
		raise(sig);
	}
	return status;
}

int machine_run(struct vmmux_config *c)
{
	/* The main thread becomes the exec thread (self_exec.h): it forks the
	 * parallel VMMs and makes a live update's execve, so that the VMMs stay
	 * its children in this program and the next; the run has a thread of
	 * its own. */
	struct errbuf e;
	int status = self_exec_serve(run_body, c, &e);
	if (status < 0) {
		log_error("%s", e.msg);
		return EXIT_HOST;
	}
	return status;
}
