/*
 * debug.c: the debugger's interface to the machine (debug.h).
 *
 * State: which vCPUs are asked to hold and which are held, under one mutex
 * and condition variable; the guest-debug state (struct vm_debug) that
 * vm_vcpu_guest_debug merges in, with a generation that each vCPU compares
 * with the one it last applied when it is released. Register and memory
 * accesses are plain KVM calls on a held vCPU's descriptor, from the
 * debugger's thread.
 */
#include "vmm/debug.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "exit/vcpu.h"
#include "route/router.h"
#include "util/clock.h"
#include "util/log.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/ptwalk.h"

_Atomic bool debug_hold_any;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold[CPUS_MAX];	    /* asked to hold */
	bool held[CPUS_MAX];	    /* waiting in debug_vcpu_hold */
	uint64_t gen;		    /* of the guest-debug state */
	uint64_t applied[CPUS_MAX]; /* the generation each vCPU applied */
	struct vm_debug dbg;
} D = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

bool debug_available(void)
{
	struct vm *vm = machine_vm();
	return vm != NULL && vm->vcpus != NULL && vm->ncpus > 0;
}

unsigned debug_ncpus(void)
{
	return debug_available() ? machine_vm()->ncpus : 0;
}

/* Called with D.lock held. */
static void update_any(void)
{
	bool any = false;
	for (unsigned i = 0; i < CPUS_MAX && !any; i++)
		any = D.hold[i];
	atomic_store_explicit(&debug_hold_any, any, memory_order_release);
}

void debug_hold(unsigned index)
{
	unsigned n = debug_ncpus();
	pthread_mutex_lock(&D.lock);
	for (unsigned i = 0; i < n; i++)
		if (index == DEBUG_ALL || index == i)
			D.hold[i] = true;
	update_any();
	pthread_mutex_unlock(&D.lock);
	for (unsigned i = 0; i < n; i++)
		if (index == DEBUG_ALL || index == i)
			vcpu_kick(i);
}

/* D.lock held. */
static bool held_locked(unsigned i)
{
	return D.held[i] || machine_vcpu_parked(i);
}

bool debug_is_held(unsigned index)
{
	if (index >= debug_ncpus())
		return false;
	pthread_mutex_lock(&D.lock);
	bool h = held_locked(index);
	pthread_mutex_unlock(&D.lock);
	return h;
}

static void wait_a_little(void)
{
	struct timespec ts = clock_deadline_in(20000000ull);
	pthread_cond_timedwait(&D.cond, &D.lock, &ts);
}

int debug_wait_held(void)
{
	unsigned n = debug_ncpus();
	pthread_mutex_lock(&D.lock);
	for (;;) {
		if (machine_stopping()) {
			pthread_mutex_unlock(&D.lock);
			return -1;
		}
		bool all = true;
		for (unsigned i = 0; i < n && all; i++)
			all = !D.hold[i] || held_locked(i);
		if (all)
			break;
		/* Timed: a vCPU halted for good in the machine's gate does not
		 * signal this condition. */
		wait_a_little();
	}
	pthread_mutex_unlock(&D.lock);
	return 0;
}

void debug_release(unsigned index)
{
	unsigned n = debug_ncpus();
	pthread_mutex_lock(&D.lock);
	for (unsigned i = 0; i < n; i++)
		if (index == DEBUG_ALL || index == i)
			D.hold[i] = false;
	update_any();
	pthread_cond_broadcast(&D.cond);
	pthread_mutex_unlock(&D.lock);
}

bool debug_vcpu_hold(unsigned index, bool stepping_over)
{
	bool waited = false;
	pthread_mutex_lock(&D.lock);
	/* A reset waits for every vCPU in the machine's gate: a held vCPU
	 * goes there (returning true), and holds again after the reset. */
	while (D.hold[index] && !machine_stopping() && !machine_reset_pending()) {
		if (!waited) {
			router_thread_offline();
			waited = true;
			D.held[index] = true;
			pthread_cond_broadcast(&D.cond);
		}
		/* Timed, so that the end of the run (which kicks, but does not
		 * signal this condition) is seen. */
		wait_a_little();
	}
	D.held[index] = false;
	if (D.hold[index] && !machine_stopping()) {
		/* left for a reset: through the gate, then back here */
		pthread_mutex_unlock(&D.lock);
		if (waited)
			router_thread_online();
		return true;
	}
	bool apply = D.applied[index] != D.gen;
	D.applied[index] = D.gen;
	pthread_mutex_unlock(&D.lock);
	if (waited)
		router_thread_online();
	if (apply && !machine_stopping()) {
		struct errbuf e;
		if (vm_vcpu_guest_debug(machine_vm(), index, machine_config(), stepping_over, &e) <
		    0)
			log_error("debugger: %s", e.msg);
	}
	return waited;
}

bool debug_vcpu_stepping(unsigned index)
{
	return index < CPUS_MAX && D.dbg.on && D.dbg.step[index];
}

/* ---- guest debug ---- */

/* D.lock held: the state changed; the VM points at it. */
static void changed(void)
{
	bool on = (D.dbg.dr7 & 0xff) != 0;
	for (unsigned i = 0; i < CPUS_MAX && !on; i++)
		on = D.dbg.step[i];
	D.dbg.on = on;
	D.gen++;
	machine_vm()->dbg = &D.dbg;
}

void debug_set_hw(const uint64_t dr[4], uint64_t dr7)
{
	pthread_mutex_lock(&D.lock);
	memcpy(D.dbg.dr, dr, sizeof(D.dbg.dr));
	D.dbg.dr7 = dr7;
	changed();
	pthread_mutex_unlock(&D.lock);
}

void debug_set_step(unsigned index, bool on)
{
	if (index >= CPUS_MAX)
		return;
	pthread_mutex_lock(&D.lock);
	if (D.dbg.step[index] != on) {
		D.dbg.step[index] = on;
		changed();
	}
	pthread_mutex_unlock(&D.lock);
}

void debug_clear(void)
{
	pthread_mutex_lock(&D.lock);
	memset(D.dbg.dr, 0, sizeof(D.dbg.dr));
	D.dbg.dr7 = 0;
	memset(D.dbg.step, 0, sizeof(D.dbg.step));
	changed();
	pthread_mutex_unlock(&D.lock);
}

/* ---- registers ---- */

static int vcpu_fd(unsigned index, struct errbuf *e)
{
	if (index >= debug_ncpus())
		return err_set(e, "vCPU %u does not exist (%u vCPUs)", index, debug_ncpus());
	return machine_vm()->vcpus[index].fd;
}

int debug_get_regs(unsigned index, struct debug_regs *r, struct errbuf *e)
{
	int fd = vcpu_fd(index, e);
	if (fd < 0)
		return -1;
	memset(r, 0, sizeof(*r));
	if (ioctl(fd, KVM_GET_REGS, &r->regs) < 0)
		return err_set(e, "vCPU %u: KVM_GET_REGS: %s", index, strerror(errno));
	if (ioctl(fd, KVM_GET_SREGS, &r->sregs) < 0)
		return err_set(e, "vCPU %u: KVM_GET_SREGS: %s", index, strerror(errno));
	r->have_fpu = ioctl(fd, KVM_GET_FPU, &r->fpu) == 0;
	return 0;
}

int debug_set_regs(unsigned index, const struct debug_regs *r, struct errbuf *e)
{
	int fd = vcpu_fd(index, e);
	if (fd < 0)
		return -1;
	if (ioctl(fd, KVM_SET_REGS, &r->regs) < 0)
		return err_set(e, "vCPU %u: KVM_SET_REGS: %s", index, strerror(errno));
	if (ioctl(fd, KVM_SET_SREGS, &r->sregs) < 0)
		return err_set(e, "vCPU %u: KVM_SET_SREGS: %s", index, strerror(errno));
	if (r->have_fpu && ioctl(fd, KVM_SET_FPU, &r->fpu) < 0)
		return err_set(e, "vCPU %u: KVM_SET_FPU: %s", index, strerror(errno));
	return 0;
}

/* ---- memory ---- */

static int read_phys(void *arg, uint64_t gpa, void *buf, size_t len)
{
	const struct guest_mem *m = arg;
	void *p = gm_ptr(m, gpa, len);
	if (p == NULL)
		return -1;
	memcpy(buf, p, len);
	return 0;
}

int debug_translate(unsigned index, uint64_t va, uint64_t *gpa, struct errbuf *e)
{
	int fd = vcpu_fd(index, e);
	if (fd < 0)
		return -1;
	struct kvm_sregs s;
	if (ioctl(fd, KVM_GET_SREGS, &s) < 0)
		return err_set(e, "vCPU %u: KVM_GET_SREGS: %s", index, strerror(errno));
	enum pt_mode m = pt_mode_of(s.cr0, s.cr4, s.efer);
	static const char *const why[] = {"", "not mapped", "not canonical",
					  "its page tables lie outside guest RAM"};
	enum pt_fail f =
	    pt_walk(m, s.cr3, (s.cr4 >> 4) & 1, va, read_phys, (void *)&machine_vm()->mem, gpa);
	if (f != PT_OK)
		return err_set(e, "vCPU %u: virtual address 0x%llx is %s (%s paging, CR3 0x%llx)",
			       index, (unsigned long long)va, why[f], pt_mode_name(m),
			       (unsigned long long)s.cr3);
	return 0;
}

static long access_virt(unsigned index, uint64_t va, void *buf, size_t len, bool write,
			struct errbuf *e)
{
	const struct guest_mem *m = &machine_vm()->mem;
	size_t done = 0;
	while (done < len) {
		uint64_t a = va + done, gpa;
		size_t chunk = 4096 - (a & 4095);
		if (chunk > len - done)
			chunk = len - done;
		if (debug_translate(index, a, &gpa, e) < 0)
			break;
		uint8_t *p = gm_ptr(m, gpa, chunk);
		if (p == NULL) {
			err_set(e, "virtual address 0x%llx maps guest-physical 0x%llx, outside RAM",
				(unsigned long long)a, (unsigned long long)gpa);
			break;
		}
		if (write)
			memcpy(p, (const uint8_t *)buf + done, chunk);
		else
			memcpy((uint8_t *)buf + done, p, chunk);
		done += chunk;
	}
	if (done == 0 && len > 0)
		return -1;
	return (long)done;
}

long debug_read_virt(unsigned index, uint64_t va, void *buf, size_t len, struct errbuf *e)
{
	return access_virt(index, va, buf, len, false, e);
}

long debug_write_virt(unsigned index, uint64_t va, const void *buf, size_t len, struct errbuf *e)
{
	return access_virt(index, va, (void *)buf, len, true, e);
}
